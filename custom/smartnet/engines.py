"""Glue for MONAI's engines: batch preparation for the multi-task loss and the padded volume batches."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from monai.data import MetaTensor

__all__ = ["prepare_multitask_batch", "prepare_volume_cls_batch", "prepare_volume_seg_batch"]


def prepare_multitask_batch(
    batchdata: Mapping[str, torch.Tensor],
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``prepare_batch`` for ``SupervisedTrainer``: returns ``(image, target)``.

    ``image`` is ``(B, C, H, W)``; ``target`` is ``(B, 1 + C, H, W)``, the lesion mask followed by the image itself
    (the reconstruction target), which is what ``smartnet.losses.MultiTaskLoss`` expects.
    """
    image = batchdata["image"].to(device=device, non_blocking=non_blocking, **kwargs)
    label = batchdata["label"].to(device=device, non_blocking=non_blocking, **kwargs)
    return image, torch.cat([label.to(image.dtype), image], dim=1)


def _plain(x: torch.Tensor) -> torch.Tensor:
    """The tensor without MONAI metadata (targets are sliced by the losses, which batched metadata cannot follow)."""
    return x.as_tensor() if isinstance(x, MetaTensor) else x


def _depths(batchdata: Mapping[str, Any], image: torch.Tensor) -> torch.Tensor:
    """True depths ``(B,)`` from the batch's ``depth`` key (set by ``smartnet.transforms.VolumeDepthd``), else all D."""
    depth = batchdata.get("depth")
    if depth is None:
        return torch.full((image.shape[0],), image.shape[-1], dtype=torch.long)
    return torch.as_tensor(depth, dtype=torch.long).reshape(-1).cpu()


def prepare_volume_cls_batch(
    batchdata: Mapping[str, torch.Tensor],
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
    """``prepare_batch`` for the volume classifier: ``(image, volume_label, (depths,), {})``.

    ``image`` ``(B, C, H, W, D)`` zero-padded along D, ``volume_label`` ``(B, 1)`` float in {0, 1} (from the
    ``volume_label`` key; ``(B, 6)`` "any" + subtypes with the subtype head), ``depths`` ``(B,)`` passed on to
    ``network(image, depths)``.
    """
    image = batchdata["image"].to(device=device, non_blocking=non_blocking, **kwargs)
    depths = _depths(batchdata, image)
    label = batchdata.get("volume_label")
    target = None if label is None else torch.as_tensor(label).reshape(image.shape[0], -1).to(device=device,
                                                                                             dtype=image.dtype)
    return image, target, (depths,), {}


def prepare_volume_seg_batch(
    batchdata: Mapping[str, torch.Tensor],
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
    """``prepare_batch`` for the volume segmenter: ``(image, target, (depths,), {})``.

    ``target`` ``(B, 2, H, W, D)``: the lesion mask and the real-slice mask (0 on padded slices), which
    ``smartnet.losses.VolumeDiceBCELoss`` expects.
    """
    image = batchdata["image"].to(device=device, non_blocking=non_blocking, **kwargs)
    depths = _depths(batchdata, image)
    label = batchdata.get("label")
    if label is None:
        return image, None, (depths,), {}
    label = _plain(label).to(device=device, non_blocking=non_blocking, dtype=image.dtype)
    real = torch.arange(image.shape[-1], device=image.device)[None, :] < depths.to(image.device)[:, None]
    real = real[:, None, None, None, :].expand_as(label).to(image.dtype)
    return image, torch.cat([label, real], dim=1), (depths,), {}
