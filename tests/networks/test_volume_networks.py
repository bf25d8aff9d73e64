"""Downstream volume models: parameter counts, padding / chunking invariance, freezing, transfer, unfreezing."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine

from smartnet.handlers import REFERENCE_UNFREEZE_SCHEDULE, GradualUnfreezing, scale_schedule
from smartnet.losses import DiceBCELoss, VolumeDiceBCELoss
from smartnet.networks import (
    OPERATORS,
    SmartNet2D,
    SmartNetVolumeClassifier,
    SmartNetVolumeSegmenter,
    TransferError,
    load_pretrained,
)

SMALL = {"encoder": "resnet18", "stem_stride": 2}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_reference_parameter_counts():
    assert count(SmartNetVolumeClassifier()) == 40_820_673
    segmenter = SmartNetVolumeSegmenter()
    assert count(segmenter) == 32_529_302
    assert count(segmenter.volume_head) == 14_353


@pytest.mark.parametrize("operator", OPERATORS)
def test_classifier_ignores_padding_and_scripts(operator):
    torch.manual_seed(0)
    model = SmartNetVolumeClassifier(**SMALL, operator=operator, chunk_size=3).eval()
    x = torch.rand(2, 1, 64, 64, 6)
    with torch.no_grad():
        padded = model(x, torch.tensor([4, 6]))
        alone = torch.cat([model(x[:1, ..., :4]), model(x[1:])])
        scripted = torch.jit.script(model)(x, torch.tensor([4, 6]))
    assert padded.shape == (2, 1)
    assert torch.allclose(padded, alone, atol=1e-5)
    assert torch.allclose(scripted, padded, atol=1e-5)
    if operator in ("lstm", "transformer"):  # the padding really is the part that is ignored
        with torch.no_grad():
            assert not torch.allclose(model(x, torch.tensor([6, 6]))[0], padded[0], atol=1e-4)


@pytest.mark.parametrize("operator", OPERATORS)
def test_no_depths_equals_full_depths(operator):
    """``depths=None`` (no padding) takes the unmasked, unpacked path and gives the same result."""
    torch.manual_seed(0)
    classifier = SmartNetVolumeClassifier(**SMALL, operator=operator).eval()
    segmenter = SmartNetVolumeSegmenter(**SMALL).eval()
    x = torch.rand(2, 1, 64, 64, 5)
    full = torch.tensor([5, 5])
    with torch.no_grad():
        assert torch.allclose(classifier(x), classifier(x, full), atol=1e-5)
        assert torch.allclose(segmenter(x), segmenter(x, full), atol=1e-5)


def test_lstm_is_packed_as_the_reference():
    """A 2-layer BiLSTM of hidden 512 on 2048-d slice features, [backward, forward] final states, 1024 -> 512 -> 1."""
    model = SmartNetVolumeClassifier()
    rnn = model.operator.rnn
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.bidirectional) == (2048, 512, 2, True)
    assert (model.fc.in_features, model.fc.out_features, model.head.in_features) == (1024, 512, 512)


@pytest.mark.parametrize("model_class", [SmartNetVolumeClassifier, SmartNetVolumeSegmenter])
def test_chunked_encoding_equals_unchunked(model_class):
    torch.manual_seed(0)
    model = model_class(**SMALL).eval()
    x = torch.rand(2, 1, 64, 64, 5)
    depths = torch.tensor([5, 3])
    outs = []
    for chunk in (0, 1, 3, 100):
        model.chunk_size = chunk
        with torch.no_grad():
            outs.append(model(x, depths))
    for out in outs[1:]:
        assert torch.allclose(out, outs[0], atol=1e-5)


def test_segmenter_real_slices_do_not_see_padding():
    torch.manual_seed(0)
    model = SmartNetVolumeSegmenter(**SMALL).eval()
    x = torch.rand(2, 1, 64, 64, 6)
    with torch.no_grad():
        padded = model(x, torch.tensor([4, 6]))
        alone = model(x[:1, ..., :4])
        scripted = torch.jit.script(model)(x, torch.tensor([4, 6]))
    assert padded.shape == (2, 1, 64, 64, 6)
    assert torch.allclose(padded[:1, ..., :4], alone, atol=1e-5)
    assert torch.allclose(scripted, padded, atol=1e-5)


def test_bad_depths_are_refused():
    model = SmartNetVolumeClassifier(**SMALL, operator="mean").eval()
    with pytest.raises(ValueError, match="depths"):
        model(torch.rand(2, 1, 32, 32, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="volume batch"):
        model(torch.rand(1, 32, 32, 4))


def _bn_stats(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([m.running_mean.clone() for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)])


def test_frozen_encoder_keeps_batch_norm_statistics():
    model = SmartNetVolumeClassifier(**SMALL, operator="mean")
    model.freeze_encoder()
    model.train()  # engines call this every iteration
    before = _bn_stats(model.encoder)
    model(torch.rand(2, 1, 64, 64, 3)).sum().backward()
    assert torch.equal(_bn_stats(model.encoder), before)
    assert all(p.grad is None for p in model.encoder.parameters())
    assert model.fc.weight.grad is not None
    model.unfreeze_encoder(["layer4"])
    model.train()
    assert model.encoder.layer4.training and not model.encoder.layer3.training and not model.encoder.bn1.training
    assert all(p.requires_grad for p in model.encoder.layer4.parameters())
    assert not any(p.requires_grad for p in model.encoder.layer3.parameters())


def test_gradual_unfreezing_follows_the_schedule():
    model = SmartNetVolumeSegmenter(**SMALL)
    schedule = {"layer4": 2, "layer3": 3, "layer2": 3, "layer1": 4, "stem": 5}  # 0-based epochs
    seen: dict[int, tuple] = {}

    def step(engine, batch):
        model.train()
        stages = ("conv1", "layer1", "layer2", "layer3", "layer4")
        seen[engine.state.epoch - 1] = tuple(
            next(getattr(model.encoder, s).parameters()).requires_grad for s in stages
        ) + (model.encoder.bn1.training, model.seg_decoder.training)

    engine = Engine(step)
    GradualUnfreezing(model, schedule).attach(engine)
    engine.run([0], max_epochs=6)
    #            conv1  layer1 layer2 layer3 layer4 bn1-train decoder-train
    assert seen[0] == (False, False, False, False, False, False, True)
    assert seen[1] == seen[0]
    assert seen[2] == (False, False, False, False, True, False, True)
    assert seen[3] == (False, False, True, True, True, False, True)
    assert seen[4] == (False, True, True, True, True, False, True)
    assert seen[5] == (True, True, True, True, True, True, True)


def test_unfreezing_off_keeps_encoder_frozen_and_schedule_scales():
    model = SmartNetVolumeClassifier(**SMALL, operator="mean")
    engine = Engine(lambda e, b: None)
    GradualUnfreezing(model, {}).attach(engine)
    engine.run([0], max_epochs=3)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert scale_schedule(REFERENCE_UNFREEZE_SCHEDULE, 500) == REFERENCE_UNFREEZE_SCHEDULE
    assert scale_schedule(REFERENCE_UNFREEZE_SCHEDULE, 50) == {"layer4": 10, "layer3": 11, "layer2": 12,
                                                                "layer1": 13, "stem": 14}
    with pytest.raises(ValueError, match="unknown encoder stage"):
        GradualUnfreezing(model, {"layer5": 1})


@pytest.fixture(scope="module")
def upstream_checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    upstream = SmartNet2D(**SMALL)
    path = tmp_path_factory.mktemp("upstream") / "model.pt"
    torch.save(upstream.state_dict(), path)
    return upstream, path


def test_transfer_encoder_loads_exactly_the_encoder(upstream_checkpoint):
    upstream, path = upstream_checkpoint
    model = SmartNetVolumeSegmenter(**SMALL)
    decoder_before = {k: v.clone() for k, v in model.seg_decoder.state_dict().items()}
    report = load_pretrained(model, path, "encoder")
    encoder_keys = {f"encoder.{k}" for k in upstream.encoder.state_dict()}
    assert set(report.loaded) == encoder_keys
    assert all(k.startswith(("cls_head.", "seg_decoder.", "seg_head.", "rec_decoder.", "rec_head."))
               for k in report.ignored)
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, upstream.encoder.state_dict()[key])
    for key, value in model.seg_decoder.state_dict().items():
        assert torch.equal(value, decoder_before[key])  # untouched


def test_transfer_encoder_and_decoder(upstream_checkpoint, tmp_path):
    upstream, path = upstream_checkpoint
    model = SmartNetVolumeSegmenter(**SMALL)
    wrapped = tmp_path / "last.pt"  # the training-state format: {"model": ..., "optimizer": ...}
    torch.save({"model": {f"module.{k}": v for k, v in upstream.state_dict().items()}, "optimizer": {}}, wrapped)
    report = load_pretrained(model, wrapped, "encoder+decoder")
    expected = {f"encoder.{k}" for k in upstream.encoder.state_dict()}
    expected |= {f"seg_decoder.{k}" for k in upstream.seg_decoder.state_dict()}
    assert set(report.loaded) == expected
    for key, value in model.seg_decoder.state_dict().items():
        assert torch.equal(value, upstream.seg_decoder.state_dict()[key])
    assert "loaded" in report.summary()


def test_transfer_errors_list_the_keys(upstream_checkpoint, tmp_path):
    _, path = upstream_checkpoint
    with pytest.raises(TransferError) as err:
        load_pretrained(SmartNetVolumeClassifier(encoder="resnet34", stem_stride=2), path, "encoder")
    assert "encoder.layer1.2.conv1.weight: not in the checkpoint" in str(err.value)
    with pytest.raises(TransferError, match=r"encoder.conv1.weight: checkpoint \(64, 1, 7, 7\) vs network"):
        load_pretrained(SmartNetVolumeClassifier(**SMALL, in_channels=3), path, "encoder")
    no_decoder = tmp_path / "cls_only.pt"
    torch.save(SmartNet2D(tasks=["cls"], **SMALL).state_dict(), no_decoder)
    with pytest.raises(TransferError, match="seg_decoder.*not in the checkpoint"):
        load_pretrained(SmartNetVolumeSegmenter(**SMALL), no_decoder, "encoder+decoder")
    with pytest.raises(TransferError, match="not found"):
        load_pretrained(SmartNetVolumeSegmenter(**SMALL), tmp_path / "missing.pt")
    with pytest.raises(TransferError, match="unknown load type"):
        load_pretrained(SmartNetVolumeSegmenter(**SMALL), path, "full")


def test_volume_loss_ignores_padded_slices():
    torch.manual_seed(0)
    logits = torch.randn(1, 1, 8, 8, 3)
    target = (torch.rand(1, 1, 8, 8, 3) > 0.7).float()
    plain = DiceBCELoss()(logits, target)
    pad_logits = torch.cat([logits, torch.full((1, 1, 8, 8, 2), 5.0)], dim=-1)  # confident false positives
    pad_target = torch.cat([target, torch.zeros(1, 1, 8, 8, 2)], dim=-1)
    real = torch.cat([torch.ones(1, 1, 8, 8, 3), torch.zeros(1, 1, 8, 8, 2)], dim=-1)
    masked = VolumeDiceBCELoss()(pad_logits, torch.cat([pad_target, real], dim=1))
    assert masked.item() == pytest.approx(plain.item(), abs=1e-5)
    unmasked = DiceBCELoss()(pad_logits, pad_target)
    assert unmasked.item() > plain.item() + 0.5


def test_frozen_decoder_stays_fixed_while_the_3d_head_trains():
    import torch

    from smartnet.networks import SmartNetVolumeSegmenter

    torch.manual_seed(0)
    net = SmartNetVolumeSegmenter("resnet18", stem_stride=2, freeze_decoder=True)
    net.train()
    assert not net.seg_decoder.training and not any(p.requires_grad for p in net.seg_decoder.parameters())
    before = {k: v.clone() for k, v in net.seg_decoder.state_dict().items()}
    head_before = [p.clone() for p in net.volume_head.parameters()]
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    loss = net(torch.rand(1, 1, 32, 32, 4)).mean()
    loss.backward()
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in net.seg_decoder.state_dict().items())  # BN statistics too
    assert any(not torch.equal(a, b) for a, b in zip(head_before, net.volume_head.parameters()))


def _upstream_slices(upstream, volume: torch.Tensor, head: str) -> torch.Tensor:
    """The upstream model's ``head`` output for every slice of ``volume`` ``(B, C, H, W, D)``, stacked on the last
    axis."""
    return torch.stack([upstream.forward_heads(volume[..., i])[head] for i in range(volume.shape[-1])], dim=-1)


def test_slice_head_models_start_from_the_upstream_decision(upstream_checkpoint):
    """With ``slice_head`` the transferred models start exactly at the upstream's own outputs: the classifier at the
    largest slice logit over the real slices, the segmenter at the 2D segmentation logits of every slice."""
    upstream, path = upstream_checkpoint
    upstream.eval()
    torch.manual_seed(3)
    volume, depths = torch.rand(2, 1, 64, 64, 5), torch.tensor([5, 3])
    classifier = SmartNetVolumeClassifier(**SMALL, slice_head=True).eval()
    report = load_pretrained(classifier, path, "encoder+cls_head")
    assert {"cls_head.fc.weight", "cls_head.fc.bias"} <= set(report.loaded)
    slice_logits = _upstream_slices(upstream, volume, "cls")[:, 0]  # (B, D)
    expected = torch.stack([slice_logits[0].max(), slice_logits[1, :3].max()])  # padded slices take no part
    with torch.no_grad():
        assert torch.allclose(classifier(volume, depths)[:, 0], expected, atol=1e-5)
        random_head = SmartNetVolumeClassifier(**SMALL, slice_head=True).eval()
        load_pretrained(random_head, path, "encoder")  # the head not transferred: another decision
        assert not torch.allclose(random_head(volume, depths)[:, 0], expected, atol=1e-3)

    segmenter = SmartNetVolumeSegmenter(**SMALL, slice_head=True).eval()
    load_pretrained(segmenter, path, "encoder+decoder+seg_head")
    with torch.no_grad():
        logits = segmenter(volume, depths)
    upstream_logits = _upstream_slices(upstream, volume, "seg")
    assert torch.allclose(logits[0], upstream_logits[0], atol=1e-5)
    assert torch.allclose(logits[1, ..., :3], upstream_logits[1, ..., :3], atol=1e-5)


def test_segmentation_evidence_classifier_counts_the_upstream_lesion_pixels(upstream_checkpoint):
    """With ``seg_evidence`` the classifier's logit starts at ``log(1 + n) - log(1 + evidence_pixels)``, ``n`` the
    pixels over the real slices where the upstream's segmentation head says lesion (logit > 0); the decoder and head
    stay fixed while the rest trains; with ``slice_head`` too the largest slice logit is added."""
    upstream, path = upstream_checkpoint
    upstream.eval()
    torch.manual_seed(5)
    volume, depths = torch.rand(2, 1, 64, 64, 5), torch.tensor([5, 3])
    volume[0, :, :8] = 0.0  # air at the top of the first volume: its pixels are never counted
    lesion = (_upstream_slices(upstream, volume, "seg") > 0) & (volume > 0)
    assert ((_upstream_slices(upstream, volume, "seg") > 0) & (volume == 0)).any()  # the air rule has work to do
    per_slice = lesion.flatten(1, 3).sum(1).float()  # (B, D)
    per_slice[1, 3:] = 0  # padded slices count nothing
    assert per_slice.sum() > 0  # the random upstream marks some pixels: the count is not trivially zero
    classifier = SmartNetVolumeClassifier(**SMALL, seg_evidence=True, evidence_pixels=50).eval()
    report = load_pretrained(classifier, path, "encoder+decoder+seg_head")
    assert {"seg_head.weight", "seg_decoder.blocks.0.conv1.0.weight"} & set(report.loaded)
    expected = torch.log1p(per_slice.sum(1)) - math.log1p(50)
    with torch.no_grad():
        assert torch.equal(classifier.lesion_pixels(volume, depths), per_slice)
        assert torch.allclose(classifier(volume, depths)[:, 0], expected, atol=1e-5)
        both = SmartNetVolumeClassifier(**SMALL, slice_head=True, seg_evidence=True, evidence_pixels=50).eval()
        load_pretrained(both, path, "encoder+cls_head+decoder+seg_head")
        slice_logits = _upstream_slices(upstream, volume, "cls")[:, 0]
        max_slice = torch.stack([slice_logits[0].max(), slice_logits[1, :3].max()])
        assert torch.allclose(both(volume, depths)[:, 0], expected + max_slice, atol=1e-5)

    fixed = {k: v.clone() for k, v in classifier.state_dict().items() if k.startswith(("seg_decoder.", "seg_head."))}
    classifier.train()
    assert not classifier.seg_decoder.training
    optimizer = torch.optim.Adam([p for p in classifier.parameters() if p.requires_grad], lr=1e-2)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(classifier(volume, depths), torch.ones(2, 1))
    loss.backward()
    optimizer.step()
    assert classifier.evidence.weight.item() != 1.0  # the evidence scale trains
    assert all(torch.equal(v, classifier.state_dict()[k]) for k, v in fixed.items())  # BN statistics too
    scripted = torch.jit.script(classifier.eval())
    with torch.no_grad():
        assert torch.allclose(scripted(volume, depths), classifier(volume, depths), atol=1e-5)
    with pytest.raises(RuntimeError, match="no segmentation evidence"):
        SmartNetVolumeClassifier(**SMALL).lesion_pixels(volume)


def test_slice_head_models_train_the_correction_and_script():
    torch.manual_seed(0)
    for model, target in ((SmartNetVolumeClassifier(**SMALL, slice_head=True), torch.ones(1, 1)),
                          (SmartNetVolumeSegmenter(**SMALL, slice_head=True), torch.ones(1, 1, 32, 32, 4))):
        head = model.head if isinstance(model, SmartNetVolumeClassifier) else model.volume_head[-1]
        assert not head.weight.any()  # the 3D operator starts as a zero correction
        model.train()
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(torch.rand(1, 1, 32, 32, 4)), target)
        loss.backward()
        optimizer.step()
        assert head.weight.any()
        scripted = torch.jit.script(model.eval())
        volume = torch.rand(1, 1, 32, 32, 4)
        with torch.no_grad():
            assert torch.allclose(scripted(volume), model(volume), atol=1e-5)
    # off by default: the reference architecture
    assert SmartNetVolumeClassifier(**SMALL).cls_head is None and SmartNetVolumeSegmenter(**SMALL).seg_head is None


def test_seg_peak_classifier_starts_from_the_upstream_seg_peak_slice_logit(tmp_path):
    """With ``slice_head`` and ``seg_peak`` the classifier starts at the largest slice logit of an upstream trained
    with ``seg_peak`` (slice head + weighted peak of its segmentation logits over tissue), padded slices left out;
    the segmentation decoder and head stay fixed; TorchScript gives the same logits."""
    torch.manual_seed(4)
    upstream = SmartNet2D(**SMALL, seg_peak=True).eval()
    with torch.no_grad():
        upstream.seg_peak.weight.fill_(0.7)
        upstream.seg_peak.bias.fill_(-2.0)
    path = tmp_path / "model.pt"
    torch.save(upstream.state_dict(), path)
    volume, depths = torch.rand(2, 1, 64, 64, 5), torch.tensor([5, 3])
    volume[..., :10, :] = 0  # air rows
    classifier = SmartNetVolumeClassifier(**SMALL, slice_head=True, seg_peak=True).eval()
    report = load_pretrained(classifier, path, "encoder+cls_head+decoder+seg_head+seg_peak")
    assert {"seg_peak.weight", "seg_peak.bias", "seg_head.weight"} <= set(report.loaded)
    slice_logits = _upstream_slices(upstream, volume, "cls")[:, 0]  # (B, D)
    expected = torch.stack([slice_logits[0].max(), slice_logits[1, :3].max()])
    with torch.no_grad():
        assert torch.allclose(classifier(volume, depths)[:, 0], expected, atol=1e-4)
        assert torch.allclose(torch.jit.script(classifier)(volume, depths)[:, 0], expected, atol=1e-4)
    assert not any(p.requires_grad for p in classifier.seg_decoder.parameters())
    assert not any(p.requires_grad for p in classifier.seg_head.parameters())
    with pytest.raises(TransferError):  # an upstream without the peak term cannot give it
        plain = tmp_path / "plain.pt"
        torch.save(SmartNet2D(**SMALL).state_dict(), plain)
        load_pretrained(SmartNetVolumeClassifier(**SMALL, slice_head=True, seg_peak=True), plain,
                        "encoder+cls_head+decoder+seg_head+seg_peak")
    with pytest.raises(ValueError, match="needs slice_head"):
        SmartNetVolumeClassifier(**SMALL, seg_peak=True)
