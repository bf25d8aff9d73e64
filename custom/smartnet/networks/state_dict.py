"""Reading checkpoints as model state dicts and comparing them with a network: the helpers that weight transfer
(``transfer.py``) and the ImageNet initialisation (``imagenet.py``) share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from ..checkpoints import UnsafeCheckpointError, load_checkpoint
from ..errors import TransferError

__all__ = ["TransferReport", "state_mismatches", "listed", "read_state_dict"]


@dataclass
class TransferReport:
    """What ``load_pretrained`` did: tensors copied, and checkpoint tensors left out (other heads)."""

    path: str
    load_type: str
    prefixes: tuple[str, ...]
    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def summary(self) -> str:
        prefixes = ", ".join(p + "*" for p in self.prefixes)
        other = "of the ImageNet classifier (fc)" if self.load_type == "imagenet" else "of other heads"
        return (f"loaded {len(self.loaded)} tensors ({prefixes}) from {self.path}; "
                f"ignored {len(self.ignored)} tensors {other}")


def state_mismatches(wanted: Mapping[str, torch.Tensor], offered: Mapping[str, torch.Tensor], source: str,
                     target: str, optional_suffix: str | None = None, strip: str = "") -> list[str]:
    """One line per key of ``wanted`` missing from ``offered`` (unless it ends with ``optional_suffix``), per shape
    mismatch, and per key of ``offered`` that ``wanted`` lacks; ``strip`` is cut from the front of shown keys."""
    def name(key: str) -> str:
        return key[len(strip):] if strip and key.startswith(strip) else key

    problems = [f"{name(k)}: not in the {source}" for k in wanted
                if k not in offered and not (optional_suffix and k.endswith(optional_suffix))]
    problems += [f"{name(k)}: {source} {tuple(offered[k].shape)} vs {target} {tuple(v.shape)}"
                 for k, v in wanted.items() if k in offered and offered[k].shape != v.shape]
    problems += [f"{name(k)}: in the {source} but not in the {target}" for k in offered if k not in wanted]
    return problems


def listed(problems: list[str], limit: int = 20) -> str:
    """The first ``limit`` problems, one per line, and how many more."""
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return "\n  ".join(problems[:limit]) + more


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A model state dict from a checkpoint file: a plain state dict, or one under ``model``, ``state_dict`` or
    ``model_state_dict`` (as written by the bundles' best / last checkpoints); a DDP ``module.`` prefix is removed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TransferError(f"pretrained checkpoint not found: {path} (train the upstream bundle first, or set the "
                            "path to its models/model.pt)")
    try:
        state = load_checkpoint(path)
    except UnsafeCheckpointError as err:
        raise TransferError(str(err)) from None
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TransferError(f"{path}: not a model state dict")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
