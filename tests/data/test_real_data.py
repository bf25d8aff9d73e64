"""The real head CT in ../shared/data/head_ct_ge (skipped when it is absent): HU, orientation and geometry of its
NIfTI conversion and of the original DICOM series (gantry tilt 18.5 degrees, uneven slice spacing), and inference on
both writing results in the input's geometry."""

from __future__ import annotations

import csv
import glob

import nibabel as nib
import numpy as np
import pytest

from conftest import SHARED_DATA, UPSTREAM, run_bundle
from smartnet.data import check_image, read_dicom_series, validate_entries

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real head CT not present at {SHARED_DATA}"),
]

TINY_NET = {"encoder": "resnet18", "stem_stride": 2, "image_size": 64,
            "allow_random_weights": True}  # geometry is under test here, not the weights


def test_real_nifti_is_plausible_hu():
    image = np.asarray(nib.load(SHARED_DATA / "ge_head_ct_axial_128.nii.gz").dataobj)
    assert check_image(image, "ge") == []


def test_inference_on_real_nifti_keeps_geometry(tmp_path):
    source = tmp_path / "in" / "ge_img.nii.gz"
    source.parent.mkdir()
    source.write_bytes((SHARED_DATA / "ge_head_ct_axial_128.nii.gz").read_bytes())
    run_bundle(UPSTREAM, ["inference.json"], {"input": source, **TINY_NET}, bundle_root=tmp_path)
    seg = nib.load(tmp_path / "eval" / "inference" / "ge_img_seg.nii.gz")
    original = nib.load(source)
    assert seg.shape == original.shape and np.allclose(seg.affine, original.affine, atol=1e-3)
    rows = list(csv.DictReader(open(tmp_path / "eval" / "inference" / "slice_probabilities.csv")))
    assert len(rows) == original.shape[2]


DICOM = SHARED_DATA / "dicom"
RAS = np.array([-1.0, -1.0, 1.0])


def _headers() -> list[dict]:
    """Positions (RAS, mm) and pixels of the series' files, read one by one with ITK, sorted along the table."""
    import itk

    slices = []
    for path in sorted(glob.glob(str(DICOM / "*.dcm"))):
        image = itk.imread(path, itk.F)
        position = np.array([float(v) for v in image.GetMetaDataDictionary()["0020|0032"].split("\\")])
        slices.append({"position": position * RAS, "pixels": np.asarray(itk.array_from_image(image))[0].T})
    return sorted(slices, key=lambda s: s["position"][2])


def test_dicom_series_with_gantry_tilt_and_uneven_spacing_reads_as_acquired():
    files = _headers()
    kept = read_dicom_series(DICOM, uneven_spacing="keep")
    assert kept.array.shape == (512, 512, 28) and len(files) == 28
    assert abs(kept.tilt_degrees - 18.5) < 0.1
    assert np.allclose(kept.slice_positions, [s["position"] for s in files], atol=1e-4)
    for k in (0, 13, 14, 27):  # HU exactly as stored (slope 1, intercept 0), each slice in its place
        assert np.array_equal(kept.array[..., k], files[k]["pixels"])
    assert check_image(kept.array, "ge") == []
    brain = kept.array[200:300, 200:300, 10]
    air = np.mean((kept.array > -1100) & (kept.array < -900))  # air in the field of view (outside it: -1500 padding)
    assert air > 0.1 and 15 < np.median(brain[(brain > 0) & (brain < 80)]) < 50  # brain tissue at 20..45 HU
    # the first voxel of slice 0 and the in-plane axes are where the headers put them; the slice axis follows the
    # table (a sheared affine), not the slice normal
    assert np.allclose(kept.affine[:3, 3], files[0]["position"], atol=1e-3)
    normal = np.cross(kept.affine[:3, 0], kept.affine[:3, 1])
    stack = kept.affine[:3, 2] / np.linalg.norm(kept.affine[:3, 2])
    assert np.allclose(stack, [0, 0, 1], atol=1e-6)
    assert abs(np.degrees(np.arccos(abs(normal @ stack) / np.linalg.norm(normal))) - 18.5) < 0.1


def test_dicom_series_uneven_spacing_is_resampled_onto_a_regular_grid():
    files = _headers()
    series = read_dicom_series(DICOM)
    z = np.array([s["position"][2] for s in files])
    step = series.affine[2, 2]
    assert series.resampled and abs(step - 4.22) < 0.01
    assert series.array.shape[2] == int(np.rint((z[-1] - z[0]) / step)) + 1 == 37
    for k in range(14):  # the 4.22 mm part lies on the grid: kept exactly
        assert np.array_equal(series.array[..., k], files[k]["pixels"])
    grid_z = (series.affine @ np.array([0, 0, 20, 1.0]))[2]  # between acquired slices 15 and 16: interpolated
    j = np.searchsorted(z, grid_z) - 1
    w = (grid_z - z[j]) / (z[j + 1] - z[j])
    expected = files[j]["pixels"] * (1 - w) + files[j + 1]["pixels"] * w
    assert np.allclose(series.array[..., 20], expected, atol=1e-2)


def test_dicom_hu_and_orientation_agree_with_an_independent_nifti_conversion():
    """The shared 256 px NIfTI (dcm2niix-style, 2 x 2 block-averaged, clamped at -1024 HU) holds the same slices."""
    kept = read_dicom_series(DICOM, uneven_spacing="keep")
    ours = nib.Nifti1Image(np.maximum(kept.array, -1024).astype(np.float32), kept.affine)
    theirs = nib.load(SHARED_DATA / "ge_head_ct_axial_256.nii.gz")
    transform = nib.orientations.ornt_transform(nib.io_orientation(ours.affine), nib.io_orientation(theirs.affine))
    reoriented = nib.orientations.apply_orientation(np.asarray(ours.dataobj), transform)
    block = reoriented.reshape(256, 2, 256, 2, 28).mean(axis=(1, 3))
    assert np.abs(block - np.asarray(theirs.dataobj)).mean() < 1.0


def test_dicom_series_validates_and_inference_writes_in_its_geometry(tmp_path):
    assert validate_entries([{"image": str(DICOM)}], require_label=False) == []
    out = tmp_path / "out"
    run_bundle(UPSTREAM, ["inference.json"], {"input": DICOM, "output_dir": out, **TINY_NET}, bundle_root=tmp_path)
    series = read_dicom_series(DICOM)
    seg = nib.load(out / "dicom_seg.nii.gz")
    assert seg.shape == series.array.shape
    assert np.allclose(seg.affine, series.affine, atol=1e-3)  # sheared: every voxel at its true position
    rows = list(csv.DictReader(open(out / "slice_probabilities.csv")))
    assert len(rows) == series.array.shape[2]


def test_real_check_paints_without_evaluating_from_any_folder(tmp_path):
    """``smartnet real-check --evaluate false`` run outside the repository: the default source (the GE scan beside
    the repository) is found, the cases are written, no bundle is evaluated (``false`` is False, not a string)."""
    import json
    import subprocess
    import sys

    out = tmp_path / "cases"
    result = subprocess.run([sys.executable, "-m", "smartnet.cli", "real-check", "--output_dir", str(out),
                             "--n_hemorrhage", "1", "--n_normal", "1", "--evaluate", "false"], cwd=tmp_path,
                            capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(json.loads((out / "datalist.json").read_text())["test"]) == 2
    assert "monai.bundle run" not in result.stdout and "Real-anatomy check" not in result.stdout
