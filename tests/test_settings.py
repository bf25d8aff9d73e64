"""Settings that cannot work are named, all at once, before anything is built."""

from __future__ import annotations

import pytest

from smartnet.settings import SettingsError, check_settings


def test_reference_and_demo_settings_pass():
    check_settings(encoder="resnet50", stem_stride=1, image_size=256, variant="smartnet", consistency=True,
                   negative_sampling="tissue", init="upstream", load_pretrained=True, freeze_encoder=True)
    check_settings(encoder="resnet18", stem_stride=2, image_size=96, operator="lstm")


@pytest.mark.parametrize("settings, phrase", [
    ({"image_size": 100, "stem_stride": 1}, "multiple of the output stride 16"),
    ({"image_size": 80, "stem_stride": 2}, "multiple of the output stride 32"),
    ({"encoder": "resnet51"}, "encoder 'resnet51'"),
    ({"stem_stride": 4}, "stem_stride 4"),
    ({"variant": "triple"}, "variant 'triple'"),
    ({"variant": "dual_cls_rec", "consistency": True}, "consistency ties the CLS and SEG heads"),
    ({"negative_sampling": "random"}, "negative_sampling 'random'"),
    ({"operator": "lstm3d"}, "operator 'lstm3d'"),
    ({"init": "pretrained"}, "init 'pretrained'"),
    ({"init": "upstream", "load_pretrained": False, "freeze_encoder": True}, "frozen, randomly initialised"),
])
def test_each_bad_setting_is_named(settings, phrase):
    with pytest.raises(SettingsError, match=phrase):
        check_settings(**settings)


def test_every_problem_at_once():
    with pytest.raises(SettingsError) as info:
        check_settings(encoder="resnet51", image_size=100, stem_stride=1, operator="x")
    assert str(info.value).count(";") == 2


def test_consistency_off_on_a_model_without_seg_head_and_scratch_without_weights_pass():
    check_settings(variant="single_cls", consistency=False)
    check_settings(init="scratch", load_pretrained=False, freeze_encoder=False)
    check_settings(init="upstream", load_pretrained=False, freeze_encoder=True, finetune=True)  # fine-tune loads
