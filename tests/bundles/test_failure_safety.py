"""Training runs that die: SIGKILL mid-epoch then --resume true reaches the uninterrupted run's exact weights; a full
disk stops the run with one message and keeps what was saved; unusable output folders are refused before any work."""

from __future__ import annotations

import resource
import signal
import subprocess

import pytest
import torch

from conftest import BUNDLE_ENV, TINY_OVERRIDES, UPSTREAM, bundle_command, run_bundle
from smartnet.storage import OutputError, check_output_dir

pytestmark = pytest.mark.slow

EPOCHS = 3
# 4 iterations an epoch (one volume, 4 slices, per step)
RUN = {**TINY_OVERRIDES, "batch_size": 1, "slices_per_volume": 4, "epochs": EPOCHS, "val_interval": EPOCHS}


def _weights(root) -> dict[str, torch.Tensor]:
    return torch.load(root / "models" / "last.pt", weights_only=True)["model"]


def _run_until_killed(cmd: list[str], marker: str) -> str:
    """Start ``cmd``, SIGKILL it as soon as ``marker`` appears in its output; returns the output so far."""
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                               errors="replace", env=BUNDLE_ENV)
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if marker in line:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    return "".join(seen)


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tiny_dataset, tmp_path):
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    run_bundle(UPSTREAM, ["train.json"], {"dataset_dir": tiny_dataset, **RUN}, bundle_root=whole)

    cmd = bundle_command(UPSTREAM, ["train.json"], {"dataset_dir": tiny_dataset, **RUN}, bundle_root=crashed)
    _run_until_killed(cmd, f"Epoch: {EPOCHS}/{EPOCHS}, Iter: 1/")
    saved = sorted(p.name for p in (crashed / "models").iterdir())
    assert f"interval_checkpoint_epoch={EPOCHS - 1}.pt" in saved and "last.pt" not in saved, saved  # killed mid-epoch
    before_resume = torch.load(crashed / "models" / f"interval_checkpoint_epoch={EPOCHS - 1}.pt", weights_only=True)

    result = run_bundle(UPSTREAM, ["train.json"], {"dataset_dir": tiny_dataset, "resume": True, **RUN},
                        bundle_root=crashed)
    done = before_resume["trainer"]
    assert done["iteration"] == (EPOCHS - 1) * done["epoch_length"] and done["epoch_length"] == 4
    assert f"Restored all variables from {crashed / 'models' / f'interval_checkpoint_epoch={EPOCHS - 1}.pt'}" in (
        result.stdout + result.stderr)
    assert "Epoch: 1/" not in result.stdout and f"Epoch: {EPOCHS}/{EPOCHS}, Iter: 4/4" in result.stdout
    resumed, uninterrupted = _weights(crashed), _weights(whole)
    assert resumed.keys() == uninterrupted.keys()
    assert not torch.equal(resumed["encoder.conv1.weight"], before_resume["model"]["encoder.conv1.weight"])
    different = [k for k in uninterrupted if not torch.equal(resumed[k], uninterrupted[k])]
    assert different == [], different[:5]


def _limit_file_size(max_bytes: int):
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit


def test_a_full_disk_stops_training_with_one_message_and_no_partial_file(tiny_dataset, tmp_path):
    cmd = bundle_command(UPSTREAM, ["train.json"], {"dataset_dir": tiny_dataset, **TINY_OVERRIDES, "epochs": 1,
                                                    "val_interval": 1}, bundle_root=tmp_path)
    result = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", env=BUNDLE_ENV,
                            preexec_fn=_limit_file_size(8 * 2**20), timeout=600)  # checkpoints are ~70 MB
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "cannot write checkpoint" in log and "no space left on the device" in log
    assert list((tmp_path / "models").iterdir()) == []  # nothing half-written


@pytest.mark.parametrize("configs, key", [(["train.json"], "ckpt_dir"), (["inference.json"], "output_dir")])
def test_an_output_folder_that_cannot_be_written_is_refused_before_work(configs, key, tiny_dataset, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder should be\n")
    overrides = {"dataset_dir": tiny_dataset, **TINY_OVERRIDES, "epochs": 1, key: blocker / "out"}
    result = run_bundle(UPSTREAM, configs, overrides, bundle_root=tmp_path, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Cannot use the" in result.stderr and str(blocker / "out") in result.stderr
    assert "Epoch" not in result.stdout


def test_too_little_free_space_is_refused(tmp_path):
    with pytest.raises(OutputError, match="MB free, at least"):
        check_output_dir(tmp_path / "out", min_free_mb=1e12)
    assert check_output_dir(tmp_path / "out", min_free_mb=1) == tmp_path / "out"
