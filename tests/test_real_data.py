"""Inference on the real head CT in ../shared/data/head_ct_ge (skipped when it is absent): HU and geometry.

The DICOM series there (gantry tilt, uneven slice spacing) is read by ITK as more than one series; handling it is
the work of the real-inputs issue, so only its NIfTI conversion is used here.
"""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from conftest import SHARED_DATA, UPSTREAM, run_bundle
from smartnet.data import check_image

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real head CT not present at {SHARED_DATA}")

TINY_NET = {"encoder": "resnet18", "stem_stride": 2, "image_size": 64}


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
