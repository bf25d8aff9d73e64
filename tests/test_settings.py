"""Settings that cannot work are named, all at once, before anything is built."""

from __future__ import annotations

import pytest

from smartnet.settings import SettingsError, check_settings


def test_reference_and_demo_settings_pass():
    check_settings(encoder="resnet50", stem_stride=1, image_size=256, variant="smartnet", consistency=True,
                   negative_sampling="tissue", task="cls", init="upstream")
    check_settings(task="seg", init="upstream_with_decoder", slice_head=True)
    check_settings(task="cls", init="upstream_with_decoder", slice_head=True, seg_evidence=True, seg_peak=True)
    check_settings(encoder="resnet18", stem_stride=2, image_size=96, operator="lstm")


@pytest.mark.parametrize("settings, phrase", [
    ({"image_size": 100, "stem_stride": 1}, "multiple of the output stride 16"),
    ({"image_size": 80, "stem_stride": 2}, "multiple of the output stride 32"),
    ({"encoder": "resnet51"}, "encoder 'resnet51'"),
    ({"stem_stride": 4}, "stem_stride 4"),
    ({"variant": "triple"}, "variant 'triple'"),
    ({"variant": "dual_cls_rec", "consistency": True}, "consistency ties the CLS and SEG heads"),
    ({"variant": "single_cls", "seg_peak": True}, "seg_peak adds the SEG head's peak"),
    ({"seg_prior": 1.0}, "seg_prior 1.0 must be a lesion probability"),
    ({"variant": "single_cls", "seg_prior": 0.01}, "seg_prior sets the SEG head's starting bias"),
    ({"negative_sampling": "random"}, "negative_sampling 'random'"),
    ({"seg_dice": "volume"}, "seg_dice 'volume'"),
    ({"operator": "lstm3d"}, "operator 'lstm3d'"),
    ({"init": "pretrained"}, "init 'pretrained'"),
    ({"task": "both"}, "task 'both'"),
    ({"init": "imagenet", "finetune": True}, "finetune true starts from finetune_model_path"),
    ({"task": "seg", "init": "upstream", "slice_head": True}, "a segmenter's slice_head is the upstream's seg head"),
    ({"task": "cls", "init": "upstream", "seg_evidence": True}, "set init 'upstream_with_decoder'"),
    ({"init": "upstream", "slice_head": True, "seg_peak": True}, "seg_peak comes from an upstream model"),
    ({"init": "imagenet", "slice_head": True}, "slice_head keeps the upstream model's slice head"),
    ({"init": "scratch", "seg_evidence": True}, "seg_evidence uses the upstream model's segmentation decoder"),
    ({"init": "upstream", "slice_head": False, "seg_peak": True}, "seg_peak is part of the upstream's slice logit"),
    ({"init": "scratch", "slice_head": True, "seg_peak": True}, "seg_peak comes from an upstream model"),
])
def test_each_bad_setting_is_named(settings, phrase):
    with pytest.raises(SettingsError, match=phrase):
        check_settings(**settings)


def test_every_problem_at_once():
    with pytest.raises(SettingsError) as info:
        check_settings(encoder="resnet51", image_size=100, stem_stride=1, operator="x")
    assert str(info.value).count(";") == 2


def test_consistency_off_without_seg_head_scratch_and_a_checkpoint_pass():
    check_settings(variant="single_cls", consistency=False)
    check_settings(init="scratch")
    check_settings(task="seg", init="checkpoint", finetune=True, slice_head=True)  # a whole downstream model


def test_settings_record_is_plain_data_and_a_mismatch_names_each_setting(tmp_path):
    import torch

    from smartnet.checkpoints import CheckpointError, check_inference_weights
    from smartnet.settings import SettingsRecord

    trained = SettingsRecord(encoder="resnet18", stem_stride=2, image_size=96, hu_windows=((0, 80),), clahe=True,
                             orientation="PLS", variant="smartnet", seg_peak=True)
    path = tmp_path / "model.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "settings": trained.state_dict()}, path)
    assert torch.load(path, weights_only=True)["settings"]["hu_windows"] == [[0, 80]]  # plain data
    same = SettingsRecord(encoder="resnet18", stem_stride=2, image_size=96, hu_windows=[[0, 80]], clahe=True,
                          orientation="PLS", variant="smartnet", seg_peak=True)
    assert check_inference_weights(path, settings=same) is True
    other = SettingsRecord(encoder="resnet18", stem_stride=1, image_size=256, hu_windows=[[0, 80]], clahe=False,
                           orientation="PLS", variant="smartnet", seg_peak=False)
    with pytest.raises(CheckpointError) as info:
        check_inference_weights(path, settings=other)
    message = str(info.value)
    for phrase in ("stem_stride: 2 in the checkpoint, 1 in this run", "image_size: 96 in the checkpoint, 256",
                   "clahe: True in the checkpoint, False", "seg_peak: True in the checkpoint, False"):
        assert phrase in message
    assert "encoder" not in message.split("this run:")[1].split(".")[0]  # equal settings are not named


def test_a_checkpoint_without_a_record_loads_with_a_warning(tmp_path, capsys):
    import torch

    from smartnet.checkpoints import check_inference_weights
    from smartnet.settings import SettingsRecord

    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, path)
    assert check_inference_weights(path, settings=SettingsRecord(image_size=96)) is True
    assert "carries no settings record" in capsys.readouterr().err
    with pytest.raises(SettingsError, match="not settings that define weights"):
        SettingsRecord(learning_rate=1e-3)
