"""Finding and safely loading the checkpoints written by the bundles' ``CheckpointSaver`` handlers."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

__all__ = ["UnsafeCheckpointError", "latest_checkpoint", "load_checkpoint"]


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
