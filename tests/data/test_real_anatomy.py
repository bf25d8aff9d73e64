"""Synthetic bleeds painted into the real head CT of ../shared/data/head_ct_ge (skipped when it is absent)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import SHARED_DATA
from smartnet.data.demo import HEMORRHAGE_KINDS
from smartnet.data.real_anatomy import write_real_anatomy_set
from smartnet.transforms import head_region

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real head CT not present at {SHARED_DATA}")


@pytest.fixture(scope="module")
def real_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("real_anatomy")
    datalist = write_real_anatomy_set(SHARED_DATA / "ge_head_ct_axial_128.nii.gz", out, n_hemorrhage=5, n_normal=2,
                                      seed=3, verbose=False)
    return out, json.loads(datalist.read_text())


def test_every_kind_is_painted_inside_the_skull(real_set):
    out, datalist = real_set
    kinds = json.loads((out / "kinds.json").read_text())
    assert {k for drawn in kinds.values() for k in drawn} == set(HEMORRHAGE_KINDS)
    assert len(datalist["test"]) == 7
    for entry in datalist["test"]:
        image = np.asarray(nib.load(out / entry["image"]).dataobj)
        mask = np.asarray(nib.load(out / entry["label"]).dataobj) > 0
        if entry["case_id"].endswith("normal"):
            assert not mask.any() and kinds[entry["case_id"]] == []
            continue
        assert mask.sum() >= 3, entry["case_id"]
        blood = image[mask]
        assert 30 <= np.median(blood) <= 100, f"{entry['case_id']}: blood at {np.median(blood)} HU"
        assert (blood > 300).mean() < 0.01  # not in bone
        assert (blood < -100).mean() < 0.01  # not in air


def test_head_region_covers_the_lesions_and_not_the_air(real_set):
    out, datalist = real_set
    entry = datalist["test"][0]
    image = np.asarray(nib.load(out / entry["image"]).dataobj).astype(np.float32)
    mask = np.asarray(nib.load(out / entry["label"]).dataobj) > 0
    region = head_region(np.clip(image / 80.0, 0, 1)[None])
    assert region[mask].all()
    assert region[image < -900].mean() < 0.02


def test_convexity_bleeds_follow_the_skull_not_a_calcification_inside_it():
    """Epidural and subdural blood is painted along the inner table; a calcified choroid plexus or pineal gland (a
    hole in the cavity mask) is not the skull, so no such bleed reaches one."""
    from scipy import ndimage

    from smartnet.data.real_anatomy import anatomy_masks, paint_bleed

    source = nib.load(SHARED_DATA / "ge_head_ct_axial_256.nii.gz")
    hu = np.asarray(source.dataobj).astype(np.float32)
    spacing = tuple(float(v) for v in source.header.get_zooms()[:3])
    masks = anatomy_masks(hu)
    inside = np.stack([ndimage.binary_fill_holes(masks["cavity"][..., z]) for z in range(hu.shape[2])], -1)
    calcified = ndimage.binary_erosion(inside, iterations=3) & (hu > 150)
    assert calcified.sum() >= 10  # the scan's choroid plexus calcifications
    near = ndimage.binary_dilation(calcified, iterations=2)
    for kind in ("epidural", "subdural"):
        for seed in (0, 4, 9, 10):
            blood = paint_bleed(np.random.default_rng(seed), kind, masks, spacing)
            assert blood.sum() > 100 and not (blood & near).any(), (kind, seed)


def test_intraventricular_blood_is_one_region_not_noise_speckle():
    """The ventricles are found by the local mean of the CSF's density, so that the painted blood fills the dependent
    part of a ventricle as one region (a mask of scattered voxels, CSF picked voxel by voxel from the noise, is a
    pattern no scanner makes and no model trained on real bleeds would find)."""
    from scipy import ndimage

    from smartnet.data.real_anatomy import anatomy_masks, paint_bleed

    source = nib.load(SHARED_DATA / "ge_head_ct_axial_256.nii.gz")
    hu = np.asarray(source.dataobj).astype(np.float32)
    spacing = tuple(float(v) for v in source.header.get_zooms()[:3])
    masks = anatomy_masks(hu)
    for seed in (0, 1, 2):
        blood = paint_bleed(np.random.default_rng(seed), "intraventricular", masks, spacing)
        labels, count = ndimage.label(blood)
        assert blood.sum() > 200 and count >= 1, seed
        largest = np.bincount(labels.ravel())[1:].max()
        assert largest >= 0.7 * blood.sum(), (seed, count, largest / blood.sum())


def test_small_bleeds_are_cut_to_the_volume_range(tmp_path):
    """``bleed_ml``: every haemorrhage case holds at most the range's upper volume of blood, most of them at least
    its lower one, and ``volumes.json`` is the mask's voxel count times the voxel volume."""
    datalist = write_real_anatomy_set(SHARED_DATA / "ge_head_ct_axial_128.nii.gz", tmp_path, n_hemorrhage=6,
                                      n_normal=1, seed=5, verbose=False, bleed_ml=(0.5, 4.0))
    volumes = json.loads((tmp_path / "volumes.json").read_text())
    for entry in json.loads(datalist.read_text())["test"]:
        label = nib.load(tmp_path / entry["label"])
        voxel_ml = abs(np.linalg.det(label.affine[:3, :3])) / 1000.0
        ml = float((np.asarray(label.dataobj) > 0).sum()) * voxel_ml
        assert volumes[entry["case_id"]] == pytest.approx(ml, abs=1e-3)
        if entry["case_id"].endswith("hemo"):
            assert 0 < ml <= 4.0 + voxel_ml, (entry["case_id"], ml)
    hemo = [v for case, v in volumes.items() if case.endswith("hemo")]
    assert sum(v >= 0.5 for v in hemo) >= 5, hemo


def test_a_bad_volume_range_is_refused_before_any_case_is_written(tmp_path):
    from smartnet.errors import SettingsError

    with pytest.raises(SettingsError, match="0 < low <= high"):
        write_real_anatomy_set(SHARED_DATA / "ge_head_ct_axial_128.nii.gz", tmp_path / "out", 1, 1, bleed_ml=(5, 1))
    assert not (tmp_path / "out").exists()
