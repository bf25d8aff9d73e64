"""No checkpoint can run code: every load is ``weights_only``; a file with pickled code is refused with a message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from conftest import DOWN_CLS, TINY_DOWN_OVERRIDES, TINY_OVERRIDES, UPSTREAM, run_bundle
from smartnet.checkpoints import UnsafeCheckpointError, load_checkpoint


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
    assert "cannot resume" in log and "refused, it holds pickled Python objects" in log
    assert not marker.exists()
