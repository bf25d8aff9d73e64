"""ImageNet initialisation from a local torchvision-format file: which keys load, and the summed first convolution."""

from __future__ import annotations

import pytest
import torch

from imagenet_format import torchvision_resnet_state_dict
from smartnet.handlers import PretrainedWeightsLoader
from smartnet.networks import (SmartNetVolumeClassifier, SmartNetVolumeSegmenter, TransferError, adapt_first_conv,
                               load_imagenet_resnet, load_pretrained)


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("imagenet") / "resnet18.pth"
    torch.save(torchvision_resnet_state_dict("resnet18"), path)
    return path


def test_every_encoder_tensor_loads_and_conv1_is_summed_to_one_channel(resnet18_file):
    source = torchvision_resnet_state_dict("resnet18")
    model = SmartNetVolumeClassifier(encoder="resnet18", stem_stride=1)
    head_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    report = load_imagenet_resnet(model, resnet18_file)
    expected = sorted("encoder." + k for k in source if not k.startswith("fc."))
    assert report.loaded == expected and len(expected) == 100  # 20 convolutions + 20 batch norms x 4
    assert report.ignored == ["fc.bias", "fc.weight"]
    assert "ImageNet classifier (fc)" in report.summary()
    state = model.state_dict()
    torch.testing.assert_close(state["encoder.conv1.weight"], source["conv1.weight"].sum(dim=1, keepdim=True))
    assert state["encoder.conv1.weight"].shape == (64, 1, 7, 7)
    for key in ("layer3.1.conv2.weight", "layer4.0.downsample.0.weight", "bn1.running_var", "layer2.0.bn1.bias"):
        assert torch.equal(state["encoder." + key], source[key]), key
    for key, value in head_before.items():  # the operator and the classifier head keep their initialisation
        assert torch.equal(state[key], value), key


def test_several_input_channels_cycle_the_rgb_filters():
    weight = torch.randn(8, 3, 7, 7)
    torch.testing.assert_close(adapt_first_conv(weight, 3), weight)
    two = adapt_first_conv(weight, 2)
    torch.testing.assert_close(two, weight[:, :2] * 1.5)
    five = adapt_first_conv(weight, 5)
    torch.testing.assert_close(five, torch.cat([weight, weight[:, :2]], dim=1) * 0.6)


def test_segmenter_gets_the_encoder_only(resnet18_file):
    model = SmartNetVolumeSegmenter(encoder="resnet18", stem_stride=2, in_channels=3)
    decoder_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("seg_decoder.")}
    report = load_imagenet_resnet(model, resnet18_file)
    assert all(k.startswith("encoder.") for k in report.loaded)
    assert torch.equal(model.state_dict()["encoder.conv1.weight"], torchvision_resnet_state_dict()["conv1.weight"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in decoder_before.items())


def test_wrong_depth_or_missing_file_is_explained(resnet18_file, tmp_path):
    with pytest.raises(TransferError, match="does not fit the 318-tensor encoder") as err:
        load_imagenet_resnet(SmartNetVolumeClassifier(encoder="resnet50"), resnet18_file)
    assert "layer1.0.conv3.weight: not in the file" in str(err.value)
    with pytest.raises(TransferError, match="ImageNet weights not found at .*download.pytorch.org/models/resnet50"):
        load_imagenet_resnet(SmartNetVolumeClassifier(encoder="resnet18"), tmp_path / "nowhere.pth")
    not_resnet = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, not_resnet)
    with pytest.raises(TransferError, match="not a torchvision ResNet state dict"):
        load_imagenet_resnet(SmartNetVolumeClassifier(encoder="resnet18"), not_resnet)


def test_resnet50_layout_matches_the_encoder(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision_resnet_state_dict("resnet50"), path)
    report = load_imagenet_resnet(SmartNetVolumeClassifier(encoder="resnet50"), path)
    assert len(report.loaded) == 318 - 53  # every encoder tensor but the 53 num_batches_tracked counters


def test_imagenet_is_a_source_not_an_upstream_load_type(resnet18_file):
    with pytest.raises(TransferError, match="unknown load type 'imagenet'"):
        load_pretrained(SmartNetVolumeClassifier(encoder="resnet18"), resnet18_file, "imagenet")


def test_the_init_handler_loads_what_init_names(resnet18_file, tmp_path):
    from ignite.engine import Engine

    model = SmartNetVolumeClassifier(encoder="resnet18", stem_stride=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    engine = Engine(lambda e, b: None)
    for init in ("scratch", "checkpoint"):  # random weights; MONAI's CheckpointLoader loads the checkpoint
        PretrainedWeightsLoader(model, init, str(tmp_path / "none.pt"), str(tmp_path / "none.pth"))(engine)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    PretrainedWeightsLoader(model, "imagenet", str(tmp_path / "none.pt"), str(resnet18_file))(engine)
    assert not torch.equal(model.state_dict()["encoder.conv1.weight"], before["encoder.conv1.weight"])
    with pytest.raises(ValueError, match="init 'pretrained' is not one of"):
        PretrainedWeightsLoader(model, "pretrained", "x")
