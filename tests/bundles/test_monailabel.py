"""MONAI Label integration against a real server: the stock ``monaibundle`` app serving and training
``smartnet_down_seg``, and our app (``monailabel_app/``) serving ``smartnet_down_cls`` and ``smartnet_down_seg``.

The MONAI Label environment (monailabel 0.8.5, torch 2.14.1) is built once by ``monailabel_app/setup_env.sh`` and
cached in ``~/.cache/smartnet/monailabel-venv`` (``SMARTNET_MONAILABEL_VENV`` overrides). The served bundles are
release archives (``smartnet release``) of bundles trained here for one epoch with the reference architecture, so the
configs' defaults fit the weights exactly as MONAI Label loads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import DOWN_CLS, DOWN_SEG, REPO, UPSTREAM, run_bundle

pytestmark = [pytest.mark.slow, pytest.mark.server]

APP = REPO / "monailabel_app"
VENV = Path(os.environ.get("SMARTNET_MONAILABEL_VENV", Path.home() / ".cache" / "smartnet" / "monailabel-venv"))
SMALL_TRAINING = {"image_size": 32, "num_workers": 0, "batch_size": 2, "epochs": 1, "val_interval": 1}


@pytest.fixture(scope="module")
def monailabel_env() -> Path:
    result = subprocess.run(["bash", str(APP / "setup_env.sh"), str(VENV)], capture_output=True, text=True,
                            encoding="utf-8", errors="replace", timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert (VENV / "bin" / "monailabel").is_file()
    return VENV


@pytest.fixture(scope="module")
def served_bundles(tiny_dataset, tmp_path_factory) -> Iterator[Path]:
    """Release archives of the three bundles, reference architecture trained one epoch at 32 px, unpacked."""
    root = tmp_path_factory.mktemp("label_bundles")
    run_bundle(UPSTREAM, ["train.json"], {"dataset_dir": tiny_dataset, "slices_per_volume": 2, "val_batch_size": 8,
                                          **SMALL_TRAINING}, bundle_root=root / "smartnet_upstream")
    for bundle in (DOWN_SEG, DOWN_CLS):
        run_bundle(bundle, ["train.json"], {"dataset_dir": tiny_dataset, **SMALL_TRAINING},
                   bundle_root=root / bundle.name)
    # a classifier with the subtype head (the generator's subtypes.csv), served from the same configs
    run_bundle(DOWN_CLS, ["train.json"], {"dataset_dir": tiny_dataset, **SMALL_TRAINING, "subtypes": True,
                                          "pretrained_path": root / "smartnet_upstream" / "models" / "model.pt"},
               bundle_root=root / "subtype_weights")
    for bundle in (UPSTREAM, DOWN_SEG, DOWN_CLS):  # the bundle folders as users keep them: configs + weights
        for item in ("configs", "docs", "LICENSE"):
            copy = shutil.copytree if (bundle / item).is_dir() else shutil.copy
            copy(bundle / item, root / bundle.name / item)
        for config in ("train.json", "inference.json"):  # trained at 32 px: the configs say so (checked at load)
            path = root / bundle.name / "configs" / config
            settings = json.loads(path.read_text())
            settings["image_size"] = SMALL_TRAINING["image_size"]
            path.write_text(json.dumps(settings, indent=4) + "\n")
    dist = root / "dist"
    result = subprocess.run([sys.executable, "-m", "smartnet.cli", "release", "--out_dir", str(dist),
                             "--bundles_dir", str(root)], capture_output=True, text=True, encoding="utf-8")
    assert result.returncode == 0, result.stderr
    assert "need configs" not in result.stdout  # the defaults fit the weights: no profile needed
    unpacked = root / "unpacked"
    for archive in dist.glob("*.zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(unpacked)
    yield unpacked
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def studies(tiny_dataset, tmp_path_factory) -> Path:
    """Three labelled head CTs in a MONAI Label datastore folder (images + labels/final)."""
    folder = tmp_path_factory.mktemp("studies")
    (folder / "labels" / "final").mkdir(parents=True)
    for image in sorted((tiny_dataset / "train").glob("*_img.nii.gz"))[:3]:
        shutil.copy(image, folder / image.name)
        shutil.copy(str(image).replace("_img.", "_mask."), folder / "labels" / "final" / image.name)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def _post(url: str, data: bytes, content_type: str, timeout: int = 600) -> bytes:
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


@contextlib.contextmanager
def label_server(env: Path, app: Path, studies_dir: Path, models: str, log: Path):
    """A MONAI Label server on 127.0.0.1 (offline settings), always stopped afterwards; yields its base URL."""
    port = _free_port()
    cmd = [str(env / "bin" / "monailabel"), "start_server", "--app", str(app), "--studies", str(studies_dir),
           "--conf", "models", models, "--conf", "zoo_source", "local", "--conf", "sam2", "false",
           "--host", "127.0.0.1", "--port", str(port)]
    environment = {**os.environ, "PATH": f"{env / 'bin'}{os.pathsep}{os.environ['PATH']}", "PYTHONIOENCODING": "utf-8"}
    environment.pop("PYTHONPATH", None)
    with open(log, "w", encoding="utf-8") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=environment, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                _get(url + "/info/")
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError(
                        "MONAI Label server did not start:\n" + log.read_text(encoding="utf-8")[-5000:]
                    )
                time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def _infer(url: str, model: str, image_id: str, output: str) -> bytes:
    query = urllib.parse.urlencode({"image": image_id, "output": output})
    body = urllib.parse.urlencode({"params": json.dumps({"device": "cpu"})}).encode()
    return _post(f"{url}/infer/{model}?{query}", body, "application/x-www-form-urlencoded")


def _train_one_epoch(url: str, model: str) -> dict:
    request = {"max_epochs": 1, "val_split": 0.34, "device": "cpu", "multi_gpu": False}
    _post(f"{url}/train/{model}?run_sync=false", json.dumps(request).encode(), "application/json")
    deadline = time.time() + 900
    while time.time() < deadline:
        time.sleep(3)
        status = _get(url + "/train/")
        if status.get("status") not in ("SUBMITTED", "RUNNING"):
            return status
    raise AssertionError("MONAI Label training did not finish in 15 minutes")


def _bundle_inference(bundle: Path, image: Path, out: Path, **overrides) -> Path:
    """Our own inference workflow on ``image`` with the same weights, in this (project) environment."""
    single = out / "input"
    single.mkdir(parents=True)
    shutil.copy(image, single / image.name)
    repo_bundle = {"smartnet_down_seg": DOWN_SEG, "smartnet_down_cls": DOWN_CLS,
                   "smartnet_down_cls_subtypes": DOWN_CLS}[bundle.name]
    run_bundle(repo_bundle, ["inference.json"], {"input": single, "output_dir": out / "result",
                                                 "ckpt_path": bundle / "models" / "model.pt",
                                                 "image_size": SMALL_TRAINING["image_size"], **overrides},
               bundle_root=out)
    return out / "result"


def test_stock_monaibundle_app_serves_and_trains_the_segmenter(monailabel_env, served_bundles, studies, tmp_path):
    apps = tmp_path / "apps"
    result = subprocess.run([str(monailabel_env / "bin" / "monailabel"), "apps", "--download", "--name", "monaibundle",
                             "--output", str(apps)], capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{monailabel_env / 'bin'}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-3000:]
    app = apps / "monaibundle"
    for name in ("smartnet_down_seg", "smartnet_upstream"):  # the upstream sits beside it for the transfer
        shutil.copytree(served_bundles / name, app / "model" / name)
    model = app / "model" / "smartnet_down_seg" / "models" / "model.pt"
    shipped_mtime = model.stat().st_mtime
    image = sorted(studies.glob("*_img.nii.gz"))[0]

    with label_server(monailabel_env, app, studies, "smartnet_down_seg", tmp_path / "server.log") as url:
        info = _get(url + "/info/")
        assert info["models"]["smartnet_down_seg"]["labels"] == {"hemorrhage": 1}
        assert info["models"]["smartnet_down_seg"]["type"] == "segmentation"
        assert "smartnet_down_seg" in info["trainers"]

        label_file = tmp_path / "label.nii.gz"
        label_file.write_bytes(_infer(url, "smartnet_down_seg", image.name.replace(".nii.gz", ""), "image"))
        label, source = nib.load(label_file), nib.load(image)
        assert label.shape == source.shape
        assert np.allclose(label.affine, source.affine, atol=1e-3)
        values = np.asarray(label.dataobj)
        assert set(np.unique(values)) <= {0, 1}

        status = _train_one_epoch(url, "smartnet_down_seg")
        assert status["status"] == "DONE", json.dumps(status)[-3000:]
        details = "\n".join(status.get("details", []))
        assert "smartnet_upstream/models/model.pt" in details  # the bundle's own initialisation: upstream transfer
        assert model.stat().st_mtime > shipped_mtime  # a new best checkpoint (validated at the end of the round)
        assert (model.parent / "last.pt").is_file()

    ours = _bundle_inference(served_bundles / "smartnet_down_seg", image, tmp_path / "ours")
    mask = np.asarray(nib.load(ours / image.name.replace(".nii.gz", "_seg.nii.gz")).dataobj)
    assert np.array_equal(mask.astype(np.uint8), values.astype(np.uint8))  # same weights, same answer


def test_our_app_serves_the_classifier_and_fine_tunes_the_segmenter(monailabel_env, served_bundles, studies,
                                                                    tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(APP / "main.py", app / "main.py")
    for name in ("smartnet_down_seg", "smartnet_down_cls"):
        shutil.copytree(served_bundles / name, app / "model" / name)
    subtyped = app / "model" / "smartnet_down_cls_subtypes"  # the released classifier with subtype weights
    shutil.copytree(served_bundles / "smartnet_down_cls", subtyped)
    shutil.copy(served_bundles.parent / "subtype_weights" / "models" / "model.pt", subtyped / "models" / "model.pt")
    image = sorted(studies.glob("*_img.nii.gz"))[0]
    image_id = image.name.replace(".nii.gz", "")
    tilted = _tilted_copy(image, studies / "tilted_ct.nii.gz")

    with label_server(monailabel_env, app, studies, "smartnet_down_seg,smartnet_down_cls,smartnet_down_cls_subtypes",
                      tmp_path / "server.log") as url:
        info = _get(url + "/info/")
        assert info["models"]["smartnet_down_cls"]["type"] == "classification"
        assert info["models"]["smartnet_down_cls"]["labels"] == {"intracranial_hemorrhage": 0}
        assert set(info["trainers"]) == {"smartnet_down_seg"}

        tilted_label = tmp_path / "tilted_label.nii.gz"
        tilted_label.write_bytes(_infer(url, "smartnet_down_seg", "tilted_ct", "image"))

        answer = json.loads(_infer(url, "smartnet_down_cls", image_id, "json"))
        [prediction] = answer["prediction"]
        assert prediction["label"] == "intracranial_hemorrhage"
        assert 0.0 <= prediction["score"] <= 1.0
        # the subtype head's weights: "any" first, then one entry per subtype (the switch comes from the weights)
        subtype_answer = json.loads(_infer(url, "smartnet_down_cls_subtypes", image_id, "json"))["prediction"]
        assert [p["idx"] for p in subtype_answer] == list(range(6))
        assert [p["label"] for p in subtype_answer] == ["intracranial_hemorrhage", "epidural", "intraparenchymal",
                                                        "intraventricular", "subarachnoid", "subdural"]

        status = _train_one_epoch(url, "smartnet_down_seg")
        assert status["status"] == "DONE", json.dumps(status)[-3000:]
        details = "\n".join(status.get("details", []))
        assert "Restored all variables from" in details and "smartnet_down_seg/models/model.pt" in details

    ours = _bundle_inference(served_bundles / "smartnet_down_cls", image, tmp_path / "ours")
    [row] = json.loads((ours / "predictions.json").read_text(encoding="utf-8"))["volumes"]
    assert abs(row["probability"] - prediction["score"]) < 1e-4  # the served weights are the bundle's
    ours = _bundle_inference(subtyped, image, tmp_path / "ours_subtypes", subtypes=True)
    [row] = json.loads((ours / "predictions.json").read_text(encoding="utf-8"))["volumes"]
    ours_scores = [row["probability"]] + [row[f"p_{p['label']}"] for p in subtype_answer[1:]]
    assert np.allclose(ours_scores, [p["score"] for p in subtype_answer], atol=1e-4)

    # a gantry-tilted scan (sheared affine): the served label lies on the input's voxels, as our own inference's mask
    label, source = nib.load(tilted_label), nib.load(tilted)
    assert label.shape == source.shape
    assert np.allclose(label.affine, source.affine, atol=1e-3), (label.affine, source.affine)
    ours = _bundle_inference(served_bundles / "smartnet_down_seg", tilted, tmp_path / "ours_tilted")
    mask = nib.load(ours / "tilted_ct_seg.nii.gz")
    assert np.allclose(mask.affine, source.affine, atol=1e-3)
    assert np.array_equal(np.asarray(mask.dataobj).astype(np.uint8), np.asarray(label.dataobj).astype(np.uint8))


def _tilted_copy(image: Path, out: Path, degrees: float = 20.0) -> Path:
    """``image`` with the affine of a scan acquired at a gantry tilt: each slice shifted along y by
    tan(tilt) x the slice spacing (a shear, as a tilted DICOM series converts to NIfTI)."""
    source = nib.load(image)
    affine = source.affine.copy()
    affine[1, 2] += np.tan(np.radians(degrees)) * abs(affine[2, 2])
    nib.save(nib.Nifti1Image(np.asarray(source.dataobj), affine), out)
    assert not np.allclose(nib.load(out).affine, source.affine)  # the shear survives the round trip
    return out


def test_our_app_picks_the_profile_from_the_weights_and_refuses_a_mismatch(monailabel_env, served_bundles, tmp_path):
    """MONAI Label loads the weights itself (not through the bundle's checked loader). Our infer task picks the
    profile the weights need from their settings record (as ``smartnet release`` does), loads them strictly, and
    refuses weights that no profile fits, or that the profile given with ``smartnet_profile`` does not fit, when the
    server starts, instead of segmenting garbage."""
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(APP)!r})\n"
        "from main import SmartNetInferTask\n"
        "conf = {'smartnet_profile': sys.argv[2]} if len(sys.argv) > 2 else {}\n"
        "try:\n"
        "    task = SmartNetInferTask(sys.argv[1], conf, type='segmentation')\n"
        "except Exception as error:\n"
        "    print('REFUSED', type(error).__name__, error)\n"
        "else:\n"
        "    print('SERVED', task.is_valid(), task.profile)\n"
    )
    trained = SMALL_TRAINING["image_size"]

    def serve(name: str, configured_size: int, profile_size: int | None = None, *conf: str) -> str:
        bundle = tmp_path / name / "smartnet_down_seg"
        shutil.copytree(served_bundles / "smartnet_down_seg", bundle)
        config = bundle / "configs" / "inference.json"
        settings = json.loads(config.read_text())
        settings["image_size"] = configured_size
        config.write_text(json.dumps(settings, indent=4) + "\n")
        if profile_size is not None:
            (bundle / "configs" / "small.json").write_text(json.dumps({"image_size": profile_size}) + "\n")
        result = subprocess.run([str(monailabel_env / "bin" / "python"), "-c", script, str(bundle), *conf],
                                capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)
        return result.stdout + result.stderr

    assert "SERVED True None" in (out := serve("defaults", trained)), out[-3000:]  # the defaults fit
    assert "SERVED True small" in (out := serve("profile", 2 * trained, trained)), out[-3000:]  # picked by record
    refused = serve("nothing_fits", 2 * trained)
    assert "REFUSED ReleaseError" in refused and "image_size" in refused, refused[-3000:]
    explicit = serve("explicit", 2 * trained, 4 * trained, "small")  # the profile asked for does not fit either
    assert "REFUSED CheckpointError" in explicit and "image_size" in explicit, explicit[-3000:]
