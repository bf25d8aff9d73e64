"""No checkpoint can run code: every load is ``weights_only``; a file with pickled code is refused with a message."""

from __future__ import annotations

import errno

import os
from pathlib import Path

import pytest
import torch

from conftest import DOWN_CLS, TINY_DOWN_OVERRIDES, TINY_OVERRIDES, UPSTREAM, run_bundle
from smartnet.checkpoints import UnsafeCheckpointError, load_checkpoint
from smartnet.errors import OutputWriteError

pytestmark = pytest.mark.slow


class _RunsCode:
    """Unpickling this would call os.system (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted(path: Path, marker: Path) -> Path:
    torch.save({"model": {"encoder.conv1.weight": torch.zeros(1)}, "payload": _RunsCode(marker)}, path)
    return path


def test_load_checkpoint_refuses_pickled_code(tmp_path):
    marker = tmp_path / "pwned"
    crafted = _crafted(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeCheckpointError, match="refused, it holds pickled Python objects"):
        load_checkpoint(crafted)
    assert not marker.exists()  # nothing ran
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.ones(2)}, plain)
    assert torch.equal(load_checkpoint(plain)["w"], torch.ones(2))


def test_transfer_from_a_crafted_upstream_checkpoint_is_refused(tiny_dataset, tmp_path):
    marker = tmp_path / "pwned"
    crafted = _crafted(tmp_path / "upstream.pt", marker)
    result = run_bundle(DOWN_CLS, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 1,
                                                   "pretrained_path": crafted, **TINY_DOWN_OVERRIDES},
                        bundle_root=tmp_path / "root", check=False)
    log = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in log
    assert "refused, it holds pickled Python objects" in log and str(crafted) in log
    assert not marker.exists()


def test_resume_from_a_crafted_checkpoint_is_refused(tiny_dataset, tmp_path):
    marker = tmp_path / "pwned"
    models = tmp_path / "root" / "models"
    models.mkdir(parents=True)
    _crafted(models / "last.pt", marker)
    result = run_bundle(UPSTREAM, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 1, "resume": True,
                                                   **TINY_OVERRIDES}, bundle_root=tmp_path / "root", check=False)
    log = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in log
    assert "Cannot resume" in log and "refused, it holds pickled Python objects" in log
    assert not marker.exists()


def test_checkpoint_saves_are_atomic(tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous model.pt intact (MONAI's own saver writes in place) and stops
    the run with one message naming the file."""
    from ignite.engine import Engine

    from smartnet.handlers import AtomicCheckpointSaver

    network = torch.nn.Linear(2, 1)
    saver = AtomicCheckpointSaver(save_dir=str(tmp_path), save_dict={"model": network}, save_final=True,
                                  final_filename="model.pt")
    engine = Engine(lambda e, b: None)
    saver.attach(engine)
    engine.run([0], max_epochs=1)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert torch.equal(saved["weight"], network.weight.detach())

    real_save = torch.save

    def dies_half_way(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(10)  # what a crash or a full disk leaves behind
        raise OSError(errno.ENOSPC, "No space left on device")

    with torch.no_grad():
        network.weight.add_(1.0)
    monkeypatch.setattr(torch, "save", dies_half_way)
    again = AtomicCheckpointSaver(save_dir=str(tmp_path), save_dict={"model": network}, save_final=True,
                                  final_filename="model.pt")
    second = Engine(lambda e, b: None)
    again.attach(second)
    with pytest.raises(OutputWriteError, match=r"cannot write checkpoint .*model\.pt: no space left on the device"):
        second.run([0], max_epochs=1)
    monkeypatch.setattr(torch, "save", real_save)
    kept = torch.load(tmp_path / "model.pt", weights_only=True)  # still the complete, previous checkpoint
    assert torch.equal(kept["weight"], saved["weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary file left
