"""Per-lesion findings: volumes agree with the voxel count and with ABC/2 on ellipsoids; extent and side."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smartnet.findings import axial_axis, find_lesions


def _ellipsoid(shape, spacing, centre_mm, radii_mm):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre_mm, radii_mm)) <= 1.0


@pytest.mark.parametrize("radii", [(20.0, 12.0, 15.0), (8.0, 8.0, 10.0), (30.0, 18.0, 24.0)])
def test_volume_is_the_voxel_count_and_abc2_is_within_its_tolerance_on_ellipsoids(radii):
    spacing = (0.5, 0.5, 2.5)  # mm: a 0.5 mm in-plane, 2.5 mm slice head CT
    shape = (200, 200, 48)
    mask = _ellipsoid(shape, spacing, (50.0, 50.0, 60.0), radii)
    affine = np.diag([*spacing, 1.0])
    (finding,) = find_lesions(mask, affine)
    assert finding.voxels == int(mask.sum())
    assert finding.volume_ml == pytest.approx(mask.sum() * 0.5 * 0.5 * 2.5 / 1000.0)
    analytic = 4.0 / 3.0 * math.pi * np.prod(radii) / 1000.0
    assert finding.volume_ml == pytest.approx(analytic, rel=0.1)  # 2.5 mm slices quantise the top and bottom
    # ABC/2 is pi/6 x ABC = 0.52 ABC: within 20 % of the volume on ellipsoids (its known accuracy), but not 2x off
    assert finding.abc2_ml == pytest.approx(finding.volume_ml, rel=0.2)
    assert finding.max_axial_diameter_mm == pytest.approx(2 * max(radii[:2]), abs=1.5)
    z = np.flatnonzero(mask.any(axis=(0, 1)))
    assert (finding.first_slice, finding.last_slice) == (z.min(), z.max())


def test_lesions_are_split_sorted_and_sided_in_ras():
    spacing = (1.0, 1.0, 5.0)
    shape = (100, 100, 10)
    # RAS world: +x towards the patient's right; the field of view's centre is the midline (x = 49.5 mm)
    right = _ellipsoid(shape, spacing, (80.0, 50.0, 25.0), (8.0, 8.0, 10.0))
    left = _ellipsoid(shape, spacing, (20.0, 50.0, 25.0), (5.0, 5.0, 10.0))
    middle = _ellipsoid(shape, spacing, (49.0, 80.0, 25.0), (12.0, 4.0, 10.0))
    findings = find_lesions(right | left | middle, np.diag([*spacing, 1.0]))
    assert [f.lesion for f in findings] == [1, 2, 3]
    assert [f.voxels for f in findings] == sorted([int(m.sum()) for m in (right, left, middle)], reverse=True)
    sides = {round(f.centroid_mm[0]): f.side for f in findings}
    assert sides == {80: "right", 20: "left", 49: "midline"}
    # a flipped x axis (LPS-like array order) moves the world, not the anatomy
    flipped = np.diag([-1.0, 1.0, 5.0, 1.0])
    assert {f.side for f in find_lesions(right, flipped)} == {"left"}
    assert find_lesions(np.zeros(shape), np.eye(4)) == []
    assert find_lesions(right | left, np.diag([*spacing, 1.0]), min_voxels=int(left.sum()) + 1)[0].side == "right"


def test_axial_axis_and_bad_inputs():
    assert axial_axis(np.diag([0.5, 0.5, 5.0, 1.0])) == 2
    assert axial_axis(np.array([[0, 0, 0.5, 0], [0, 0.5, 0, 0], [5.0, 0, 0, 0], [0, 0, 0, 1]])) == 0
    with pytest.raises(ValueError, match="shape"):
        find_lesions(np.zeros((4, 4)), np.eye(4))
    with pytest.raises(ValueError, match="invertible"):
        find_lesions(np.zeros((4, 4, 4)), np.zeros((4, 4)))
