"""Transfer upstream SMART-Net weights into a downstream volume model.

Load types (key prefixes shared by ``SmartNet2D`` and the volume models):

    encoder           ``encoder.*``                  the reference (318 tensors for ResNet-50, BN buffers included)
    encoder+decoder   ``encoder.*``, ``seg_decoder.*``  for the segmenter: also the upstream U-Net seg decoder, which
                                                     the original silently dropped
    encoder+cls_head  ``encoder.*``, ``cls_head.*``     for a classifier with ``slice_head=True``: also the slice head
    encoder+decoder+seg_head  ``encoder.*``, ``seg_decoder.*``, ``seg_head.*``: for a segmenter with
                     ``slice_head=True``, or a classifier with ``seg_evidence=True``
    encoder+cls_head+decoder+seg_head  all four: a classifier with ``slice_head=True`` and ``seg_evidence=True``
    encoder+cls_head+decoder+seg_head+seg_peak  also ``seg_peak.*``: a classifier with ``seg_peak=True``, from an
                     upstream trained with ``seg_peak=True``

An ImageNet file is not a load type but another source: ``imagenet.load_imagenet_resnet``. The downstream bundles
derive the load type (``upstream_parts``) from their one ``init`` setting and the heads they keep.

The load is strict inside the chosen prefixes: every such tensor of the network must come from the checkpoint with
the same shape, or ``TransferError`` lists the offending keys. Keys of other heads (``cls_head``, ``rec_decoder`` ...)
are ignored and counted.
"""

from __future__ import annotations

from pathlib import Path

from monai.networks.utils import copy_model_state
from torch import nn

from ..errors import TransferError
from .state_dict import TransferReport, listed, read_state_dict, state_mismatches

__all__ = ["LOAD_TYPES", "TransferError", "TransferReport", "read_state_dict", "load_pretrained"]

LOAD_TYPES: dict[str, tuple[str, ...]] = {
    "encoder": ("encoder.",),
    "encoder+decoder": ("encoder.", "seg_decoder."),
    "encoder+cls_head": ("encoder.", "cls_head."),
    "encoder+decoder+seg_head": ("encoder.", "seg_decoder.", "seg_head."),
    "encoder+cls_head+decoder+seg_head": ("encoder.", "cls_head.", "seg_decoder.", "seg_head."),
    "encoder+cls_head+decoder+seg_head+seg_peak": ("encoder.", "cls_head.", "seg_decoder.", "seg_head.", "seg_peak."),
}


def load_pretrained(network: nn.Module, path: str | Path, load_type: str = "encoder") -> TransferReport:
    """Copy the ``load_type`` weights of the checkpoint at ``path`` into ``network`` (in place).

    Raises:
        TransferError: unknown load type, missing file, no matching tensors, or shape/key mismatches (listed).
    """
    if load_type not in LOAD_TYPES:
        raise TransferError(f"unknown load type {load_type!r}; choose one of {list(LOAD_TYPES)}")
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
    return TransferReport(str(path), load_type, prefixes, loaded=list(loaded),
                          ignored=[k for k in source if not k.startswith(prefixes)])
