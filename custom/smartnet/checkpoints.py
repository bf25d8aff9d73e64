"""Finding and safely loading the checkpoints written by the bundles' ``CheckpointSaver`` handlers."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "check_inference_weights",
    "check_inference_weights_or_exit",
    "latest_checkpoint",
    "load_checkpoint",
]


class UnsafeCheckpointError(ValueError):
    """A checkpoint that holds pickled Python objects other than tensors and plain containers (it could run code)."""


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


class CheckpointError(ValueError):
    """Trained weights that are missing or cannot be read."""


def check_inference_weights(path: str | os.PathLike, allow_random_weights: bool = False) -> bool:
    """Whether the trained weights at ``path`` exist and load (``weights_only``); inference must not run without them.

    Returns False only when the file is missing and ``allow_random_weights`` is set (a smoke test of the pipeline:
    the outputs are meaningless, and a warning says so on stderr).

    Raises:
        CheckpointError: no file at ``path`` (and random weights not allowed), or a file torch cannot read.
        UnsafeCheckpointError: the file carries pickled objects beyond weights.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        if allow_random_weights:
            print(f"WARNING: no trained weights at {path}: running with RANDOM weights (allow_random_weights: true); "
                  "every output is meaningless", file=sys.stderr, flush=True)
            return False
        raise CheckpointError(
            f"no trained weights at {path}: train the bundle first, or point --ckpt_path (or --ckpt_dir) at a "
            "model.pt; --allow_random_weights true runs untrained weights, for smoke tests of the pipeline only"
        )
    try:
        load_checkpoint(path)
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # torch raises RuntimeError, EOFError, zipfile errors... for damaged files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: "
                              f"{str(err).strip()[:200]})") from None
    return True


def check_inference_weights_or_exit(path: str | os.PathLike, allow_random_weights: bool = False) -> bool:
    """``check_inference_weights`` for bundle configs: on a problem print it and exit with status 2."""
    try:
        return check_inference_weights(path, allow_random_weights)
    except (CheckpointError, UnsafeCheckpointError) as err:
        print(f"Cannot run inference: {err}", file=sys.stderr)
        raise SystemExit(2) from None


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
