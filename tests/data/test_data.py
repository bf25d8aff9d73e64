"""Datalists (pairing by stem), dataset validation (every problem at once), demo data, the slice dataset."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from smartnet.data import (
    DatalistError,
    SliceDataset,
    build_datalist,
    find_images,
    load_datalist,
    make_volume,
    validate_entries,
    write_datalist,
)

AFFINE = np.diag([-0.9, 0.9, 5.0, 1.0])


def save(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def head(shape=(16, 16, 4)) -> np.ndarray:
    img = np.full(shape, -1000, np.int16)
    img[4:12, 4:12] = 35
    return img


def make_layout(root: Path, cases: dict[str, list[str]]) -> None:
    for split, names in cases.items():
        for name in names:
            save(root / split / name, head() if "_img" in name else np.zeros((16, 16, 4), np.uint8))


def test_datalist_pairs_by_stem_with_nii_and_niigz(tmp_path):
    make_layout(
        tmp_path,
        {
            "train": ["b_img.nii.gz", "a_mask.nii", "a_img.nii.gz", "b_mask.nii.gz"],
            "valid": ["c_img.nii", "c_mask.nii.gz"],
            "test": ["d_img.nii.gz"],  # no mask needed for test
        },
    )
    datalist = build_datalist(tmp_path)
    assert [(e["case_id"], e["image"], e["label"]) for e in datalist["training"]] == [
        ("a", "train/a_img.nii.gz", "train/a_mask.nii"),
        ("b", "train/b_img.nii.gz", "train/b_mask.nii.gz"),
    ]
    assert datalist["test"] == [{"image": "test/d_img.nii.gz", "case_id": "d"}]


def test_datalist_lists_every_problem(tmp_path):
    make_layout(tmp_path, {"train": ["a_img.nii.gz", "z_mask.nii.gz"], "valid": ["v_mask.nii.gz"]})
    with pytest.raises(DatalistError) as err:
        build_datalist(tmp_path)
    text = str(err.value)
    assert "a_img.nii.gz: no mask" in text
    assert "z_mask.nii.gz: mask without an image" in text
    assert "v_mask.nii.gz: mask without an image" in text
    assert "test: missing split folder" in text
    assert text.startswith("5 problem(s)")


def test_datalist_with_dicom_series_folder(tmp_path):
    make_layout(tmp_path, {"train": ["a_img.nii.gz", "a_mask.nii.gz"], "valid": ["c_img.nii", "c_mask.nii"]})
    series = tmp_path / "test" / "patient7"
    series.mkdir(parents=True)
    (series / "0001.dcm").write_bytes(b"")
    assert build_datalist(tmp_path)["test"] == [{"image": "test/patient7", "case_id": "patient7"}]


def test_load_datalist_resolves_paths_and_errors(tmp_path):
    make_layout(tmp_path, {"train": ["a_img.nii.gz", "a_mask.nii.gz"], "valid": ["c_img.nii", "c_mask.nii"],
                           "test": ["d_img.nii.gz"]})
    path = write_datalist(tmp_path)
    entries = load_datalist(path, "training")
    assert entries[0]["image"] == str(tmp_path / "train" / "a_img.nii.gz")
    with pytest.raises(DatalistError, match="no 'testing' list"):
        load_datalist(path, "testing")
    with pytest.raises(DatalistError, match="datalist not found"):
        load_datalist(tmp_path / "nope.json", "training")


def test_find_images_skips_masks(tmp_path):
    make_layout(tmp_path, {"test": ["d_img.nii.gz", "d_mask.nii.gz", "e_img.nii"]})
    assert [e["case_id"] for e in find_images(tmp_path / "test")] == ["d", "e"]
    assert find_images(tmp_path / "test" / "e_img.nii")[0]["case_id"] == "e"
    with pytest.raises(DatalistError, match="does not exist"):
        find_images(tmp_path / "missing")


@pytest.mark.parametrize("anatomy", ["phantom", "head"])
def test_demo_volume_is_deterministic_and_plausible(anatomy):
    a = make_volume(np.random.default_rng(7), True, size=96, depth=12, anatomy=anatomy)
    b = make_volume(np.random.default_rng(7), True, size=96, depth=12, anatomy=anatomy)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.image.dtype == np.int16 and a.image.min() <= -990  # air
    assert np.percentile(a.image, 99.9) > 700  # bone
    blood = a.image[a.mask > 0]
    assert a.mask.sum() > 0 and 40 < np.median(blood) < 100
    assert a.kinds and a.spacing[2] == 5.0 and a.affine[0, 0] < 0  # LAS
    normal = make_volume(np.random.default_rng(8), False, size=96, depth=12, anatomy=anatomy)
    assert normal.mask.sum() == 0 and normal.kinds == ()
    with pytest.raises(ValueError, match="anatomy"):
        make_volume(np.random.default_rng(8), False, size=32, depth=4, anatomy="skull")


def test_demo_normal_head_holds_the_mimics_of_blood():
    """A lesion-free volume has the dense normal structures a model must leave alone (falx, sinus, calcifications,
    partial volume at the inner table: 50-90 HU inside the head), brain touching the inner table somewhere, and no
    mask; at 1 mm pixels so the thin structures are resolved."""
    from scipy import ndimage

    vol = make_volume(np.random.default_rng(11), False, size=224, depth=24, anatomy="head")
    assert vol.mask.sum() == 0
    image = vol.image.astype(float)
    bone = image > 300
    inside = np.stack([ndimage.binary_fill_holes(bone[..., z]) for z in range(image.shape[2])], -1) & ~bone
    dense = inside & (image > 50) & (image < 90)
    assert dense.sum() > 300, "no blood-like normal structures: the generator would teach 'bright = bleed'"
    brain_next_to_bone = inside & (image > 20) & (image < 45) & ndimage.binary_dilation(bone, iterations=1)
    assert brain_next_to_bone.sum() > 200, "a CSF rim everywhere would teach 'tissue at the inner table = bleed'"


@pytest.mark.parametrize("anatomy", ["phantom", "head"])
def test_demo_brain_is_brighter_along_the_inner_table_as_on_a_real_scan(anatomy):
    """The scanner's bright band inside the skull (``skull_glare``): on the real GE head CT the brain reads 68 HU at
    1-2 mm from the bone and 40 HU at 5-6 mm, so that half the cavity pixels within 3 mm of the bone have blood's
    55-90 HU; a generator without it teaches "dense rim along the bone = subdural blood". Median over lesion-free
    volumes at 1 mm pixels, by distance from the bone contour at 300 HU."""
    from scipy import ndimage

    from smartnet.data.real_anatomy import anatomy_masks

    near, deep = [], []
    for seed in range(3):
        vol = make_volume(np.random.default_rng(20 + seed), False, size=224, depth=8, anatomy=anatomy,
                          inner_table_band=True)
        image = vol.image.astype(np.float32)
        cavity = anatomy_masks(image)["cavity"]
        for z in range(image.shape[2]):
            if cavity[..., z].sum() < 5000:  # mid-brain slices only
                continue
            mm = ndimage.distance_transform_edt(image[..., z] <= 300, sampling=vol.spacing[:2])
            near.append(np.median(image[..., z][cavity[..., z] & (mm > 1) & (mm <= 2)]))
            deep.append(np.median(image[..., z][cavity[..., z] & (mm > 5) & (mm <= 6)]))
    assert len(near) >= 3
    assert np.median(near) - np.median(deep) > 5, (np.median(near), np.median(deep))  # without the band: < 0


def test_inner_table_band_is_a_switch_that_leaves_the_rest_of_the_volume_as_it_was():
    with_band = make_volume(np.random.default_rng(5), True, size=96, depth=10, inner_table_band=True)
    without = make_volume(np.random.default_rng(5), True, size=96, depth=10, inner_table_band=False)
    assert np.array_equal(with_band.mask, without.mask) and with_band.kinds == without.kinds
    excess = with_band.image.astype(np.int32) - without.image.astype(np.int32)
    assert excess.min() >= -1 and (excess > 5).sum() > 100  # only added, along the bone


def test_skull_glare_stays_inside_the_skull_and_fades_with_depth():
    from smartnet.data.demo_anatomy import skull_glare

    depth = np.broadcast_to(np.linspace(-5.0, 20.0, 26)[:, None, None], (26, 8, 4)).copy()  # mm below the inner table
    excess = skull_glare(np.random.default_rng(0), depth, depth >= 0, 4)
    assert excess.shape == depth.shape and excess.dtype == np.float32
    assert np.all(excess[depth < 0] == 0) and np.all(excess >= 0)
    profile = excess.mean(axis=(1, 2))[5:]
    assert profile[0] > 20 and np.all(np.diff(profile) <= 0) and profile[8] < 0.05 * profile[0]


@pytest.mark.parametrize("kind", ["epidural", "subdural", "intraparenchymal", "intraventricular", "subarachnoid"])
def test_demo_bleed_of_each_kind_lies_inside_the_skull(kind):
    from scipy import ndimage

    vol = make_volume(np.random.default_rng(12), True, size=128, depth=24, kinds=(kind,), anatomy="head")
    assert set(vol.kinds) == {kind} and vol.mask.sum() >= 3
    bone = vol.image > 300
    inside = np.stack([ndimage.binary_fill_holes(bone[..., z]) for z in range(bone.shape[2])], -1)
    assert (vol.mask.astype(bool) & ~inside).sum() <= 0.02 * vol.mask.sum()
    assert 40 < np.median(vol.image[vol.mask > 0]) < 100


def test_demo_default_geometry_is_realistic():
    vol = make_volume(np.random.default_rng(0), False, depth=28)
    assert vol.image.shape == (512, 512, 28)
    assert 0.4 < vol.spacing[0] < 0.5


# -------------------------------------------------------------------------------------------- slice dataset
def test_slice_dataset_covers_every_slice():
    volumes = [
        {"image": np.random.rand(1, 4, 4, 3).astype(np.float32), "label": np.zeros((1, 4, 4, 3)), "case_id": "a"},
        {"image": np.random.rand(1, 4, 4, 2).astype(np.float32), "label": np.ones((1, 4, 4, 2)), "case_id": "b"},
    ]
    import torch

    volumes = [{k: torch.as_tensor(v) if k != "case_id" else v for k, v in d.items()} for d in volumes]
    ds = SliceDataset(volumes)
    assert len(ds) == 5
    items = [ds[i] for i in range(5)]
    assert [(i["case_id"], i["slice_index"]) for i in items] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    assert items[4]["image"].shape == (1, 4, 4) and torch.equal(items[4]["image"], volumes[1]["image"][..., 1])


def test_dicom_series_round_trip_and_validation(tmp_path):
    """A written DICOM series reads back (ITK) as the same voxels in world space and validates as HU."""
    from monai.data import MetaTensor
    from monai.transforms import LoadImage, Orientation

    from dicom_series import write_dicom_series

    import locale

    volume = make_volume(np.random.default_rng(3), True, size=40, depth=5)
    affine = np.array([[-0.45, 0, 0, 90.0], [0, 0.45, 0, -80.0], [0, 0, 5.0, -30.0], [0, 0, 0, 1]])
    before = locale.setlocale(locale.LC_ALL)
    paths = write_dicom_series(volume.image, affine, tmp_path / "test" / "p1")
    assert len(paths) == 5
    assert locale.setlocale(locale.LC_ALL) == before  # GDCM's writer would leave the process in the "C" locale
    read = LoadImage(image_only=True, reader="ITKReader", ensure_channel_first=True)(str(tmp_path / "test" / "p1"))
    original = MetaTensor(torch.as_tensor(volume.image[None], dtype=torch.float32), affine=torch.as_tensor(affine))
    a, b = Orientation("RAS", labels=None)(read), Orientation("RAS", labels=None)(original)
    assert torch.equal(a.as_tensor(), b.as_tensor())
    assert np.allclose(np.asarray(a.affine), np.asarray(b.affine), atol=1e-4)
    assert validate_entries([{"image": str(tmp_path / "test" / "p1")}], require_label=False) == []


def _world_lookup(array: np.ndarray, affine: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Values of ``array`` at world points (N, 3) (nearest voxel of ``affine``)."""
    index = np.rint((np.linalg.inv(affine) @ np.c_[world, np.ones(len(world))].T)[:3].T).astype(int)
    return array[tuple(index.T)]


