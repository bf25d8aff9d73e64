"""Deterministic synthetic head CT volumes in HU with haemorrhage masks, for the demo and the tests.

Two anatomies. ``anatomy="phantom"`` (the default, ``smartnet.data.demo_phantom``) is an ellipsoid phantom: quick to
learn, but nothing in it mimics blood, and models trained on it alone do not transfer to real heads.
``anatomy="head"`` (``smartnet.data.demo_anatomy``) is a non-contrast head CT in miniature: scalp with
subcutaneous fat, a skull of dense tables and diploe whose shape varies from head to head, a skull base (anterior,
middle and posterior fossae, petrous ridges, sella, air cells, orbits), brain with a grey-matter cortex, CSF-filled
sulci, deep grey nuclei, ventricles and an interhemispheric fissure, a CSF rim that is absent in places (brain
touching the inner table), and the dense normal structures that mimic blood: falx, superior sagittal sinus,
calcified choroid plexus and pineal gland, beam-hardening streaks, an old hypodense infarct now and then, and the head
holder. The scanner adds partial-volume blur and correlated noise.

Haemorrhage cases get one to three bleeds of the real kinds at 50-85 HU: epidural (biconvex lens against the inner
table), subdural (crescent along the inner table), intraparenchymal (irregular blob, often with a hypodense oedema
rim that is not in the mask), intraventricular (layering in the dependent part of a ventricle) and subarachnoid
(blood in the sulci and CSF rim of a sector of the convexity), from a few voxels to tens of mL. Masks are 1 where
blood is.

Default geometry is realistic: 512 x 512 in-plane at ~0.45 mm, 28-40 axial slices of 5 mm, a LAS affine (the
layout of scanner-exported NIfTI). Tests use small sizes. The same seed always gives the same volumes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from .demo_anatomy import (HeadAnatomy, SyntheticHeadCT, build_head, convexity_direction, random_point, scan,
                           skull_glare, smooth_noise)
from .demo_phantom import make_phantom

__all__ = ["SyntheticHeadCT", "HEMORRHAGE_KINDS", "ANATOMIES", "make_volume"]

HEMORRHAGE_KINDS = ("epidural", "subdural", "intraparenchymal", "intraventricular", "subarachnoid")
ANATOMIES = ("phantom", "head")  # the ellipsoid phantom (fast to learn) and the realistic head
# raised whenever the same arguments draw different volumes (2: recorded with the inner-table band switch); demo data
# written by another version (or before the version was recorded) are written again, never silently reused
GENERATOR_VERSION = 2


def make_volume(
    rng: np.random.Generator,
    hemorrhage: bool,
    size: int = 512,
    depth: int | None = None,
    spacing_xy: float | None = None,
    slice_thickness: float = 5.0,
    kinds: Sequence[str] = HEMORRHAGE_KINDS,
    anatomy: str = "phantom",
    inner_table_band: bool = False,
) -> SyntheticHeadCT:
    """Build one synthetic head CT.

    Args:
        rng: the random generator (all randomness comes from it).
        hemorrhage: whether to add bleeds (the mask is empty otherwise).
        size: in-plane matrix (square).
        depth: number of slices; random in 28-40 when None.
        spacing_xy: in-plane pixel size in mm; chosen so the field of view is ~230 mm when None.
        slice_thickness: slice spacing in mm.
        kinds: haemorrhage kinds to draw from (default all of ``HEMORRHAGE_KINDS``).
        anatomy: ``"phantom"`` (ellipsoid phantom, ``smartnet.data.demo_phantom``) or ``"head"`` (the realistic head
            of ``smartnet.data.demo_anatomy``, with the normal structures that mimic blood).
        inner_table_band: draw the scanner's bright band along the inner table (``demo_anatomy.skull_glare``, measured
            on a real head CT; off by default: it also brightens extra-axial blood to 80-125 HU, see
            docs/training-at-small-scale.md). It draws from its own random stream: a volume is otherwise the same.
    """
    unknown = set(kinds) - set(HEMORRHAGE_KINDS)
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {HEMORRHAGE_KINDS}, got {list(kinds)}")
    if anatomy not in ANATOMIES:
        raise ValueError(f"anatomy must be one of {ANATOMIES}, got {anatomy!r}")
    depth = int(rng.integers(28, 41)) if depth is None else depth
    spacing_xy = (230.0 / size) * float(rng.uniform(0.95, 1.05)) if spacing_xy is None else spacing_xy
    # millimetre grid, head centred in-plane (a few mm off), brain centre a little above the middle slice
    x = (np.arange(size) - size / 2 + 0.5) * spacing_xy + rng.uniform(-6, 6)
    y = (np.arange(size) - size / 2 + 0.5) * spacing_xy + rng.uniform(-6, 6)
    z = (np.arange(depth) - depth * 0.45) * slice_thickness
    scale = float(rng.uniform(0.9, 1.08))
    if anatomy == "phantom":
        return make_phantom(rng, hemorrhage, x, y, z, scale, slice_thickness, kinds, inner_table_band)
    head = build_head(rng, x, y, z, scale)
    image = head.image

    mask = np.zeros(image.shape, bool)
    drawn: list[str] = []
    if hemorrhage:
        for _ in range(int(rng.integers(1, 4))):
            kind = str(rng.choice(list(kinds)))
            blood = _bleed(rng, kind, head) & head.cavity
            if blood.sum() < 3:
                continue
            drawn.append(kind)
            mask |= blood
        if not mask.any():  # guarantee a lesion in a haemorrhage case
            drawn.append("intraparenchymal")
            mask = _bleed(rng, "intraparenchymal", head) & head.cavity
        if "intraparenchymal" in drawn and rng.random() < 0.6:  # perihaematomal oedema: hypodense, not blood
            oedema = ndimage.binary_dilation(mask, iterations=2) & head.brain & ~mask
            image[oedema] = float(rng.uniform(15.0, 24.0))
        image[mask] = rng.uniform(50.0, 85.0) + 5.0 * smooth_noise(rng, image.shape, 8)[mask]
    if inner_table_band:
        pixels_per_cm = max(1, int(round(10.0 / spacing_xy)))
        image += skull_glare(rng, head.inner_table_mm - head.surface_mm, head.cavity, 3 * pixels_per_cm)
    image = scan(rng, image, spacing_xy)
    return SyntheticHeadCT.from_arrays(image, mask, x, y, z, slice_thickness, drawn)


def _bleed(rng: np.random.Generator, kind: str, head: HeadAnatomy) -> np.ndarray:
    """Boolean mask of one bleed of ``kind`` in the anatomy of ``head``."""
    X, Y, Z = head.X, head.Y, head.Z
    if kind == "intraparenchymal":
        centre = random_point(rng, head.brain & (head.surface_mm < -8) & ~head.ventricles & ~head.sulci, X, Y, Z)
        radii = rng.uniform(2.0, 14.0) * rng.uniform(0.7, 1.3, 3)
        d = ((X - centre[0]) / radii[0]) ** 2 + ((Y - centre[1]) / radii[1]) ** 2 + ((Z - centre[2]) / radii[2]) ** 2
        irregular = 0.25 * smooth_noise(rng, X.shape, 6)
        return (d <= 1 + irregular) & head.brain
    if kind == "intraventricular":
        ventricles = head.ventricles
        if not ventricles.any():
            return ventricles
        layer = np.percentile(Y[ventricles], rng.uniform(30.0, 65.0))  # blood layers posteriorly (dependent)
        sides = (X < 0) if rng.random() < 0.5 else (X >= 0)
        if rng.random() < 0.3:
            sides = np.ones_like(sides)
        return ventricles & (Y < layer) & sides
    # convexity bleeds: angular distance of each voxel's direction from a random centre direction
    d = convexity_direction(rng)
    norm = np.sqrt(X**2 + Y**2 + Z**2) + 1e-6
    angle = np.arccos(np.clip((X * d[0] + Y * d[1] + Z * d[2]) / norm, -1, 1))
    depth_in = head.inner_table_mm - head.surface_mm  # mm inside the inner table
    if kind == "epidural":  # biconvex lens, thick centre
        half_width = rng.uniform(0.25, 0.5)
        thickness = rng.uniform(5.0, 14.0) * np.clip(1 - (angle / half_width) ** 2, 0, None)
        return (depth_in >= 0) & (depth_in <= thickness)
    if kind == "subdural":  # long thin crescent
        half_width = rng.uniform(0.6, 1.1)
        thickness = rng.uniform(2.0, 8.0) * np.clip(1 - (angle / half_width) ** 4, 0, None) ** 0.5
        return (depth_in >= 0) & (depth_in <= thickness)
    # subarachnoid: blood in the sulci and the CSF rim of a sector of the convexity
    half_width = rng.uniform(0.3, 0.7)
    csf = head.sulci | (head.cavity & (head.surface_mm > 0))
    return (angle < half_width) & csf & (head.surface_mm > -14.0)
