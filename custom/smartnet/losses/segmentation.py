"""Segmentation loss of the reference: batch soft Dice + BCE, with the Dice term off for lesion-free batches; or the
Dice averaged over the lesion slices (`dice_over="lesion_slice"`), or the mean of the two
(`dice_over="batch_and_lesion_slice"`)."""

from __future__ import annotations

import torch
from monai.losses import DiceLoss, MaskedDiceLoss
from torch import nn

__all__ = ["DICE_REDUCTIONS", "DiceBCELoss", "VolumeDiceBCELoss", "lesion_slice_dice_loss"]

DICE_REDUCTIONS = ("batch", "lesion_slice", "batch_and_lesion_slice")

# one soft Dice per sample (stateless; built once, not at every training step)
_PER_SAMPLE_DICE = DiceLoss(sigmoid=False, batch=False, reduction="none", smooth_nr=0.0, smooth_dr=1e-7)


def lesion_slice_dice_loss(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - mean Dice`` over the samples whose target has a lesion pixel; each such sample counts once.

    ``prob`` and ``target`` ``(B, 1, *spatial)``, probabilities (0 on masked voxels) and {0, 1}. A batch Dice pools
    the pixels of the batch, so a 4 mL intraparenchymal blob outweighs a 2-pixel-wide subdural crescent on another
    slice; averaged per lesion slice, both weigh the same. Lesion-free samples are left to the BCE. Output: a
    scalar, 0 when no sample has a lesion.
    """
    positive = target.flatten(1).sum(dim=1) > 0
    if not bool(positive.any()):
        return prob.sum() * 0.0
    per_sample = _PER_SAMPLE_DICE(prob, target)
    return per_sample.flatten(1).mean(dim=1)[positive].mean()


class DiceBCELoss(nn.Module):
    """``lambda_dice * Dice + lambda_bce * BCE-with-logits`` on lesion logits, optionally over masked voxels only.

    The Dice is MONAI's soft Dice with ``batch=True`` (reduced over batch and voxels together, as the reference's
    smp Dice), ``smooth_nr=0`` and ``smooth_dr=1e-7``. When the target has no positive voxel the Dice term is 0
    (the reference multiplies it by 0), so only the BCE acts on lesion-free batches.

    Args:
        lambda_dice: weight of the Dice term.
        lambda_bce: weight of the BCE term.
        dice_over: ``"batch"`` (the reference, above); ``"lesion_slice"``: the Dice of each sample with a lesion,
            averaged (``lesion_slice_dice_loss``), so thin blood weighs as much as a large haematoma but false
            voxels on lesion-free slices meet the BCE only; ``"batch_and_lesion_slice"``: the mean of the two terms
            (the batch Dice keeps penalising false voxels of every slice in a batch with a lesion); ``ValueError``
            for anything else.

    ``forward(logits, target, mask=None)``: ``logits`` and ``target`` ``(B, 1, *spatial)``, target in {0, 1};
    ``mask`` optional ``(B, 1, *spatial)`` in {0, 1} (0 = padding, left out of both terms). Output: a scalar.
    """

    def __init__(self, lambda_dice: float = 1.0, lambda_bce: float = 1.0, dice_over: str = "batch") -> None:
        super().__init__()
        if dice_over not in DICE_REDUCTIONS:
            raise ValueError(f"dice_over must be one of {DICE_REDUCTIONS}, got {dice_over!r}")
        self.dice_over = dice_over
        self.dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=0.0, smooth_dr=1e-7)
        # probabilities in, not logits: masked voxels must be 0 after the sigmoid (MONAI before 1.5.2 masked the logits
        # first, so that padding counted as p = 0.5; MONAI issue 8655)
        self.masked_dice = MaskedDiceLoss(sigmoid=False, batch=True, smooth_nr=0.0, smooth_dr=1e-7)
        self.lambda_dice = lambda_dice
        self.lambda_bce = lambda_bce

    def forward(self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
        else:
            weights = mask.expand_as(logits).to(logits.dtype)
            voxels = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
            bce = (voxels * weights).sum() / weights.sum().clamp(min=1.0)
        terms = []
        if self.dice_over in ("batch", "batch_and_lesion_slice"):
            terms.append(self._batch_dice(logits, target, mask))
        if self.dice_over in ("lesion_slice", "batch_and_lesion_slice"):
            prob = torch.sigmoid(logits) if mask is None else torch.sigmoid(logits) * mask
            terms.append(lesion_slice_dice_loss(prob, target if mask is None else target * mask))
        dice = terms[0] if len(terms) == 1 else (terms[0] + terms[1]) / 2
        return self.lambda_dice * dice + self.lambda_bce * bce

    def _batch_dice(self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The reference's batch soft Dice loss; 0 (with a graph) when the batch holds no lesion voxel."""
        if (target if mask is None else target * mask).sum() > 0:
            return self.dice(logits, target) if mask is None else self.masked_dice(torch.sigmoid(logits), target, mask)
        return logits.sum() * 0.0


class VolumeDiceBCELoss(DiceBCELoss):
    """``DiceBCELoss`` for padded volume batches: ``target`` ``(B, 2, H, W, D)`` holds the lesion mask (channel 0)
    and the real-slice mask (channel 1, 0 on padded slices), as packed by ``smartnet.engines.prepare_volume_seg_batch``;
    padded slices take no part in the loss (the original let them in)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(logits, target[:, :1], target[:, 1:2] if mask is None else mask)
