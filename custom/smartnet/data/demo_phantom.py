"""The ellipsoid phantom of the synthetic demo CT: the fast, easy anatomy (``make_volume(anatomy="phantom")``).

Air (-1000 HU), scalp (~35 HU), face and neck below and in front of the skull (muscle at blood's 40-60 HU, fat, bone
and air cells), an ellipsoid skull of dense tables (1200-1600 HU) around a diploe (400-900 HU),
brain of grey (~38 HU) and white (~28 HU) matter, CSF (~8 HU) in two ellipsoid ventricles and in a rim 0-4 mm thick
that is absent in places (brain touching the inner table), bleeds of the five kinds; the scanner's partial-volume blur
turns every bone edge into a ramp through blood's densities, and adds correlated noise (``demo_anatomy.scan``).
Nothing else in it mimics blood, so a model learns it quickly (see ``docs/training-at-small-scale.md`` for how far
that carries to real heads). Units: HU, mm; arrays ``(X, Y, Z)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .demo_anatomy import SyntheticHeadCT, _ellipsoid, convexity_direction, scan, skull_glare, smooth_noise

__all__ = ["make_phantom"]


def make_phantom(
    rng: np.random.Generator,
    hemorrhage: bool,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    scale: float,
    slice_thickness: float,
    kinds: Sequence[str],
    inner_table_band: bool = False,
) -> SyntheticHeadCT:
    """One phantom on the scanner grid ``x``, ``y``, ``z`` (mm, 1-D; from ``smartnet.data.demo.make_volume``), brain
    size factor ``scale``, bleeds of ``kinds`` when ``hemorrhage``, the scanner's bright band along the inner table
    (``demo_anatomy.skull_glare``) when ``inner_table_band``."""
    shape = (len(x), len(y), len(z))
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")
    ax, ay, az = 68.0 * scale, 84.0 * scale, 62.0 * scale  # brain semi-axes (mm), LR / AP / SI

    def radius(dx: float = 0.0) -> np.ndarray:
        return np.sqrt((X / (ax + dx)) ** 2 + (Y / (ay + dx)) ** 2 + (Z / (az + dx)) ** 2)

    r_brain, r_inner, r_diploe, r_outer_table, r_outer, r_scalp = (
        radius(), radius(2.5), radius(4.0), radius(7.5), radius(9.0), radius(14.0))
    image = np.full(shape, -1000.0)
    image[r_scalp <= 1] = 35.0 + 15.0 * smooth_noise(rng, shape, 32)[r_scalp <= 1]
    # below and in front of the skull: face and neck, muscle (40-60 HU, blood's density outside the cranial cavity)
    # with fat, bone (jaw, spine) and air (sinuses, pharynx)
    face = _ellipsoid(X, Y, Z, (0.0, 0.45 * ay, -0.85 * az), (0.75 * ax, 0.6 * ay, 0.55 * az)) <= 1
    neck = _ellipsoid(X, Y, Z, (0.0, -0.1 * ay, -1.25 * az), (0.55 * ax, 0.5 * ay, 0.5 * az)) <= 1
    soft = (face | neck) & (r_outer > 1)
    image[soft] = 50.0 + 10.0 * smooth_noise(rng, shape, 16)[soft]
    image[soft & (smooth_noise(rng, shape, 8) > 0.3)] = -90.0
    image[soft & (smooth_noise(rng, shape, 10) > 0.25)] = 1000.0
    image[face & (r_outer > 1) & (smooth_noise(rng, shape, 10) > 0.3)] = -950.0
    # skull: dense inner and outer tables around a less dense diploe
    bone = (r_outer <= 1) & (r_inner > 1)
    image[bone] = 1400.0 + 200.0 * smooth_noise(rng, shape, 16)[bone]
    diploe = (r_diploe > 1) & (r_outer_table <= 1)
    image[diploe] = 650.0 + 250.0 * smooth_noise(rng, shape, 16)[diploe]
    # CSF between brain and inner table, 0-4 mm thick: absent in places, where the brain touches the bone
    inside_mm = (1.0 - r_inner) * 70.0 * scale  # approximate depth below the inner table (mm)
    rim_mm = np.clip(float(rng.uniform(0.4, 1.5)) * (1.2 + 2.0 * smooth_noise(rng, shape, 24)), 0.0, 4.0)
    image[r_inner <= 1] = 8.0
    brain = (r_inner <= 1) & (inside_mm >= rim_mm)
    texture = smooth_noise(rng, shape, 12)
    white = (radius(-18.0) <= 1) & (texture > -0.2)
    image[brain] = 38.0
    image[brain & white] = 28.0
    # lateral ventricles: two ellipsoids either side of the midline, in the middle slices
    ventricles = np.zeros(shape, bool)
    for side in (-1.0, 1.0):
        vx, vy, vz = side * 9.0 * scale, -4.0 * scale, 8.0 * scale
        ventricles |= (((X - vx) / (6 * scale)) ** 2 + ((Y - vy) / (26 * scale)) ** 2
                       + ((Z - vz) / (14 * scale)) ** 2 <= 1)
    image[ventricles] = 5.0

    mask = np.zeros(shape, bool)
    drawn: list[str] = []
    if hemorrhage:
        for _ in range(int(rng.integers(1, 4))):
            kind = str(rng.choice(list(kinds)))
            blood = _bleed(rng, kind, X, Y, Z, r_brain, r_inner, ventricles, scale) & (r_inner <= 1)
            if blood.sum() < 3:
                continue
            drawn.append(kind)
            mask |= blood
        if not mask.any():  # guarantee a lesion in a haemorrhage case
            drawn.append("intraparenchymal")
            mask = _bleed(rng, "intraparenchymal", X, Y, Z, r_brain, r_inner, ventricles, scale) & (r_brain <= 1)
        image[mask] = rng.uniform(55.0, 85.0) + 5.0 * smooth_noise(rng, shape, 8)[mask]
    if inner_table_band:  # the bright band along the inner table, over blood too
        image += skull_glare(rng, inside_mm, r_inner <= 1, 24)
    image = scan(rng, image, float(x[1] - x[0]))
    return SyntheticHeadCT.from_arrays(image, mask, x, y, z, slice_thickness, drawn)


def _bleed(
    rng: np.random.Generator,
    kind: str,
    X: np.ndarray,
    Y: np.ndarray,
    Z: np.ndarray,
    r_brain: np.ndarray,
    r_inner: np.ndarray,
    ventricles: np.ndarray,
    scale: float,
) -> np.ndarray:
    """Boolean mask of one bleed of ``kind`` in the millimetre grid (X, Y, Z)."""
    if kind == "intraparenchymal":
        centre = convexity_direction(rng) * rng.uniform(0.2, 0.7) * np.array([60, 75, 50]) * scale
        radii = rng.uniform(2.0, 16.0) * rng.uniform(0.7, 1.3, 3)
        d = ((X - centre[0]) / radii[0]) ** 2 + ((Y - centre[1]) / radii[1]) ** 2 + ((Z - centre[2]) / radii[2]) ** 2
        irregular = 0.25 * smooth_noise(rng, X.shape, 6)
        return (d <= 1 + irregular) & (r_brain <= 1)
    if kind == "intraventricular":
        side = rng.choice([-1.0, 1.0])
        layer = rng.uniform(-30.0, -10.0) * scale  # blood layers posteriorly (dependent)
        return ventricles & (Y < layer) & (np.sign(X) == side)
    # convexity bleeds: angular distance of each voxel's direction from a random centre direction
    d = convexity_direction(rng)
    norm = np.sqrt(X**2 + Y**2 + Z**2) + 1e-6
    cos_angle = (X * d[0] + Y * d[1] + Z * d[2]) / norm
    angle = np.arccos(np.clip(cos_angle, -1, 1))
    depth_in = 1.0 - r_inner  # 0 at the inner table, growing inwards (normalised)
    if kind == "epidural":  # biconvex lens, thick centre
        half_width = rng.uniform(0.25, 0.5)
        thickness = rng.uniform(0.08, 0.2) * np.clip(1 - (angle / half_width) ** 2, 0, None)
        return (depth_in >= 0) & (depth_in <= thickness)
    if kind == "subdural":  # long thin crescent
        half_width = rng.uniform(0.6, 1.1)
        thickness = rng.uniform(0.03, 0.09) * np.clip(1 - (angle / half_width) ** 4, 0, None) ** 0.5
        return (depth_in >= 0) & (depth_in <= thickness)
    # subarachnoid: thin streaks following the cortex
    half_width = rng.uniform(0.3, 0.7)
    stripes = np.sin(angle * rng.uniform(25, 45) + np.arctan2(Y, X) * 6) > 0.6
    return (angle < half_width) & (r_brain > 0.9) & (r_brain <= 0.98) & stripes
