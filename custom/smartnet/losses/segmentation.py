"""Segmentation loss of the reference: batch soft Dice + BCE, with the Dice term off for lesion-free batches."""

from __future__ import annotations

import torch
from monai.losses import DiceLoss
from torch import nn

__all__ = ["DiceBCELoss"]


class DiceBCELoss(nn.Module):
    """``lambda_dice * Dice + lambda_bce * BCE-with-logits`` on lesion logits.

    The Dice is MONAI's soft Dice with ``batch=True`` (reduced over batch and voxels together, as the reference's
    smp Dice), ``smooth_nr=0`` and ``smooth_dr=1e-7``. When the target has no positive voxel the Dice term is 0
    (the reference multiplies it by 0), so only the BCE acts on lesion-free batches.

    Args:
        lambda_dice: weight of the Dice term.
        lambda_bce: weight of the BCE term.
        mask: optional ``(B, 1, *spatial)`` voxel weights (1 = counts, 0 = padding); used by volume models.

    Inputs: ``logits`` and ``target`` of shape ``(B, 1, *spatial)``, target in {0, 1}. Output: a scalar.
    """

    def __init__(self, lambda_dice: float = 1.0, lambda_bce: float = 1.0) -> None:
        super().__init__()
        self.dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=0.0, smooth_dr=1e-7)
        self.lambda_dice = lambda_dice
        self.lambda_bce = lambda_bce

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
        if target.sum() > 0:
            dice = self.dice(logits, target)
        else:
            dice = logits.sum() * 0.0
        return self.lambda_dice * dice + self.lambda_bce * bce
