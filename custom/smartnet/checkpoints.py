"""Finding and safely loading the checkpoints written by the bundles' ``CheckpointSaver`` handlers."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, UnsafeCheckpointError
from .weight_record import settings_mismatches

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "check_inference_weights",
    "check_recorded_settings",
    "latest_checkpoint",
    "load_checkpoint",
]


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings and containers only, never code.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnsafeCheckpointError: the file carries other pickled objects; the message says how to re-save it.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnsafeCheckpointError(
            f"{path}: refused, it holds pickled Python objects beyond weights ({reason[:300]}). Checkpoints are "
            "loaded with torch.load(weights_only=True) so that no file can run code; re-save it in a trusted "
            "environment as a plain state dict: torch.save(model.state_dict(), path)"
        ) from None


_MISSING = {
    "inference": "no trained weights at {path}: train the bundle first, or point --ckpt_path (or --ckpt_dir) at a "
                 "model.pt; --allow_random_weights true runs untrained weights, for smoke tests of the pipeline only",
    "evaluation": "no trained weights at {path}: train the bundle first, or point --ckpt_dir at the folder holding "
                  "its model.pt",
    "fine-tuning": "no checkpoint to fine-tune at {path}: point --finetune_model_path at a model.pt",
    "transfer": "pretrained checkpoint not found: {path}: train the upstream bundle first, or point --pretrained_path "
                "at its models/model.pt",
}


def check_inference_weights(
    path: str | os.PathLike, allow_random_weights: bool = False, settings: Any = None, purpose: str = "inference"
) -> bool:
    """Whether the trained weights at ``path`` exist, load (``weights_only``) and were trained with ``settings``;
    evaluation and inference must not run without them.

    Args:
        path: the checkpoint (``model.pt``).
        allow_random_weights: a missing file is allowed (a smoke test of the pipeline: the outputs are meaningless,
            and a warning says so on stderr); the function then returns False.
        settings: the running configuration's ``SettingsRecord`` (or mapping); compared with the record the
            checkpoint carries under ``settings``. A checkpoint without a record (written before records existed) is
            used with a warning.
        purpose: ``inference``, ``evaluation``, ``fine-tuning`` or ``transfer``: what the message of a missing file
            suggests.

    Raises:
        CheckpointError: no file at ``path`` (and random weights not allowed), a file torch cannot read, or weights
            trained with other settings (each differing setting named, with both values).
        UnsafeCheckpointError: the file carries pickled objects beyond weights.
    """
    path = Path(os.path.normpath(Path(path).expanduser()))  # "<root>/bundle/../other" before bundle/ exists
    if not path.is_file():
        if allow_random_weights:
            print(f"WARNING: no trained weights at {path}: running with RANDOM weights (allow_random_weights: true); "
                  "every output is meaningless", file=sys.stderr, flush=True)
            return False
        raise CheckpointError(_MISSING.get(purpose, _MISSING["inference"]).format(path=path))
    try:
        checkpoint = load_checkpoint(path)
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # torch raises RuntimeError, EOFError, zipfile errors... for damaged files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: "
                              f"{str(err).strip()[:200]})") from None
    if settings is not None:
        check_recorded_settings(checkpoint, settings, path)
    return True


def check_recorded_settings(checkpoint: Any, settings: Any, path: str | os.PathLike) -> None:
    """Compare the ``settings`` record of a loaded ``checkpoint`` with the running ``settings`` (a
    ``SettingsRecord`` or mapping); raise ``CheckpointError`` naming every difference, warn when there is no record."""

    running = settings.state_dict() if hasattr(settings, "state_dict") else dict(settings)
    saved = checkpoint.get("settings") if isinstance(checkpoint, dict) else None
    if not isinstance(saved, dict):
        print(f"WARNING: {path} carries no settings record (written by an older version): its architecture and "
              "preprocessing settings cannot be checked against this run", file=sys.stderr, flush=True)
        return
    differ = settings_mismatches(saved, running)
    if differ:
        raise CheckpointError(f"{path} was trained with other settings than this run: " + "; ".join(differ)
                              + ". Run with the settings it was trained with (e.g. the same profile, such as "
                              "configs/demo.json), or train for these settings")


def latest_checkpoint(ckpt_dir: str | os.PathLike) -> str:
    """The newest training-state checkpoint in ``ckpt_dir`` (``last.pt`` or ``interval_checkpoint_epoch=N.pt``).

    When there is none, ``<ckpt_dir>/last.pt`` is returned, so that a config can resolve the path unconditionally;
    loading it then fails with the file name in the message.
    """
    folder = Path(ckpt_dir).expanduser()
    candidates = [p for p in (folder.glob("interval_*.pt") if folder.is_dir() else []) if p.is_file()]
    if (folder / "last.pt").is_file():
        candidates.append(folder / "last.pt")
    if not candidates:
        return str(folder / "last.pt")
    return str(max(candidates, key=lambda p: p.stat().st_mtime))
