"""Synthetic bleeds on a real head CT: a check of models trained on drawn phantoms against real anatomy.

The demo data are ellipsoid phantoms; a model that learned them may still fail on a real skull base, real sulci and
real ventricles. This module takes one real, lesion-free head CT (HU) and writes a small test set from it: copies
with haemorrhages of the five kinds painted into the anatomy (and lesion-free copies), each with a small random
in-plane shift and an optional left-right flip, so that a model cannot pass by memorising one position.

Bleeds follow the anatomy found in the image itself:

* intracranial cavity: inside the skull (bone > 300 HU), per slice, holes filled, skull removed;
* brain: cavity voxels between 10 and 60 HU; CSF / ventricles: cavity voxels whose local mean (Gaussian, 1 voxel
  in-plane) is between -5 and 18 HU, near the midline;
* epidural (lens) and subdural (crescent) blood along the inner table, subarachnoid streaks in the outer cortex,
  intraparenchymal blobs in the brain, intraventricular blood in the dependent (posterior) part of the ventricles.

Blood is 55-85 HU with smooth variation and the scan's own noise kept; a case's blood can be cut to a volume range
(``bleed_ml``, for the small bleeds a triage model must find). Nothing derived from a real scan is ever
written into the project: the output folder is the caller's (``~/smartnet_data/...`` by default).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from ..errors import SettingsError
from .demo import HEMORRHAGE_KINDS
from .demo_dataset import save_nifti

__all__ = ["anatomy_masks", "paint_bleed", "shrink_bleed", "volume_range", "write_real_anatomy_set"]


def anatomy_masks(hu: np.ndarray) -> dict[str, np.ndarray]:
    """``cavity``, ``brain``, ``csf`` and ``depth_mm`` (distance inside the cavity from the inner table, in voxels
    scaled later) of a head CT ``(X, Y, Z)`` in HU."""
    bone = hu > 300
    cavity = np.zeros(hu.shape, dtype=bool)
    for z in range(hu.shape[2]):
        closed = ndimage.binary_closing(bone[..., z], iterations=3)
        filled = ndimage.binary_fill_holes(closed)
        inner = filled & ~ndimage.binary_dilation(bone[..., z], iterations=1)
        labels, count = ndimage.label(inner)
        if count:
            sizes = ndimage.sum_labels(inner, labels, index=np.arange(1, count + 1))
            cavity[..., z] = labels == 1 + int(np.argmax(sizes))
    cavity &= (hu > -50) & (hu < 100)
    brain = cavity & (hu >= 10) & (hu <= 60)
    smooth = ndimage.gaussian_filter(hu, (1.0, 1.0, 0.0))  # CSF by its local mean: one region, not noise speckle
    csf = cavity & (smooth >= -5) & (smooth < 18)
    return {"cavity": cavity, "brain": brain, "csf": csf}


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (np.abs(field).max() + 1e-6)


def paint_bleed(
    rng: np.random.Generator, kind: str, masks: dict[str, np.ndarray], spacing: tuple[float, float, float]
) -> np.ndarray:
    """Boolean mask of one bleed of ``kind`` in the anatomy ``masks`` (from ``anatomy_masks``), voxel ``spacing``
    in mm."""
    cavity, brain, csf = masks["cavity"], masks["brain"], masks["csf"]
    shape = cavity.shape
    sx, sy, sz = spacing
    # mm from the inner table: distance to the outside of the cavity with its holes filled per slice, so that a
    # calcified choroid plexus or pineal gland inside it is not taken for the skull
    filled = np.stack([ndimage.binary_fill_holes(cavity[..., z]) for z in range(shape[2])], axis=-1)
    depth = ndimage.distance_transform_edt(filled, sampling=spacing)
    idx = np.argwhere(cavity)
    centre = idx.mean(axis=0)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(np.float32)
    offset_mm = (grid - centre) * np.array([sx, sy, sz], dtype=np.float32)
    norm = np.linalg.norm(offset_mm, axis=-1) + 1e-6
    if kind == "intraparenchymal":
        candidates = np.argwhere(brain & (depth > 10))
        if len(candidates) == 0:
            candidates = np.argwhere(brain)
        c = candidates[rng.integers(len(candidates))]
        radii = rng.uniform(3.0, 12.0) * rng.uniform(0.7, 1.3, 3)
        d = (((grid - c) * np.array(spacing)) / radii) ** 2
        return (d.sum(axis=-1) <= 1 + 0.3 * _smooth(rng, shape, 3)) & cavity
    if kind == "intraventricular":
        ventricles = csf & (depth > 15)
        ventricles = ndimage.binary_opening(ventricles, iterations=1)
        if not ventricles.any():
            ventricles = csf & (depth > 8)
        if not ventricles.any():
            return ventricles
        posterior = grid[..., 1] < np.percentile(np.argwhere(ventricles)[:, 1], rng.uniform(35, 60))
        side = grid[..., 0] > centre[0] if rng.random() < 0.5 else grid[..., 0] <= centre[0]
        return ventricles & posterior & side
    # convexity bleeds: a sector of directions around a random direction in the upper, lateral head
    theta, elev = rng.uniform(0, 2 * np.pi), rng.uniform(-0.1, 0.6)
    direction = np.array([np.cos(theta) * np.cos(elev), np.sin(theta) * np.cos(elev), np.sin(elev)], np.float32)
    angle = np.arccos(np.clip((offset_mm @ direction) / norm, -1, 1))
    if kind == "epidural":
        half = rng.uniform(0.25, 0.45)
        thickness = rng.uniform(6.0, 14.0) * np.clip(1 - (angle / half) ** 2, 0, None)
        return cavity & (depth <= thickness)
    if kind == "subdural":
        half = rng.uniform(0.5, 0.9)
        thickness = rng.uniform(3.0, 8.0) * np.clip(1 - (angle / half) ** 4, 0, None) ** 0.5
        return cavity & (depth <= thickness)
    if kind == "subarachnoid":
        half = rng.uniform(0.3, 0.6)
        stripes = np.sin(angle * rng.uniform(25, 45) + np.arctan2(offset_mm[..., 1], offset_mm[..., 0]) * 6) > 0.5
        return cavity & (angle < half) & (depth > 1.0) & (depth <= 5.0) & stripes
    raise ValueError(f"unknown haemorrhage kind {kind!r}; choose from {HEMORRHAGE_KINDS}")


def shrink_bleed(mask: np.ndarray, max_voxels: int, spacing: tuple[float, float, float]) -> np.ndarray:
    """``mask`` cut to its ``max_voxels`` voxels nearest (Euclidean, mm at voxel ``spacing``) to its own voxel nearest
    its centroid: a smaller bleed of the same kind in the same place (a crescent's patch keeps its full thickness
    against the bone, a blob shrinks about its centre). Masks of ``max_voxels`` voxels or fewer come back as they are.
    """
    count = int(mask.sum())
    if count <= max_voxels:
        return mask
    scale = np.asarray(spacing, dtype=np.float64)
    idx = np.argwhere(mask)
    centroid = idx.mean(axis=0)
    seed = idx[np.argmin((((idx - centroid) * scale) ** 2).sum(axis=1))]
    order = np.argsort((((idx - seed) * scale) ** 2).sum(axis=1), kind="stable")
    kept = np.zeros_like(mask, dtype=bool)
    kept[tuple(idx[order[: max(int(max_voxels), 1)]].T)] = True
    return kept


def volume_range(bleed_ml: object) -> tuple[float, float]:
    """``bleed_ml`` as two volumes ``(low, high)`` in mL with ``0 < low <= high``; ``SettingsError`` otherwise."""
    try:
        low, high = (float(v) for v in bleed_ml)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        low, high = 0.0, -1.0
    if not 0 < low <= high:
        raise SettingsError(f"bleed_ml must be two volumes in mL, low,high with 0 < low <= high; got {bleed_ml!r}")
    return low, high


def write_real_anatomy_set(
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    n_hemorrhage: int = 10,
    n_normal: int = 10,
    seed: int = 0,
    verbose: bool = True,
    bleed_ml: tuple[float, float] | None = None,
) -> Path:
    """Write ``<output_dir>/test/<case>_{img,mask}.nii.gz``, ``kinds.json``, ``volumes.json`` (mL of blood per case)
    and ``datalist.json`` (``test`` split) from the lesion-free head CT ``source`` (NIfTI in HU); returns the
    datalist path.

    Each haemorrhage case has one or two bleeds of random kinds (every kind appears when ``n_hemorrhage >= 5``);
    every case gets a random in-plane shift of up to 8 voxels and a left-right flip with probability 0.5. Bleeds take
    the size their anatomy gives them (about 3-35 mL a case) unless ``bleed_ml = (low, high)`` (mL, ``0 < low <=
    high``): then each case draws a total volume uniformly in that range and its bleeds are cut to it
    (``shrink_bleed``; a bleed smaller than its share stays as painted). ``SettingsError`` for a bad range.
    """
    if bleed_ml is not None:
        low, high = volume_range(bleed_ml)
    source_image = nib.load(str(Path(source).expanduser()))
    hu = np.asarray(source_image.dataobj).astype(np.float32)
    affine = source_image.affine
    spacing = tuple(float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    rng = np.random.default_rng(seed)
    out = Path(output_dir).expanduser()
    (out / "test").mkdir(parents=True, exist_ok=True)
    kinds_of: dict[str, list[str]] = {}
    volumes_of: dict[str, float] = {}
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    for index in range(n_hemorrhage + n_normal):
        hemo = index < n_hemorrhage
        shift = rng.integers(-8, 9, 2)
        image = np.roll(hu, tuple(int(s) for s in shift), axis=(0, 1))
        image[np.roll(np.ones(hu.shape[:2], bool), tuple(int(s) for s in shift), axis=(0, 1)) == 0] = -1024
        if rng.random() < 0.5:
            image = image[::-1].copy()
        masks = anatomy_masks(image)
        lesion = np.zeros(hu.shape, dtype=bool)
        drawn: list[str] = []
        if hemo:
            first = HEMORRHAGE_KINDS[index % len(HEMORRHAGE_KINDS)]
            kinds = [first] + ([str(rng.choice(HEMORRHAGE_KINDS))] if rng.random() < 0.4 else [])
            # the sizes draw from their own stream: with or without bleed_ml, every other draw of a case is the same
            size_rng = np.random.default_rng([seed, index, 1])
            share = float(size_rng.uniform(0.4, 0.7)) if len(kinds) == 2 else 1.0
            shares = [share, 1.0 - share]
            total_ml = float(size_rng.uniform(low, high)) if bleed_ml is not None else None
            for kind, part in zip(kinds, shares):
                blood = paint_bleed(rng, kind, masks, spacing)
                if total_ml is not None:
                    blood = shrink_bleed(blood & ~lesion, round(total_ml * part / voxel_ml), spacing)
                if blood.sum() >= 3:
                    lesion |= blood
                    drawn.append(kind)
            if not lesion.any():
                lesion = paint_bleed(rng, "intraparenchymal", masks, spacing)
                if total_ml is not None:
                    lesion = shrink_bleed(lesion, round(total_ml / voxel_ml), spacing)
                drawn = ["intraparenchymal"]
            blood_hu = rng.uniform(55.0, 85.0) + 5.0 * _smooth(rng, hu.shape, 4)
            image = np.where(lesion, blood_hu + (image - ndimage.median_filter(image, 3)), image)
        case = f"real{index + 1:03d}_{'hemo' if hemo else 'normal'}"
        kinds_of[case] = drawn
        volumes_of[case] = round(float(lesion.sum()) * voxel_ml, 3)
        save_nifti(np.clip(np.rint(image), -1024, 3071).astype(np.int16), affine, out / "test" / f"{case}_img.nii.gz")
        save_nifti(lesion.astype(np.uint8), affine, out / "test" / f"{case}_mask.nii.gz")
        if verbose:
            print(f"  test/{case}: {', '.join(drawn) or 'no haemorrhage'} ({volumes_of[case]:.1f} mL)", flush=True)
    (out / "kinds.json").write_text(json.dumps(kinds_of, indent=4) + "\n")
    (out / "volumes.json").write_text(json.dumps(volumes_of, indent=4) + "\n")
    entries = [{"image": f"test/{c}_img.nii.gz", "label": f"test/{c}_mask.nii.gz", "case_id": c} for c in kinds_of]
    path = out / "datalist.json"
    path.write_text(json.dumps({"test": entries}, indent=4) + "\n")
    return path
