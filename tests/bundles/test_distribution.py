"""Release archives as users get them: build with ``smartnet release``, ``monai.bundle download --url file://`` into a
fresh folder, then run inference, a fine-tuning epoch and ``monai.bundle.load()`` in a fresh virtual environment
where MONAI and its dependencies are installed but this project is not (the archive carries its own copy)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from conftest import BUNDLES, REPO, TINY_DOWN_OVERRIDES, TINY_OVERRIDES, run_bundle

pytestmark = pytest.mark.slow

NAMES = ["smartnet_upstream", "smartnet_down_cls", "smartnet_down_seg"]
VERSION = json.loads((BUNDLES / "smartnet_upstream" / "configs" / "metadata.json").read_text())["version"]
PACKAGE = REPO / "custom" / "smartnet"
NETWORK_KEYS = ("encoder", "stem_stride")


def _run(cmd: list[str], cwd: Path | None = None, env: dict | None = None, timeout: int = 900):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8",
                          errors="replace", timeout=timeout)


def _ok(result) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def user_bundles(tiny_dataset, tiny_bundles_root, tmp_path_factory) -> Iterator[Path]:
    """The repo's bundles copied as a user keeps them, each with a ``configs/tiny.json`` profile (the tiny network
    the tests train), upstream weights from the tiny session training and down_seg weights from one epoch here."""
    root = tmp_path_factory.mktemp("user_bundles")
    for name in NAMES:
        shutil.copytree(BUNDLES / name, root / name, ignore=shutil.ignore_patterns("models", "eval", "runs"))
        tiny = TINY_OVERRIDES if name == "smartnet_upstream" else TINY_DOWN_OVERRIDES
        if name == "smartnet_down_seg":  # the demo profile's architecture: the upstream's 2D head kept
            tiny = {**tiny, "slice_head": True}
        (root / name / "configs" / "tiny.json").write_text(json.dumps(tiny, indent=4) + "\n", encoding="utf-8")
    (root / "smartnet_upstream" / "models").mkdir()
    shutil.copy(tiny_bundles_root / "smartnet_upstream" / "models" / "model.pt", root / "smartnet_upstream" / "models")
    seg = root / "smartnet_down_seg"
    run_bundle(seg, ["train.json", "tiny.json"], {"dataset_dir": tiny_dataset, "epochs": 1, "val_interval": 1})
    assert (seg / "models" / "model.pt").is_file()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def release(user_bundles, tmp_path_factory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("dist")
    text = _ok(_run([sys.executable, "-m", "smartnet.cli", "release", "--out_dir", out,
                     "--bundles_dir", user_bundles]))
    # the tiny network is the demo profile's (ResNet-18, stride-2 stem, slice head), but trained at 32 px: the
    # settings record names the profile the weights were trained with, not the first whose network loads them
    assert f"smartnet_down_seg_v{VERSION}.zip: weights packed, weights need configs/tiny.json" in text
    assert f"smartnet_down_cls_v{VERSION}.zip: weights none" in text
    yield out
    shutil.rmtree(out, ignore_errors=True)


def test_archives_are_self_contained_and_match_the_repo(release):
    index = json.loads((release / "model_info.json").read_text(encoding="utf-8"))
    package = {p.relative_to(PACKAGE).as_posix(): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert "networks/volume_models.py" in package
    for name in NAMES:
        version = json.loads((BUNDLES / name / "configs" / "metadata.json").read_text(encoding="utf-8"))["version"]
        archive = release / f"{name}_v{version}.zip"
        assert index[f"{name}_v{version}"]["checksum"] == hashlib.sha1(archive.read_bytes()).hexdigest()
        with zipfile.ZipFile(archive) as zf:
            members = set(zf.namelist())
            assert all(m.startswith(f"{name}/") for m in members)
            # the configs, model card and licence are the repo's, byte for byte
            for path in [*(BUNDLES / name / "configs").iterdir(), BUNDLES / name / "docs" / "README.md",
                         BUNDLES / name / "LICENSE"]:
                rel = path.relative_to(BUNDLES / name).as_posix()
                assert zf.read(f"{name}/{rel}") == path.read_bytes(), rel
            # the vendored package is exactly custom/smartnet
            vendored = {m[len(f"{name}/smartnet/"):] for m in members if m.startswith(f"{name}/smartnet/")}
            assert vendored == set(package)
            for rel, path in package.items():
                assert zf.read(f"{name}/smartnet/{rel}") == path.read_bytes(), rel
            assert (f"{name}/models/model.pt" in members) == (name != "smartnet_down_cls")
            assert not any("/eval/" in m or "__pycache__" in m for m in members)


def test_release_is_reproducible(user_bundles, release, tmp_path):
    from smartnet.release import build_archive

    again = build_archive(user_bundles / "smartnet_down_cls", tmp_path)
    assert again.archive.read_bytes() == (release / again.archive.name).read_bytes()


def test_release_refuses_weights_its_configs_cannot_load(user_bundles, tmp_path):
    wrong = tmp_path / "smartnet_down_cls"
    shutil.copytree(user_bundles / "smartnet_down_cls", wrong)
    (wrong / "models").mkdir()
    shutil.copy(user_bundles / "smartnet_upstream" / "models" / "model.pt", wrong / "models" / "model.pt")
    result = _run([sys.executable, "-m", "smartnet.cli", "release", "--out_dir", tmp_path / "out",
                   "--bundles_dir", tmp_path, "--names", "smartnet_down_cls"])
    assert result.returncode == 1
    assert "does not load into the inference network of smartnet_down_cls" in result.stderr
    assert "tiny.json" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / f"smartnet_down_cls_v{VERSION}.zip").exists()


def test_weights_by_large_files_yml(user_bundles, tmp_path):
    """With a weights URL the archive names the weights and their SHA-256; download_large_files fetches and checks."""
    from smartnet.release import build_archive

    assets = tmp_path / "assets"
    artifact = build_archive(user_bundles / "smartnet_upstream", assets, weights_url=assets.as_uri())
    assert artifact.weights == "large_files"
    with zipfile.ZipFile(artifact.archive) as zf:
        assert "smartnet_upstream/models/model.pt" not in zf.namelist()
        zf.extractall(tmp_path / "unpacked")
    bundle = tmp_path / "unpacked" / "smartnet_upstream"
    command = [sys.executable, "-m", "monai.bundle", "download_large_files", "--bundle_path", bundle]
    _ok(_run(command))
    source = user_bundles / "smartnet_upstream" / "models" / "model.pt"
    assert (bundle / "models" / "model.pt").read_bytes() == source.read_bytes()

    (bundle / "models" / "model.pt").unlink()  # a tampered upload is refused by its hash
    asset = artifact.extra_files[0]
    asset.write_bytes(asset.read_bytes()[:-10] + b"0123456789")
    assert _run(command).returncode != 0
    assert not (bundle / "models" / "model.pt").exists()


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory) -> Path:
    """A fresh venv that sees this interpreter's site-packages as plain paths: MONAI, torch and the other
    dependencies import, but the project's editable install (a .pth hook there) is not processed."""
    env = tmp_path_factory.mktemp("venv")
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", env]))
    python = env / "bin" / "python"
    purelib = _ok(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])).strip()
    paths = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if Path(p).is_dir()]
    (Path(purelib) / "host_packages.pth").write_text("\n".join(paths) + "\n", encoding="utf-8")
    probe = _run([python, "-c", "import monai, torch, ignite, itk, nibabel\nimport smartnet"], cwd=env)
    assert "No module named 'smartnet'" in probe.stderr, probe.stderr[-2000:]
    return python


