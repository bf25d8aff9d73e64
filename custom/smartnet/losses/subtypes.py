"""Weighted binary cross-entropy over "any" and the five haemorrhage subtypes (the RSNA 2019 challenge's loss)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..vocabulary import SUBTYPE_WEIGHTS

__all__ = ["SubtypeBCELoss"]


class SubtypeBCELoss(nn.Module):
    """``sum_j w_j * BCE_j / sum_j w_j``, averaged over the batch, for logits and targets ``(B, K)``.

    ``weights`` default to ``smartnet.vocabulary.SUBTYPE_WEIGHTS`` ("any" double, each subtype once), the weights of
    the challenge's multi-label log loss; with ``K`` = 1 (no subtype head) it is the plain binary cross-entropy.
    """

    def __init__(self, weights: Sequence[float] = SUBTYPE_WEIGHTS) -> None:
        super().__init__()
        self.register_buffer("weights", torch.as_tensor(list(weights), dtype=torch.float32), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = logits.shape[-1]
        if target.shape != logits.shape or k > self.weights.numel():
            raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must be (B, K) alike, "
                             f"K <= {self.weights.numel()}")
        per_column = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none").mean(0)
        weights = self.weights[:k].to(per_column.device)
        return (per_column * weights).sum() / weights.sum()
