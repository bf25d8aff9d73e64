"""Finding checkpoints written by the bundles' ``CheckpointSaver`` handlers."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["latest_checkpoint"]


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