def test_downloaded_bundle_runs_without_the_project(release, fresh_python, tiny_dataset, tmp_path):
    downloads = tmp_path / "downloads"
    for name in ("smartnet_upstream", "smartnet_down_seg"):
        _ok(_run([fresh_python, "-m", "monai.bundle", "download", "--name", name, "--version", VERSION,
                  "--url", (release / f"{name}_v{VERSION}.zip").as_uri(), "--bundle_dir", downloads], cwd=tmp_path))
    bundle = downloads / "smartnet_down_seg"
    configs = bundle / "configs"
    assert (bundle / "smartnet" / "__init__.py").is_file() and (bundle / "models" / "model.pt").is_file()

    def bundle_run(files: list[str], **overrides) -> str:
        cmd = [fresh_python, "-m", "monai.bundle", "run", "--config_file",
               "[" + ",".join(f"'{configs / f}'" for f in files) + "]", "--bundle_root", bundle]
        for key, value in overrides.items():
            cmd += [f"--{key}", value]
        return _ok(_run(cmd, cwd=tmp_path))  # run from elsewhere: only the archive's copy can be found

    # inference on the test images, written in the input geometry
    out = tmp_path / "inference"
    log = bundle_run(["inference.json", "tiny.json"], dataset_dir=tiny_dataset, output_dir=out)
    assert f"smartnet {VERSION} from {bundle / 'smartnet'}" in log
    masks = sorted(out.glob("*_seg.nii.gz"))
    assert len(masks) == len(list((tiny_dataset / "test").glob("*_img.nii.gz"))) == 2

    # one fine-tuning epoch from the shipped weights, on the user's datalist
    finetuned = tmp_path / "finetuned"
    log = bundle_run(["train.json", "tiny.json"], dataset_dir=tiny_dataset, epochs=1, val_interval=1,
                     finetune=True, finetune_model_path=bundle / "models" / "model.pt", ckpt_dir=finetuned)
    assert f"Restored all variables from {bundle / 'models' / 'model.pt'}" in log
    assert (finetuned / "model.pt").is_file() and (finetuned / "last.pt").is_file()

    # monai.bundle.load() from the bundle folder returns the network with the shipped weights
    script = (
        "import torch\nfrom monai.bundle import load\n"
        f"net = load('smartnet_down_seg', bundle_dir={str(downloads)!r}, workflow_type='inference', "
        "net_override={'encoder': 'resnet18', 'stem_stride': 2, 'slice_head': True}, key_in_ckpt='model')\n"
        "shipped = torch.load('models/model.pt', weights_only=True)['model']\n"
        "assert all(torch.equal(v, shipped[k]) for k, v in net.state_dict().items()), 'weights differ'\n"
        "import smartnet\nprint(type(net).__name__, smartnet.__file__)\n"
    )
    text = _ok(_run([fresh_python, "-c", script], cwd=bundle))
    assert f"SmartNetVolumeSegmenter {bundle / 'smartnet' / '__init__.py'}" in text
    assert torch.load(bundle / "models" / "model.pt", weights_only=True)  # the shipped file is untouched


