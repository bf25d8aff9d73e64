"""Model-zoo conformance of all three bundles: files, metadata, pins, model cards, net in/out, TorchScript, ONNX."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BUNDLES, REPO

pytestmark = pytest.mark.slow

NAMES = ["smartnet_upstream", "smartnet_down_cls", "smartnet_down_seg"]
WORKFLOW_FILES = ["metadata.json", "train.json", "evaluate.json", "inference.json", "multi_gpu_train.json",
                  "multi_gpu_evaluate.json", "logging.conf"]
MODEL_CARD_SECTIONS = ["overview", "data", "preprocessing", "training", "input", "output", "performance", "commands",
                       "limitations", "references", "licen"]  # licen: licence or license
SCHEMA = REPO / "schemas" / "meta_schema.json"
SMALL_NET = {"encoder": "resnet18", "stem_stride": 2, "chunk_size": 0}  # quick to export; chunk 0 keeps D dynamic


def _metadata(name: str) -> dict:
    return json.loads((BUNDLES / name / "configs" / "metadata.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", NAMES)
def test_bundle_has_the_model_zoo_files(name):
    bundle = BUNDLES / name
    missing = [f for f in ["LICENSE", "docs/README.md"] + [f"configs/{c}" for c in WORKFLOW_FILES]
               if not (bundle / f).is_file()]
    assert not missing, missing
    assert "Apache License" in (bundle / "LICENSE").read_text(encoding="utf-8")[:400]


@pytest.mark.parametrize("name", NAMES)
def test_verify_metadata_against_the_vendored_schema(name):
    from monai.bundle import verify_metadata

    meta_file = BUNDLES / name / "configs" / "metadata.json"
    verify_metadata(meta_file=str(meta_file), filepath=str(SCHEMA))  # raises on a schema violation
    meta = _metadata(name)
    assert meta["version"] in meta["changelog"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    for key in ("monai_version", "pytorch_version", "numpy_version", *meta["required_packages_version"].values()):
        value = meta.get(key, key)
        assert re.fullmatch(r"\d+(\.\d+)+", value), f"{name}: {key} is not an exact version: {value}"


def test_verify_metadata_rejects_a_broken_metadata(tmp_path):
    from monai.bundle import verify_metadata

    meta = _metadata("smartnet_down_seg")
    del meta["network_data_format"]["outputs"]["pred"]
    broken = tmp_path / "metadata.json"
    broken.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(Exception, match="pred"):
        verify_metadata(meta_file=str(broken), filepath=str(SCHEMA))


def test_metadata_pins_are_real_installable_versions():
    """Every exact pin of every bundle resolves on the package index (what model-zoo CI installs)."""
    pins = set()
    for name in NAMES:
        meta = _metadata(name)
        pins |= {f"monai=={meta['monai_version']}", f"torch=={meta['pytorch_version']}",
                 f"numpy=={meta['numpy_version']}"}
        pins |= {f"{pkg}=={ver}" for pkg, ver in meta["required_packages_version"].items()}
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet",
           *sorted(pins)]
    result = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)
    assert result.returncode == 0, f"pins that pip cannot install: {sorted(pins)}\n{result.stderr[-3000:]}"


def test_every_json_is_pretty_printed_with_4_spaces():
    tracked = subprocess.run(["git", "ls-files", "*.json"], cwd=REPO, capture_output=True, text=True, check=True)
    paths = [REPO / p for p in tracked.stdout.split()]
    assert len(paths) >= 22  # 7 configs per bundle and the schema
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=4, ensure_ascii=False) + "\n", path


def test_no_file_over_1_mb_in_git():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    sizes = {p: (REPO / p).stat().st_size for p in tracked.decode().split("\0") if p and (REPO / p).is_file()}
    assert sizes, "git ls-files found nothing"
    too_big = {p: s for p, s in sizes.items() if s > 1024 * 1024}
    assert not too_big, too_big


@pytest.mark.parametrize("name", NAMES)
def test_model_card_has_the_sections(name):
    headings = [line.lstrip("#").strip().lower() for line in
                (BUNDLES / name / "docs" / "README.md").read_text(encoding="utf-8").splitlines()
                if line.startswith("#")]
    missing = [s for s in MODEL_CARD_SECTIONS if not any(s in h for h in headings)]
    assert not missing, f"{name} model card lacks sections: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_verify_net_in_out(name):
    from monai.bundle import verify_net_in_out

    configs = BUNDLES / name / "configs"
    # reference architecture (ResNet-50, stride-1 stem) at 32 x 32 (n=2 of "16*n"), 3 slices for the volume models
    verify_net_in_out(net_id="network_def", meta_file=str(configs / "metadata.json"),
                      config_file=str(configs / "inference.json"), bundle_root=str(BUNDLES / name), n=2, any=3,
                      device="cpu")


def _network_and_checkpoint(name: str, tmp_path: Path):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLES / name / "configs" / "inference.json"))
    parser["bundle_root"] = str(BUNDLES / name)
    for key, value in SMALL_NET.items():
        parser[key] = value
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def").eval()
    ckpt = tmp_path / "model.pt"
    torch.save(network.state_dict(), ckpt)
    return network, ckpt


def _inputs(name: str) -> list[torch.Tensor]:
    torch.manual_seed(1)
    if name == "smartnet_upstream":
        return [torch.rand(2, 1, 64, 64), torch.rand(1, 1, 96, 64)]
    return [torch.rand(1, 1, 64, 64, 6), torch.rand(1, 1, 64, 64, 11)]


@pytest.mark.parametrize("name", NAMES)
def test_ckpt_export_torchscript_equals_eager(name, tmp_path):
    from monai.bundle import ckpt_export

    network, ckpt = _network_and_checkpoint(name, tmp_path)
    configs = BUNDLES / name / "configs"
    target = tmp_path / "model.ts"
    ckpt_export(net_id="network_def", filepath=str(target), ckpt_file=str(ckpt),
                meta_file=str(configs / "metadata.json"), config_file=str(configs / "inference.json"),
                bundle_root=str(BUNDLES / name), **SMALL_NET)
    scripted = torch.jit.load(str(target))
    for x in _inputs(name):
        with torch.no_grad():
            expected, got = network(x), scripted(x)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_agrees_with_eager_in_onnxruntime(name, tmp_path):
    """Exported with a dynamic slice count (volumes) or in-plane size (slices); checked at two input shapes."""
    import onnxruntime
    from monai.bundle import onnx_export

    network, ckpt = _network_and_checkpoint(name, tmp_path)
    configs = BUNDLES / name / "configs"
    inputs = _inputs(name)
    dynamic = torch.export.Dim.DYNAMIC
    dynamic_shapes = (
        {"x": {0: dynamic, 2: dynamic, 3: dynamic}} if name == "smartnet_upstream" else {"volume": {4: dynamic}}
    )
    target = tmp_path / "model.onnx"
    onnx_export(net_id="network_def", filepath=str(target), ckpt_file=str(ckpt),
                meta_file=str(configs / "metadata.json"), config_file=str(configs / "inference.json"),
                bundle_root=str(BUNDLES / name), input_shape=list(inputs[0].shape), use_trace=True,
                converter_kwargs={"dynamic_shapes": dynamic_shapes}, **SMALL_NET)
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    for x in inputs:
        with torch.no_grad():
            expected = network(x).numpy()
        got = session.run(None, {input_name: x.numpy()})[0]
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4
