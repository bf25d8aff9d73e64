"""The inference speed switches: precision, channels_last and torch.compile give the plain network's outputs."""

from __future__ import annotations

import logging
import os
import shutil

import pytest
import torch
from monai.inferers import SimpleInferer, SliceInferer

from smartnet.inferers import AcceleratedInferer
from smartnet.networks import SmartNet2D, SmartNetVolumeClassifier, SmartNetVolumeSegmenter, channels_last
from smartnet.precision import autocast_dtype, resolve_precision, training_amp

SMALL = {"encoder": "resnet18", "stem_stride": 2}


def _volume(depth: int = 5, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.rand(2, 1, size, size, depth), torch.tensor([depth, depth - 2])


@pytest.mark.parametrize("model_class", [SmartNetVolumeClassifier, SmartNetVolumeSegmenter])
def test_fp32_channels_last_matches_the_plain_network(model_class):
    torch.manual_seed(1)
    model = model_class(**SMALL, chunk_size=2).eval()
    volume, depths = _volume()
    with torch.no_grad():
        expected = SimpleInferer()(volume, model, depths)
        actual = AcceleratedInferer(precision="fp32", channels_last=True)(volume, model, depths)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    for module in model.modules():  # the segmenter's 3D head: NDHWC
        if isinstance(module, torch.nn.Conv3d):
            assert module.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_bf16_outputs_are_fp32_and_close_to_fp32():
    torch.manual_seed(2)
    model = SmartNetVolumeClassifier(**SMALL, chunk_size=0).eval()
    volume, depths = _volume()
    with torch.no_grad():
        expected = torch.sigmoid(model(volume, depths))
        actual = torch.sigmoid(AcceleratedInferer(precision="bf16")(volume, model, depths))
    assert actual.dtype == torch.float32
    assert (actual - expected).abs().max().item() <= 0.02
    assert not torch.equal(actual, expected)  # bf16 really ran (bf16 has 8 mantissa bits)


def test_slice_inferer_inside_the_accelerated_inferer_for_the_upstream_model():
    torch.manual_seed(3)
    model = SmartNet2D(**SMALL).eval()
    volume = torch.rand(1, 1, 64, 64, 6)
    inner = SliceInferer(roi_size=(64, 64), spatial_dim=2, sw_batch_size=4)
    with torch.no_grad():
        expected = inner(volume, model)
        actual = AcceleratedInferer(inferer=SliceInferer(roi_size=(64, 64), spatial_dim=2, sw_batch_size=4))(
            volume, model)
    torch.testing.assert_close(actual, expected, rtol=1e-3, atol=1e-4)  # NHWC sums in another order


@pytest.mark.slow  # torch.compile builds C++ kernels: about 30 s on 2 cores
def test_compiled_encoder_matches_and_follows_new_weights():
    """torch.compile with frozen weights: same outputs; loading other weights into the same network is noticed."""
    torch.manual_seed(4)
    model = SmartNetVolumeClassifier(**SMALL, chunk_size=0).eval()
    other = SmartNetVolumeClassifier(**SMALL, chunk_size=0).eval()
    volume, depths = _volume(depth=4, size=32)
    inferer = AcceleratedInferer(compile=True)
    with torch.no_grad():
        first = inferer(volume, model, depths)
        torch.testing.assert_close(first, model(volume, depths), rtol=1e-4, atol=1e-4)
        assert inferer._compiled is not None
        # inductor needs a C++ compiler on CPU; without one the documented fallback (eager, a warning) must run
        has_compiler = shutil.which(os.environ.get("CXX", "g++")) is not None or shutil.which("c++") is not None
        assert inferer._compiled.failed is not has_compiler
        model.load_state_dict(other.state_dict())
        second = inferer(volume, model, depths)
    torch.testing.assert_close(second, other(volume, depths), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(first, second)
    assert inferer._compiled.failed or inferer._compiled.compiled is not None
    assert model.chunk_encoder is None  # the override lives for one call only


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch, caplog):
    from torch._inductor.exc import InvalidCxxCompiler

    def broken_compile(*args, **kwargs):
        def fail(*a, **k):
            raise InvalidCxxCompiler()
        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    torch.manual_seed(5)
    model = SmartNetVolumeSegmenter(**SMALL, chunk_size=2).eval()
    volume, depths = _volume(size=32)
    with caplog.at_level(logging.WARNING, logger="smartnet.inferers"), torch.no_grad():
        out = AcceleratedInferer(compile=True)(volume, model, depths)
        expected = model(volume, depths)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    assert "torch.compile failed (InvalidCxxCompiler: " in caplog.text and "running uncompiled" in caplog.text
    assert model.chunk_encoder is None


def test_out_of_memory_in_compiled_inference_is_not_hidden(monkeypatch):
    """Only compilation failures fall back to eager: running out of memory (or a shape error) is raised."""
    def oom_compile(*args, **kwargs):
        def fail(*a, **k):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return fail

    monkeypatch.setattr(torch, "compile", oom_compile)
    model = SmartNetVolumeSegmenter(**SMALL, chunk_size=2).eval()
    volume, depths = _volume(size=32)
    inferer = AcceleratedInferer(compile=True)
    with pytest.raises(torch.OutOfMemoryError), torch.no_grad():
        inferer(volume, model, depths)


def test_precision_names_and_refusals():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16 and autocast_dtype("fp32", "cpu") is None
    with pytest.raises(ValueError, match="'fp16' needs a CUDA device"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="must be one of"):
        AcceleratedInferer(precision="half")
    assert training_amp("fp32", "cpu") is False and training_amp("auto", "cpu") is False
    with pytest.raises(ValueError, match="needs a CUDA device"):
        training_amp("bf16", "cpu")


def test_explicit_bf16_warns_on_a_cpu_without_native_bf16(monkeypatch):
    """An explicit bf16 on a CPU that would emulate it (8 x slower than fp32 on an AVX2-only CPU) warns and says what
    to use; 'auto' stays fp32 there without a warning, and a CPU with native bf16 takes bf16 silently."""
    import warnings

    from smartnet import precision

    monkeypatch.setattr(precision, "bf16_native", lambda device: False)
    with pytest.warns(RuntimeWarning, match="without native bf16.*use 'auto'"):
        assert precision.resolve_precision("bf16", "cpu") == "bf16"
    monkeypatch.setattr(precision, "bf16_native", lambda device: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert precision.resolve_precision("bf16", "cpu") == "bf16"
        monkeypatch.setattr(precision, "bf16_native", lambda device: False)
        assert precision.resolve_precision("auto", "cpu") == "fp32"


def test_channels_last_leaves_values_and_checkpoints_alone():
    torch.manual_seed(6)
    model = SmartNetVolumeSegmenter(**SMALL).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert channels_last(model, enabled=False) is model
    convs = [m for m in model.modules()
             if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1) and m.in_channels > 1]
    assert convs and not any(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    channels_last(model)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
