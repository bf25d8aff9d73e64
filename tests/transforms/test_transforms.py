"""Transforms: HU windows, CLAHE (OpenCV), empty-slice crop, slice sampling, per-slice scaling, head splitting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from smartnet.transforms import (
    CLAHE,
    CLAHEd,
    CropEmptySlicesd,
    HUWindow,
    RandSliceSamplerd,
    SliceMinMaxd,
    SliceScored,
    SplitHeadsd,
)


def test_hu_window_reference_values():
    hu = torch.tensor([-1000.0, 0.0, 40.0, 80.0, 1000.0]).view(1, 5, 1, 1)
    out = HUWindow([[0, 80]])(hu)
    assert torch.allclose(out.flatten(), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_hu_window_multichannel_presets():
    hu = torch.full((1, 2, 2, 1), 40.0)
    out = HUWindow(["brain", "subdural", "bone"])(hu)
    assert out.shape == (3, 2, 2, 1)
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor([0.5, 0.3, 840 / 2800]))


def test_hu_window_errors():
    with pytest.raises(ValueError, match="min < max"):
        HUWindow([[80, 0]])
    with pytest.raises(ValueError, match="unknown HU window"):
        HUWindow(["lung"])
    with pytest.raises(ValueError, match="one-channel"):
        HUWindow()(torch.zeros(2, 4, 4, 1))


def test_hu_window_keeps_metadata_for_inversion():
    img = MetaTensor(torch.zeros(1, 4, 4, 2), affine=torch.diag(torch.tensor([2.0, 2.0, 5.0, 1.0])))
    out = HUWindow()(img)
    assert isinstance(out, MetaTensor) and torch.equal(out.affine, img.affine)


def test_clahe_equals_opencv_per_slice():
    rng = np.random.default_rng(0)
    vol = rng.random((1, 64, 64, 3)).astype(np.float32) ** 2
    out = CLAHE(2.0, (8, 8))(torch.as_tensor(vol)).numpy()
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    for z in range(3):
        expected = clahe.apply(np.rint(vol[0, :, :, z] * 255).astype(np.uint8)) / 255.0
        assert np.allclose(out[0, :, :, z], expected, atol=1e-6)


def test_clahe_switch_off_is_identity():
    data = {"image": torch.rand(1, 16, 16, 2)}
    assert torch.equal(CLAHEd("image", enabled=False)(data)["image"], data["image"])


def test_crop_empty_slices_keeps_contiguous_range():
    image = torch.zeros(1, 4, 4, 6)
    image[..., 1] = 1.0
    image[..., 3] = 1.0  # slice 2 is empty but inside the range: kept
    label = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 4, 4, 6)
    out = CropEmptySlicesd(["image", "label"])({"image": image, "label": label})
    assert out["image"].shape[-1] == 3
    assert out["label"][0, 0, 0].tolist() == [1.0, 2.0, 3.0]


def _volume_with_lesion(depth: int = 10, lesion: dict | None = None) -> dict:
    label = torch.zeros(1, 8, 8, depth)
    for z, n in (lesion or {}).items():
        label[0, :n // 8 + 1, :, z].view(-1)[:n] = 1
    return {"image": torch.rand(1, 8, 8, depth), "label": label}


def test_slice_sampler_reference_weights_by_lesion_size():
    data = _volume_with_lesion(lesion={2: 30, 7: 10})
    sampler = RandSliceSamplerd(["image", "label"], num_samples=4000, negative_fraction=0.0)
    sampler.set_random_state(0)
    picks = [s["slice_index"] for s in sampler(data)]
    assert set(picks) == {2, 7}  # reference: never a lesion-free slice of a haemorrhage volume
    assert abs(picks.count(2) / len(picks) - 0.75) < 0.03  # proportional to lesion voxels


def test_slice_sampler_negative_fraction():
    data = _volume_with_lesion(lesion={2: 30})
    sampler = RandSliceSamplerd(["image", "label"], num_samples=4000, negative_fraction=0.3)
    sampler.set_random_state(1)
    samples = sampler(data)
    negatives = sum(int(s["label"].sum() == 0) for s in samples)
    assert abs(negatives / len(samples) - 0.3) < 0.03
    assert samples[0]["image"].shape == (1, 8, 8)


def test_slice_sampler_uniform_on_normal_volume():
    sampler = RandSliceSamplerd(["image", "label"], num_samples=2000, negative_sampling="uniform")
    sampler.set_random_state(2)
    picks = [s["slice_index"] for s in sampler(_volume_with_lesion())]
    assert set(picks) == set(range(10))
    counts = [picks.count(z) for z in range(10)]  # uniform: about 200 each
    assert max(counts) < 1.4 * min(counts), counts


def test_slice_min_max_is_the_same_for_a_slice_and_its_volume():
    vol = torch.rand(1, 8, 8, 3) * 5 + 2
    vol[..., 2] = 7.0  # constant slice: unchanged
    scaled_vol = SliceMinMaxd("image", volume=True)({"image": vol})["image"]
    for z in range(2):
        alone = SliceMinMaxd("image")({"image": vol[..., z]})["image"]
        assert torch.allclose(scaled_vol[..., z], alone)
        assert float(alone.min()) == 0.0 and float(alone.max()) == 1.0
    assert torch.equal(scaled_vol[..., 2], vol[..., 2])


def test_slice_score_and_split_heads():
    pred = torch.zeros(3, 4, 4)
    pred[0] = 2.0  # cls logit broadcast
    pred[1, 1, 1] = 5.0
    d = SplitHeadsd("pred", tasks=["cls", "seg", "rec"])({"pred": pred, "label": torch.zeros(1, 4, 4)})
    assert d["pred_cls"].shape == d["pred_seg"].shape == d["pred_rec"].shape == (1, 4, 4)
    d = SliceScored(["pred_cls", "label"], ["cls_prob", "cls_label"])(d)
    assert d["cls_prob"].tolist() == [2.0] and d["cls_label"].tolist() == [0.0]
    only = SplitHeadsd("pred", tasks=["cls", "seg", "rec"], heads=["seg"])({"pred": pred})
    assert "pred_cls" not in only and only["pred_seg"][0, 1, 1] == 5.0


def test_volume_label_depth_and_crop_to_depth():
    from smartnet.transforms import CropToDepthd, VolumeDepthd, VolumeLabeld

    mask = torch.zeros(1, 4, 4, 5)
    item = VolumeDepthd("image")(VolumeLabeld()({"image": torch.rand(1, 4, 4, 5), "label": mask}))
    assert item["depth"] == 5 and float(item["volume_label"]) == 0.0
    mask[0, 1, 1, 2] = 1
    assert float(VolumeLabeld()({"label": mask})["volume_label"]) == 1.0
    assert float(VolumeLabeld()({"volume_label": 1})["volume_label"]) == 1.0  # a given volume label is kept
    with pytest.raises(KeyError):
        VolumeLabeld()({"image": mask})
    padded = {"pred": torch.ones(1, 4, 4, 8), "label": torch.zeros(1, 4, 4, 8), "depth": torch.tensor(5)}
    cropped = CropToDepthd(["pred", "label"])(padded)
    assert cropped["pred"].shape == (1, 4, 4, 5) and cropped["label"].shape == (1, 4, 4, 5)


def test_load_ct_reads_dicom_folders_with_the_series_reader_and_files_as_usual(tmp_path):
    """LoadCTd: a DICOM folder through read_dicom_series (same voxels and affine), a NIfTI file through nibabel."""
    import nibabel as nib

    from dicom_series import write_dicom_series
    from smartnet.data import make_volume, read_dicom_series
    from smartnet.transforms import LoadCTd

    volume = make_volume(np.random.default_rng(2), True, size=24, depth=4).image
    affine = np.diag([-0.9, 0.9, 5.0, 1.0])
    write_dicom_series(volume, affine, tmp_path / "series")
    nib.save(nib.Nifti1Image(volume, affine), str(tmp_path / "v_img.nii.gz"))
    loaded = LoadCTd(keys=["image", "nifti"])(
        {"image": str(tmp_path / "series"), "nifti": str(tmp_path / "v_img.nii.gz")}
    )
    series = read_dicom_series(tmp_path / "series")
    assert loaded["image"].shape == (1, 24, 24, 4)
    assert np.array_equal(loaded["image"][0].numpy(), series.array)
    assert np.allclose(loaded["image"].affine.numpy(), series.affine)
    assert np.array_equal(loaded["nifti"][0].numpy(), volume.astype(np.float32))


def test_check_hu_refuses_non_hu_images_naming_the_file():
    from smartnet.transforms import CheckHUd

    air_and_brain = torch.full((1, 8, 8, 2), -1000.0)
    air_and_brain[:, 2:6, 2:6] = 40.0
    good = MetaTensor(air_and_brain, meta={"filename_or_obj": "good.nii.gz"})
    assert CheckHUd(keys="image")({"image": good})["image"] is good
    windowed = MetaTensor(air_and_brain.clamp(0, 80) / 80, meta={"filename_or_obj": "windowed.nii.gz"})
    with pytest.raises(ValueError, match="windowed.nii.gz: values in .* look already windowed"):
        CheckHUd(keys="image")({"image": windowed})


def test_keep_inside_head_zeroes_predictions_in_the_air():
    import numpy as np
    import torch

    from smartnet.data.demo import make_volume
    from smartnet.transforms import HeadRegiond, KeepInsideHeadd

    volume = make_volume(np.random.default_rng(0), False, size=64, depth=6)
    windowed = torch.tensor(np.clip(volume.image / 80.0, 0, 1)[None], dtype=torch.float32)  # HU window [0, 80]
    data = HeadRegiond("image")({"image": windowed, "pred": torch.ones(1, 64, 64, 6)})
    kept = KeepInsideHeadd("pred")(data)["pred"]
    from scipy import ndimage

    air = volume.image < -900
    near_head = np.stack([ndimage.binary_dilation(~air[..., z], iterations=2) for z in range(6)], axis=-1)
    assert kept[0][torch.tensor(air & ~near_head)].sum() == 0  # air beyond the one-pixel margin around the head
    assert kept[0, :2].sum() == 0 and kept[0, -2:].sum() == 0 and kept[0, :, :2].sum() == 0
    brain = torch.tensor((volume.image > 20) & (volume.image < 60))[None]
    assert bool((kept[brain] == 1).all())  # nothing inside the head is touched
    shorter = KeepInsideHeadd("pred")({"head_region": data["head_region"], "pred": torch.ones(1, 64, 64, 4)})
    assert torch.equal(shorter["pred"], kept[..., :4])  # a prediction cropped to the true depth of a padded batch


def test_head_region_leaves_out_what_is_denser_than_blood():
    """With a window that reaches above the ceiling, pixels denser than ``max_hu`` (bone, calcification) leave the
    region while blood-dense and brain pixels stay; with the brain window alone the ceiling cannot be read and the
    region is the head."""
    import numpy as np
    import pytest
    import torch

    from smartnet.transforms import HeadRegiond
    from smartnet.transforms.head_region import denser_than

    hu = np.full((32, 32, 2), -1000.0)
    hu[4:28, 4:28] = 1200.0  # skull
    hu[7:25, 7:25] = 35.0  # brain
    hu[10:14, 10:14] = 80.0  # blood
    hu[18:20, 18:20] = 400.0  # calcification
    windows = [[0, 80], [-20, 180], [-800, 2000]]
    image = np.stack([np.clip((hu - lo) / (hi - lo), 0, 1) for lo, hi in windows])
    dense = denser_than(image, windows, 150.0)
    assert dense[5, 5, 0] and dense[18, 18, 0] and not dense[11, 11, 0] and not dense[15, 15, 0]
    assert denser_than(image[:1], windows[:1], 150.0) is None  # the brain window saturates at 80 HU
    region = HeadRegiond("image", windows=windows, max_hu=150)({"image": torch.tensor(image)})["head_region"][0]
    assert region[11, 11, 0] == 1 and region[15, 15, 1] == 1  # blood and brain stay
    assert region[5, 5, 0] == 0 and region[18, 18, 0] == 0  # skull and calcification leave
    head_only = HeadRegiond("image", windows=windows[:1], max_hu=150)({"image": torch.tensor(image[:1])})
    assert head_only["head_region"][0][5, 5, 0] == 1
    with pytest.raises(ValueError, match="windows"):
        HeadRegiond("image", max_hu=150)
    with pytest.raises(ValueError, match="3 HU windows for an image of 1 channels"):
        denser_than(image[:1], windows, 150.0)


@pytest.mark.parametrize("bundle, config, key", [
    ("smartnet_down_cls", "train.json", "validate#postprocessing"),
    ("smartnet_down_cls", "inference.json", "postprocessing"),
    ("smartnet_upstream", "train.json", "validate#postprocessing"),
    ("smartnet_upstream", "inference.json", "postprocessing"),
])
def test_confident_logits_keep_their_order_as_probabilities(bundle, config, key):
    """The classification probability is the sigmoid in float64: in float32 (MONAI's Activationsd) every logit above
    about 17 is exactly 1.0, so confident scans tie (AUROC 0.5 on real heads where the logits ranked them) and no
    threshold can lie between them."""
    from monai.bundle import ConfigParser

    from conftest import BUNDLES

    parser = ConfigParser()
    files = [BUNDLES / bundle / "configs" / name for name in (config, "demo.json")]
    parser.read_config([str(f) for f in files])
    post = parser.get_parsed_content(key)
    probabilities = []
    for logit in (18.0, 24.0, 30.0):
        if bundle == "smartnet_down_cls":
            item = {"pred": torch.tensor([logit, 0.0, 0.0, 0.0, 0.0, 0.0]), "label": torch.tensor([1.0] + [0.0] * 5)}
            probabilities.append(float(post(item)["pred"][0]))
        else:
            pred = torch.full((2, 8, 8), -3.0)
            pred[0] = logit  # the slice logit, broadcast, then the lesion logits (the demo profile's two heads)
            item = {"pred": MetaTensor(pred), "label": torch.zeros(1, 8, 8)}
            steps = list(post.transforms)  # up to the slice probability (inference goes on to invert the geometry)
            last = next(i for i, t in enumerate(steps) if "pred_cls" in getattr(t, "keys", ()))
            for transform in steps[: last + 1]:
                item = transform(item)
            probabilities.append(float(torch.as_tensor(item["pred_cls"]).flatten()[0]))
    assert probabilities[0] < probabilities[1] < probabilities[2] < 1.0, probabilities
