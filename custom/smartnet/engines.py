"""Glue for MONAI's engines: batch preparation for the multi-task loss."""

from __future__ import annotations

from typing import Any, Mapping

import torch

__all__ = ["prepare_multitask_batch"]


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
