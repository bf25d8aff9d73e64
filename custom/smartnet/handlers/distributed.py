"""Collect per-rank Python results on rank 0 under torch.distributed (multi-GPU evaluation)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["gather_to_rank0"]


def gather_to_rank0(obj: Any) -> list[Any] | None:
    """``[obj of rank 0, obj of rank 1, ...]`` on rank 0 and ``None`` on the other ranks; ``[obj]`` when
    torch.distributed is not initialised. Every rank must call it (it is a collective)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [obj]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, obj)
    return gathered if torch.distributed.get_rank() == 0 else None
