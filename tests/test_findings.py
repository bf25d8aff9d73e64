"""Per-lesion findings: volumes agree with the voxel count and with ABC/2 on ellipsoids; extent and side; the label map
and the key images (radiological view) of ``findings.html``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smartnet.findings import axial_axis, find_lesions, label_lesions
from smartnet.reports.finding_images import radiological_view, write_findings_html, write_key_images


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


def _two_lesions():
    """A 100 x 100 x 10 volume (1 x 1 x 5 mm, RAS identity: +x the patient's right, +y anterior): brain at 30 HU, a
    large bleed on the right and a small one on the left, front half, both widest on slice 5."""
    shape, spacing = (100, 100, 10), (1.0, 1.0, 5.0)
    right = _ellipsoid(shape, spacing, (75.0, 70.0, 25.0), (10.0, 8.0, 12.0))
    left = _ellipsoid(shape, spacing, (25.0, 70.0, 25.0), (5.0, 5.0, 12.0))
    image = np.full(shape, 30.0, dtype=np.float32)
    image[right | left] = 70.0
    return image, right, left, np.diag([*spacing, 1.0])


def test_label_map_numbers_the_findings_and_the_key_slice_is_the_largest():
    image, right, left, affine = _two_lesions()
    labels, findings = label_lesions(right | left, affine)
    assert labels.dtype == np.int32 and set(np.unique(labels)) == {0, 1, 2}
    for finding in findings:
        assert int((labels == finding.lesion).sum()) == finding.voxels
        areas = (labels == finding.lesion).sum(axis=(0, 1))
        assert areas[finding.largest_slice] == areas.max()
    assert (labels[right] == 1).all() and (labels[left] == 2).all()  # 1 = the largest
    small, only_large = label_lesions(right | left, affine, min_voxels=int(left.sum()) + 1)
    assert len(only_large) == 1 and not small[left].any()


@pytest.mark.parametrize("flip", [(1, 1), (-1, 1), (1, -1), (-1, -1)], ids=["RAS", "LAS", "RPS", "LPS"])
def test_radiological_view_puts_the_patients_right_on_the_left_and_anterior_at_the_top(flip):
    """The same anatomy stored in four array orders gives the same picture (transposed arrays included)."""
    _, right, left, affine = _two_lesions()
    plane = (right.astype(int) + 2 * left)[..., 5]  # 1 on the patient's right, 2 on the left
    stored = plane[:: flip[0], :: flip[1]]
    direction = np.diag([float(flip[0]), float(flip[1]), 5.0, 1.0])
    views = [radiological_view(stored, direction, 2)]
    transposed = direction[:, [1, 0, 2, 3]]  # the in-plane axes stored the other way round
    views.append(radiological_view(stored.T, transposed, 2))
    for view in views:
        rows, columns = np.nonzero(view == 1)
        other_rows, other_columns = np.nonzero(view == 2)
        assert columns.mean() < view.shape[1] / 2 < other_columns.mean()  # the patient's right on the viewer's left
        assert rows.mean() < view.shape[0] / 2 and other_rows.mean() < view.shape[0] / 2  # anterior at the top
    assert np.array_equal(views[0], views[1])


def test_key_images_and_findings_page(tmp_path):
    import cv2

    image, right, left, affine = _two_lesions()
    labels, findings = label_lesions(right | left, affine)
    images = write_key_images(tmp_path, "case7", image, labels, findings, affine, 2)
    assert images == {1: "findings/case7_lesion1.png", 2: "findings/case7_lesion2.png"}
    key = cv2.imread(str(tmp_path / images[1]))[..., ::-1]  # RGB
    assert key.shape == (300, 300, 3)  # 100 px enlarged 3 x to at least 256
    red = (key[..., 0] > 200) & (key[..., 1] < 100)
    yellow = (key[..., 0] > 200) & (key[..., 1] > 150) & (key[..., 2] < 100)
    assert red.any() and yellow.any()
    assert np.nonzero(red)[1].mean() < 150 < np.nonzero(yellow)[1].mean()  # lesion 1 (right) on the viewer's left
    brain = key[150, 150]
    assert brain[0] == brain[1] == brain[2] == round(30 / 80 * 255)  # brain window, grey
    cases = {"case7": [f.as_dict() for f in findings], "case8": []}
    page = write_findings_html(tmp_path / "findings.html", cases, {("case7", k): v for k, v in images.items()},
                               unlisted_ml={"case7": 0.0123, "case8": 0.0})
    text = page.read_text()
    assert "and 0.01 mL in smaller parts" in text and text.count("smaller parts") == 1
    assert "src='findings/case7_lesion1.png'" in text and "src='findings/case7_lesion2.png'" in text
    assert "case8: 0 lesion(s)" in text and "No lesion found" in text
    with pytest.raises(ValueError, match="differ in shape"):
        write_key_images(tmp_path, "case9", image[..., :5], labels, findings, affine, 2)
