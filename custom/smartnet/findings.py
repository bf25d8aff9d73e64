"""Per-lesion findings of a segmentation: each connected lesion with its size, extent and side, as a radiologist reports
it.

A finding is a 3D connected component (26-connectivity) of a binary lesion mask in the image's own geometry (the
segmenter's inference output, after ``Invertd``). For each one:

* ``volume_ml``: voxel count x voxel volume (mL = cm^3, from the affine);
* ``abc2_ml``: the ABC/2 estimate radiologists use at the console (Kothari et al., *Stroke* 1996): A the largest
  in-plane diameter on the axial slice where the lesion is largest, B the largest diameter perpendicular to A on that
  slice, C the number of slices holding the lesion x the slice spacing; ABC/2 approximates an ellipsoid's
  pi/6 x ABC;
* ``max_axial_diameter_mm``: the largest in-plane diameter over all its axial slices, edge to edge (between the
  outer corners of its pixels);
* ``first_slice`` / ``last_slice``: 0-based indices along the array axis that runs superior-inferior;
  ``largest_slice``: the slice where the lesion's axial area is largest (where A and B are measured; the key image);
* ``side``: ``left`` / ``right`` of the patient, or ``midline`` when the lesion's centroid lies within
  ``midline_tolerance_mm`` of the midline or the lesion reaches ``midline_tolerance_mm`` past it on both sides. The
  midline is the world x of the field of view's centre (scanners centre the head), in the RAS world of the affine
  (MONAI's and NIfTI's convention: +x towards the patient's right).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

__all__ = ["Finding", "axial_axis", "find_lesions", "label_lesions", "outline"]


def axial_axis(affine: np.ndarray) -> int:
    """Index (0..2) of the array axis that runs superior-inferior, from a 4x4 voxel-to-world affine."""
    directions = np.abs(np.asarray(affine, dtype=float)[:3, :3])
    directions = directions / (np.linalg.norm(directions, axis=0, keepdims=True) + 1e-12)
    return int(np.argmax(directions[2]))


@dataclass
class Finding:
    """One connected lesion (units: mL, mm; slice indices 0-based along the superior-inferior array axis)."""

    lesion: int
    voxels: int
    volume_ml: float
    abc2_ml: float
    max_axial_diameter_mm: float
    first_slice: int
    last_slice: int
    largest_slice: int
    side: str
    centroid_mm: tuple[float, float, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _diameters(points_mm: np.ndarray) -> tuple[float, float]:
    """Largest in-plane diameter A of 2D points (N, 2) in mm (the corners of the outline pixels, so edge to edge)
    and the largest extent B perpendicular to it. Both lie on the convex hull, so only its vertices are compared (a
    false band along a whole slice has thousands of outline corners)."""
    if len(points_mm) > 16:
        points_mm = points_mm[ConvexHull(points_mm).vertices]  # pixel corners are never all collinear
    d = np.linalg.norm(points_mm[:, None, :] - points_mm[None, :, :], axis=-1)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    a = float(d[i, j])
    axis = (points_mm[j] - points_mm[i]) / (a + 1e-12)
    across = points_mm @ np.array([-axis[1], axis[0]])
    return a, float(across.max() - across.min())


_CORNERS = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])


def outline(mask2d: np.ndarray) -> np.ndarray:
    """The pixels of a 2D mask with a background 4-neighbour (its outline: the diameters only need these)."""
    return mask2d & ~ndimage.binary_erosion(mask2d, border_value=0)


def find_lesions(mask: np.ndarray, affine: np.ndarray, min_voxels: int = 1,
                 midline_tolerance_mm: float = 5.0) -> list[Finding]:
    """The connected lesions of ``mask``, largest first (``label_lesions`` without the label map)."""
    return label_lesions(mask, affine, min_voxels, midline_tolerance_mm)[1]


def label_lesions(mask: np.ndarray, affine: np.ndarray, min_voxels: int = 1,
                  midline_tolerance_mm: float = 5.0) -> tuple[np.ndarray, list[Finding]]:
    """The connected lesions of ``mask``, largest first, and their label map.

    Args:
        mask: ``(X, Y, Z)`` (or ``(1, X, Y, Z)``) binary lesion mask, any value > 0.5 is lesion.
        affine: its 4 x 4 voxel-to-world (RAS, mm) affine.
        min_voxels: components smaller than this are left out.
        midline_tolerance_mm: how close to the midline a lesion counts as ``midline``.

    Returns:
        ``(labels, findings)``: ``labels`` an ``(X, Y, Z)`` int32 array in which the voxels of finding ``k`` (its
        ``lesion`` number, 1 = largest) are ``k`` and everything else, components under ``min_voxels`` included, 0.

    Raises:
        ValueError: a mask that is not 3D, or an affine that is not 4 x 4.
    """
    array = np.asarray(mask)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"a lesion mask is (X, Y, Z) or (1, X, Y, Z), got shape {np.asarray(mask).shape}")
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4) or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise ValueError(f"an affine is a finite, invertible 4 x 4 matrix, got {affine.tolist()}")
    binary = array > 0.5
    labels, count = ndimage.label(binary, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return np.zeros(array.shape, dtype=np.int32), []
    z_axis = axial_axis(affine)
    plane_axes = [a for a in range(3) if a != z_axis]
    spacing = np.linalg.norm(affine[:3, :3], axis=0)  # mm per voxel along each array axis
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    midline_x = float((affine @ np.array([*(np.array(array.shape) - 1) / 2.0, 1.0]))[0])
    sizes = np.bincount(labels.ravel())
    findings = []
    for index in range(1, count + 1):
        if sizes[index] < min_voxels:
            continue
        voxels = np.argwhere(labels == index)
        world = (affine[:3, :3] @ voxels.T).T + affine[:3, 3]
        slices = np.unique(voxels[:, z_axis])
        normal = affine[:3, z_axis] / np.linalg.norm(affine[:3, z_axis])
        u = np.cross(normal, [0.0, 1.0, 0.0] if abs(normal[1]) < 0.9 else [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        in_plane = np.stack([u, np.cross(normal, u)], axis=1)  # world -> in-plane mm (3, 2)
        largest_axial, best_area, best_points, best_z = 0.0, -1, np.zeros((1, 2)), int(slices[0])
        for z in slices:
            in_slice = np.take(labels, int(z), axis=z_axis) == index
            edge = np.argwhere(outline(in_slice)).astype(float)
            corners = np.concatenate([edge + offset for offset in _CORNERS])
            grid = np.zeros((len(corners), 3))
            grid[:, plane_axes[0]], grid[:, plane_axes[1]], grid[:, z_axis] = corners[:, 0], corners[:, 1], z
            points = np.unique(np.round((affine[:3, :3] @ grid.T).T @ in_plane, 4), axis=0)
            largest_axial = max(largest_axial, _diameters(points)[0])
            area = int(in_slice.sum())
            if area > best_area:
                best_area, best_points, best_z = area, points, int(z)
        a, b = _diameters(best_points)
        c = len(slices) * float(spacing[z_axis])
        centroid = world.mean(axis=0)
        offset = centroid[0] - midline_x
        reach = midline_tolerance_mm
        crosses = world[:, 0].min() < midline_x - reach and world[:, 0].max() > midline_x + reach
        side = "midline" if abs(offset) <= midline_tolerance_mm or crosses else ("right" if offset > 0 else "left")
        findings.append(Finding(
            lesion=0, voxels=int(sizes[index]), volume_ml=int(sizes[index]) * voxel_ml,
            abc2_ml=a * b * c / 2.0 / 1000.0, max_axial_diameter_mm=largest_axial,
            first_slice=int(slices.min()), last_slice=int(slices.max()), largest_slice=best_z, side=side,
            centroid_mm=tuple(round(float(x), 1) for x in centroid)))
        findings[-1].lesion = index  # the component's label until renumbered below
    findings.sort(key=lambda f: -f.voxels)
    renumber = np.zeros(count + 1, dtype=np.int32)
    for number, finding in enumerate(findings, start=1):
        renumber[finding.lesion] = number
        finding.lesion = number
    return renumber[labels], findings
