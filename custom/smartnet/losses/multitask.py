"""The upstream multi-task loss: weighted CLS + SEG + REC (+ consistency) on the packed network output."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ..networks.multitask_2d import _check_tasks, split_heads
from .consistency import ConsistencyLoss
from .segmentation import DiceBCELoss

__all__ = ["MultiTaskLoss", "DEFAULT_WEIGHTS"]

DEFAULT_WEIGHTS = {"cls": 1.0, "seg": 1.0, "rec": 1.0, "consistency": 0.5}


class MultiTaskLoss(nn.Module):
    """Reference upstream loss: ``w_cls*BCE + w_seg*(Dice+BCE) + w_rec*L1 + w_cons*consistency``.

    Args:
        tasks: heads of the network, a subset of ("cls", "seg", "rec").
        consistency: add the CLS-SEG consistency term; needs both "cls" and "seg" (``ValueError`` otherwise).
        weights: per-term weights; missing keys take ``DEFAULT_WEIGHTS`` (1 / 1 / 1 / 0.5).
        block: consistency tile size in pixels, normally the network's ``output_stride``.
        in_channels: input channels (width of the reconstruction output).
        seg_dice: how the segmentation Dice is reduced, ``"batch"`` (the reference) or ``"lesion_slice"``
            (``DiceBCELoss``'s ``dice_over``).

    ``forward(pred, target)``: ``pred`` is the network's packed output ``(B, K, H, W)``; ``target`` is
    ``(B, 1 + C_in, H, W)``: the lesion mask followed by the network input (the reconstruction target), as built by
    ``smartnet.engines.prepare_multitask_batch``. The slice label is "the mask has a positive pixel".
    Returns the scalar total; the weighted terms of the last call are in ``last_terms`` (floats).
    """

    def __init__(
        self,
        tasks: Sequence[str] = ("cls", "seg", "rec"),
        consistency: bool = True,
        weights: Mapping[str, float] | None = None,
        block: int = 16,
        in_channels: int = 1,
        seg_dice: str = "batch",
    ) -> None:
        super().__init__()
        self.tasks = _check_tasks(tasks)
        if consistency and not {"cls", "seg"} <= set(self.tasks):
            raise ValueError(f"the consistency loss needs both the cls and seg heads, the model has {self.tasks}")
        self.consistency = consistency
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.in_channels = in_channels
        self.seg_loss = DiceBCELoss(dice_over=seg_dice)
        self.consistency_loss = ConsistencyLoss(block)
        self.last_terms: dict[str, float] = {}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        heads = split_heads(pred, self.tasks, self.in_channels)
        mask = target[:, :1]
        image = target[:, 1:]
        terms: dict[str, torch.Tensor] = {}
        if "cls" in heads:
            slice_label = (mask.flatten(1).amax(dim=1, keepdim=True) > 0).to(heads["cls"].dtype)
            terms["cls"] = nn.functional.binary_cross_entropy_with_logits(heads["cls"], slice_label)
        if "seg" in heads:
            terms["seg"] = self.seg_loss(heads["seg"], mask)
        if "rec" in heads:
            terms["rec"] = nn.functional.l1_loss(heads["rec"], image)
        if self.consistency:
            terms["consistency"] = self.consistency_loss(heads["cls"], heads["seg"])
        weighted = {k: self.weights[k] * v for k, v in terms.items()}
        self.last_terms = {k: float(v.detach()) for k, v in weighted.items()}
        return torch.stack(list(weighted.values())).sum()