def test_dicom_reader_puts_a_gantry_tilted_series_in_place(tmp_path):
    """A series whose slices are stacked along the table, 20 degrees off their normal, reads back with a sheared
    affine that puts every voxel where it was written (MONAI's ITK reader would stack along the normal)."""
    from dicom_series import write_dicom_series
    from smartnet.data import read_dicom_series

    volume = make_volume(np.random.default_rng(4), True, size=40, depth=6).image
    tilt = np.radians(20.0)
    affine = np.array([[-0.5, 0, 0, 10.0], [0, 0.5 * np.cos(tilt), 0, -20.0], [0, 0.5 * np.sin(tilt), 4.0, 30.0],
                       [0, 0, 0, 1]])
    write_dicom_series(volume, affine, tmp_path / "tilted")
    series = read_dicom_series(tmp_path / "tilted")
    assert abs(series.tilt_degrees - 20.0) < 0.05 and not series.resampled
    rng = np.random.default_rng(0)
    index = np.c_[rng.integers(0, 40, 200), rng.integers(0, 40, 200), rng.integers(0, 6, 200)]
    world = (affine @ np.c_[index, np.ones(200)].T)[:3].T
    assert np.array_equal(_world_lookup(series.array, series.affine, world), volume[tuple(index.T)])


def test_dicom_reader_resamples_uneven_spacing_or_keeps_it(tmp_path):
    """Slices 4 mm apart then 7 mm apart (one series): resampled every 4 mm (acquired slices on the grid kept
    exactly, the others interpolated; the last point, 1 mm past the last slice, takes that slice) or kept as acquired
    with the mean step."""
    from dicom_series import write_dicom_series
    from smartnet.data import read_dicom_series

    volume = make_volume(np.random.default_rng(5), False, size=32, depth=10).image
    folder = tmp_path / "uneven"
    thin = np.diag([-0.6, 0.6, 4.0, 1.0])
    thick = np.diag([-0.6, 0.6, 7.0, 1.0])
    thick[2, 3] = 4.0 * 4 + 7.0  # continues 7 mm after the last thin slice
    write_dicom_series(volume[..., :5], thin, folder, file_prefix="thin")
    write_dicom_series(volume[..., 5:], thick, folder, file_prefix="thick")
    acquired = volume[:, ::-1].astype(np.float32)  # rows are stored top-down (the writer flips y for this affine)
    kept = read_dicom_series(folder, uneven_spacing="keep")
    assert kept.array.shape == (32, 32, 10) and np.array_equal(kept.array, acquired)
    assert np.allclose(kept.slice_positions[:, 2], [0, 4, 8, 12, 16, 23, 30, 37, 44, 51])
    grid = read_dicom_series(folder)
    assert grid.resampled and grid.affine[2, 2] == pytest.approx(4.0)
    assert grid.array.shape == (32, 32, 14)  # 0, 4, ..., 52 mm: the finest regular step, nothing acquired is lost
    for k, z in enumerate(range(0, 49, 4)):
        if z in (0, 4, 8, 12, 16, 44):  # on an acquired slice
            j = [0, 4, 8, 12, 16, 23, 30, 37, 44, 51].index(z)
            assert np.array_equal(grid.array[..., k], acquired[..., j])
    w = (24 - 23) / 7  # 24 mm lies between the slices at 23 and 30 mm
    assert np.allclose(grid.array[..., 6], acquired[..., 5] * (1 - w) + acquired[..., 6] * w, atol=1e-3)
    assert np.array_equal(grid.array[..., 13], acquired[..., 9])