def test_eval_metrics_are_those_of_the_shipped_weights(user_bundles, tmp_path):
    """metadata.json's eval_metrics in an archive: the shipped weights' own test evaluation, never a stale one or a
    placeholder; the repo's metadata carries none (it ships no weights)."""
    import os

    from smartnet.release import build_archive

    bundle = tmp_path / "smartnet_down_seg"
    shutil.copytree(user_bundles / "smartnet_down_seg", bundle)
    assert "eval_metrics" not in json.loads((BUNDLES / "smartnet_down_seg" / "configs" / "metadata.json").read_text())
    evaluation = bundle / "eval" / "evaluation"
    evaluation.mkdir(parents=True)
    written = {"dice_mean": 0.61, "false_positive_ml_mean_normal": 0.4}
    (evaluation / "metrics.json").write_text(json.dumps({"metrics": {**written, "note": "text"}}))

    def released_metadata(out: Path) -> dict:
        artifact = build_archive(bundle, out)
        with zipfile.ZipFile(artifact.archive) as zf:
            return json.loads(zf.read("smartnet_down_seg/configs/metadata.json"))

    metadata = released_metadata(tmp_path / "fresh")
    assert metadata["eval_metrics"] == written and metadata["version"] == VERSION
    model = bundle / "models" / "model.pt"
    later = (evaluation / "metrics.json").stat().st_mtime + 10
    os.utime(model, (later, later))  # weights trained again after that evaluation
    assert "eval_metrics" not in released_metadata(tmp_path / "stale")
