"""Upstream network: reference parameter counts, shapes for every encoder / stem, packed output, TorchScript."""

from __future__ import annotations

import math

import pytest
import torch

from smartnet.networks import VARIANTS, SmartNet2D, ResNetEncoder, pred_channels, split_heads, variant_tasks
from smartnet.networks.heads import tissue_peak

# trainable parameters of the original implementation's seven models (reference section 1.6)
REFERENCE_COUNTS = {
    "smartnet": 55_545_773,
    "dual_cls_seg": 32_517_143,
    "dual_cls_rec": 46_532_439,
    "dual_seg_rec": 55_543_724,
    "single_cls": 23_503_809,
    "single_seg": 32_515_094,
    "single_rec": 46_530_390,
}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("variant", list(REFERENCE_COUNTS))
def test_reference_parameter_counts(variant):
    model = SmartNet2D(variant_tasks(variant))
    assert n_params(model) == REFERENCE_COUNTS[variant]


def test_reference_part_counts():
    model = SmartNet2D()
    assert n_params(model.encoder) == 23_501_760
    assert n_params(model.cls_head) == 2_049
    assert n_params(model.seg_decoder) == 9_013_189
    assert n_params(model.rec_decoder) == 23_028_485
    assert n_params(model.seg_head) == n_params(model.rec_head) == 145


def test_stem_stride_does_not_change_parameter_count():
    assert n_params(SmartNet2D(stem_stride=2)) == REFERENCE_COUNTS["smartnet"]


@pytest.mark.parametrize(
    "stride, expected",
    [(1, [(1, 64), (64, 64), (256, 32), (512, 16), (1024, 8), (2048, 4)]),
     (2, [(1, 64), (64, 32), (256, 16), (512, 8), (1024, 4), (2048, 2)])],
)
def test_encoder_feature_pyramid(stride, expected):
    features = ResNetEncoder("resnet50", stem_stride=stride)(torch.zeros(1, 1, 64, 64))
    assert [(f.shape[1], f.shape[-1]) for f in features] == expected


@pytest.mark.parametrize("encoder", ["resnet18", "resnet34", "resnet50"])
@pytest.mark.parametrize("stride", [1, 2])
def test_output_shapes_and_packing(encoder, stride):
    model = SmartNet2D(encoder=encoder, stem_stride=stride, in_channels=2).eval()
    x = torch.rand(2, 2, 64, 64)
    with torch.no_grad():
        pred = model(x)
        heads = model.forward_heads(x)
    assert pred.shape == (2, 1 + 1 + 2, 64, 64)
    assert (heads["cls"].shape == (2, 1) and heads["seg"].shape == (2, 1, 64, 64)
            and heads["rec"].shape == (2, 2, 64, 64))
    unpacked = split_heads(pred, model.tasks, in_channels=2)
    for key in heads:
        assert torch.allclose(unpacked[key], heads[key])


def test_pred_channels_follow_canonical_order():
    assert pred_channels(["rec", "cls"]) == {"cls": (0, 1), "rec": (1, 2)}
    assert pred_channels(["seg", "rec"], in_channels=3) == {"seg": (0, 1), "rec": (1, 4)}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_runs(variant):
    model = SmartNet2D(variant_tasks(variant), encoder="resnet18", stem_stride=2).eval()
    with torch.no_grad():
        pred = model(torch.rand(1, 1, 64, 64))
    assert pred.shape[1] == len(VARIANTS[variant])


def test_torchscript_matches_eager():
    model = SmartNet2D(encoder="resnet18", stem_stride=2).eval()
    scripted = torch.jit.script(model)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(scripted(x), model(x))
        assert torch.equal(scripted.forward_heads(x)["seg"], model.forward_heads(x)["seg"])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown encoder"):
        SmartNet2D(encoder="resnet101")
    with pytest.raises(ValueError, match="stem_stride"):
        SmartNet2D(stem_stride=4)
    with pytest.raises(ValueError, match="tasks"):
        SmartNet2D(tasks=["cls", "det"])
    with pytest.raises(ValueError, match="unknown SMART-Net variant"):
        variant_tasks("triple")


def test_seg_peak_adds_the_tissue_peak_of_the_seg_head_to_the_slice_logit():
    """``seg_peak``: cls = head + w * (largest lesion logit over tissue pixels) + b, read without gradient."""
    torch.manual_seed(0)
    model = SmartNet2D(encoder="resnet18", in_channels=3, stem_stride=2, seg_peak=True).eval()
    plain = SmartNet2D(encoder="resnet18", in_channels=3, stem_stride=2).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("seg_peak.")})
    assert n_params(model) == n_params(plain) + 2
    x = torch.rand(2, 3, 64, 64)
    x[:, :, :, :8] = 0  # air: 0 in every window
    with torch.no_grad():
        model.seg_peak.weight.fill_(2.0)
        model.seg_peak.bias.fill_(-1.0)
        heads, ref = model.forward_heads(x), plain.forward_heads(x)
        peak = ref["seg"][:, :, :, 8:].flatten(1).amax(dim=1, keepdim=True)
        assert torch.allclose(heads["cls"], ref["cls"] + 2.0 * peak - 1.0, atol=1e-5)
        assert torch.equal(heads["seg"], ref["seg"])
        # a lesion-like logit in the air does not count; a slice without tissue gives the floor
        seg = torch.zeros(2, 1, 64, 64)
        seg[:, :, 5, 3] = 50.0
        seg[:, :, 20, 20] = 4.0
        assert tissue_peak(seg, x).flatten().tolist() == [4.0, 4.0]
        assert tissue_peak(seg, torch.zeros_like(x)).flatten().tolist() == [-20.0, -20.0]
        scripted = torch.jit.script(model)
        assert torch.equal(scripted(x), model(x))
    model.train()
    model.forward_heads(x)["cls"].sum().backward()
    assert model.seg_head.weight.grad is None or not model.seg_head.weight.grad.any()  # no gradient through the peak
    assert model.seg_peak.weight.grad.abs().item() > 0
    with pytest.raises(ValueError, match="seg_peak needs"):
        SmartNet2D(tasks=["cls", "rec"], seg_peak=True)


def test_seg_prior_starts_the_seg_head_at_the_lesion_prior():
    """``seg_prior``: every pixel starts near that lesion probability (bias log(p / (1 - p))); bad values are named."""
    torch.manual_seed(0)
    model = SmartNet2D(encoder="resnet18", stem_stride=2, seg_prior=0.01).eval()
    assert model.seg_head.bias.item() == pytest.approx(math.log(0.01 / 0.99))
    with torch.no_grad():
        probability = torch.sigmoid(model.forward_heads(torch.rand(2, 1, 64, 64))["seg"])
    assert probability.median().item() < 0.1  # the reference's zero bias starts near 0.5
    assert SmartNet2D(encoder="resnet18", stem_stride=2).seg_head.bias.abs().max().item() == 0.0
    with pytest.raises(ValueError, match="seg_prior must be a probability"):
        SmartNet2D(encoder="resnet18", stem_stride=2, seg_prior=1.5)
    with pytest.raises(ValueError, match="seg_prior sets the SEG head"):
        SmartNet2D(tasks=["cls"], encoder="resnet18", stem_stride=2, seg_prior=0.01)