def test_dicom_rescale_intercept_is_honoured(tmp_path):
    """Stored values HU + 1024 with intercept -1024 read as HU; the same values without rescale tags are refused."""
    from dicom_series import write_dicom_series
    from smartnet.data import read_dicom_series

    volume = make_volume(np.random.default_rng(6), True, size=24, depth=4).image
    affine = np.diag([-0.8, 0.8, 5.0, 1.0])
    paths = write_dicom_series(volume, affine, tmp_path / "rescaled", rescale_intercept=-1024.0)
    stored = np.frombuffer(paths[-1].read_bytes()[-24 * 24 * 2:], np.int16).reshape(24, 24).T  # pixel data is last
    assert np.array_equal(stored, volume[:, ::-1, -1] + 1024)  # the file really holds unsigned-style values
    read = read_dicom_series(tmp_path / "rescaled")
    assert np.array_equal(read.array[:, ::-1], volume.astype(np.float32))
    write_dicom_series(volume + 1024, affine, tmp_path / "raw", rescale_intercept=None)
    problems = validate_entries([{"image": str(tmp_path / "raw")}], require_label=False)
    assert len(problems) == 1 and "without the rescale slope/intercept" in problems[0]


def test_mixed_demo_dataset_alternates_phantom_and_head_within_each_class(tmp_path):
    """``anatomy="mixed"``: in every split the haemorrhage cases and the lesion-free cases each alternate phantom,
    head, phantom...: the files are exactly those volumes, drawn in order from the dataset's seed."""
    from smartnet.data import write_demo_dataset

    write_demo_dataset(tmp_path, n_train=4, n_valid=2, n_test=1, size=48, depth=6, seed=5, verbose=False,
                       anatomy="mixed")
    rng = np.random.default_rng(5)
    expected = ["phantom", "head", "phantom", "head", "phantom", "phantom"]  # train: 2 + 2, valid: 1 + 1
    hemo = [True, True, False, False, True, False]
    files = sorted((tmp_path / "train").glob("*_img.nii.gz")) + sorted((tmp_path / "valid").glob("*_img.nii.gz"))
    assert len(files) == 6
    for path, anatomy, has_bleed in zip(files, expected, hemo):
        volume = make_volume(rng, has_bleed, size=48, depth=6, anatomy=anatomy)
        assert np.array_equal(np.asarray(nib.load(path).dataobj), volume.image), (path.name, anatomy)
    assert json.loads((tmp_path / "generator.json").read_text())["anatomy"] == "mixed"
    with pytest.raises(ValueError, match="anatomy"):
        write_demo_dataset(tmp_path / "bad", n_train=1, n_valid=1, n_test=1, size=32, depth=4, anatomy="skull")


def test_shrink_bleed_keeps_the_nearest_voxels_in_one_piece():
    """A crescent cut to a volume keeps exactly that many of its own voxels, around its middle, in one piece; a mask
    already small enough comes back unchanged."""
    from scipy import ndimage

    from smartnet.data.real_anatomy import shrink_bleed

    y, x = np.mgrid[:64, :64]
    radius = np.hypot(y - 32, x - 32)
    crescent = np.repeat(((radius > 24) & (radius <= 28) & (y < 32))[..., None], 5, axis=-1)
    cut = shrink_bleed(crescent, 300, (1.0, 1.0, 4.0))
    assert cut.sum() == 300 and not (cut & ~crescent).any()
    assert ndimage.label(cut)[1] == 1
    assert shrink_bleed(crescent, int(crescent.sum()), (1.0, 1.0, 4.0)) is crescent
