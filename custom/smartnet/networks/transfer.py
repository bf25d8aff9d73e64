"""Transfer upstream SMART-Net weights into a downstream volume model.

Load types (key prefixes shared by ``SmartNet2D`` and the volume models):

    encoder           ``encoder.*``                  the reference (318 tensors for ResNet-50, BN buffers included)
    encoder+decoder   ``encoder.*``, ``seg_decoder.*``  for the segmenter: also the upstream U-Net seg decoder, which the
                                                     original silently dropped
    encoder+cls_head  ``encoder.*``, ``cls_head.*``     for a classifier with ``slice_head=True``: also the slice head
    encoder+decoder+seg_head  ``encoder.*``, ``seg_decoder.*``, ``seg_head.*``: for a segmenter with
                     ``slice_head=True``, or a classifier with ``seg_evidence=True``
    encoder+cls_head+decoder+seg_head  all four: a classifier with ``slice_head=True`` and ``seg_evidence=True``
    encoder+cls_head+decoder+seg_head+seg_peak  also ``seg_peak.*``: a classifier with ``seg_peak=True``, from an
                     upstream trained with ``seg_peak=True``
    imagenet          ``encoder.*``                  from a torchvision ImageNet ResNet file (``imagenet.py``)

The load is strict inside the chosen prefixes: every such tensor of the network must come from the checkpoint with
the same shape, or ``TransferError`` lists the offending keys. Keys of other heads (``cls_head``, ``rec_decoder`` ...)
are ignored and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from monai.networks.utils import copy_model_state
from torch import nn

from ..checkpoints import UnsafeCheckpointError, load_checkpoint
from ..errors import TransferError

__all__ = ["LOAD_TYPES", "TransferError", "TransferReport", "read_state_dict", "load_pretrained"]

LOAD_TYPES: dict[str, tuple[str, ...]] = {
    "encoder": ("encoder.",),
    "encoder+decoder": ("encoder.", "seg_decoder."),
    "encoder+cls_head": ("encoder.", "cls_head."),
    "encoder+decoder+seg_head": ("encoder.", "seg_decoder.", "seg_head."),
    "encoder+cls_head+decoder+seg_head": ("encoder.", "cls_head.", "seg_decoder.", "seg_head."),
    "encoder+cls_head+decoder+seg_head+seg_peak": ("encoder.", "cls_head.", "seg_decoder.", "seg_head.", "seg_peak."),
    "imagenet": ("encoder.",),
}


@dataclass
class TransferReport:
    """What ``load_pretrained`` did: tensors copied, and checkpoint tensors left out (other heads)."""

    path: str
    load_type: str
    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def summary(self) -> str:
        prefixes = ", ".join(p + "*" for p in LOAD_TYPES[self.load_type])
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


def load_pretrained(network: nn.Module, path: str | Path, load_type: str = "encoder") -> TransferReport:
    """Copy the ``load_type`` weights of the checkpoint at ``path`` into ``network`` (in place).

    Raises:
        TransferError: unknown load type, missing file, no matching tensors, or shape/key mismatches (listed).
    """
    if load_type not in LOAD_TYPES:
        raise TransferError(f"unknown load type {load_type!r}; choose one of {list(LOAD_TYPES)}")
    if load_type == "imagenet":
        from .imagenet import load_imagenet_resnet

        return load_imagenet_resnet(network, path)
    network = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
    prefixes = LOAD_TYPES[load_type]
    source = read_state_dict(path)
    target = network.state_dict()
    wanted = {k: v for k, v in target.items() if k.startswith(prefixes)}
    if not wanted:
        raise TransferError(f"the network has no {', '.join(prefixes)} weights to load for load type {load_type!r}")
    offered = {k: v for k, v in source.items() if k.startswith(prefixes)}
    problems = state_mismatches(wanted, offered, "checkpoint", "network")
    if problems:
        raise TransferError(f"{path} does not fit the network for load type {load_type!r} ({len(problems)} "
                            f"problem(s); same encoder, stem stride and input channels?):\n  {listed(problems)}")
    _, loaded, _ = copy_model_state(network, offered, inplace=True)
    return TransferReport(str(path), load_type, loaded=list(loaded),
                          ignored=[k for k in source if not k.startswith(prefixes)])
