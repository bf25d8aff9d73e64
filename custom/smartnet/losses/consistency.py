"""The SMART-Net consistency loss between the classification and the segmentation head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["block_max_mean", "ConsistencyLoss"]


def block_max_mean(seg_prob: torch.Tensor, block: int) -> torch.Tensor:
    """Mean of block maxima of a probability map: ``(B, 1, H, W) -> (B, 1)``.

    The map is cut into ``block x block`` tiles (the last row / column of tiles may be partial), each tile keeps its
    maximum, and the maxima are averaged. With ``block`` equal to the encoder's output stride the tiles are the
    cells of the encoder's last feature map, which the classification head averages over. For a 256 x 256 input
    and the stride-16 reference encoder this is exactly the original ``AvgPool16(MaxPool16(.))``; unlike the
    original it reduces to one number per image for any input size and stride.
    """
    maxima = F.max_pool2d(seg_prob, kernel_size=block, stride=block, ceil_mode=True)
    return maxima.mean(dim=(2, 3))


class ConsistencyLoss(nn.Module):
    """``MSE(sigmoid(cls_logit), block_max_mean(sigmoid(seg_logits)))``, no stop-gradient (as the reference).

    Args:
        block: tile size in pixels, normally the encoder's output stride (16 reference, 32 with a stride-2 stem).

    Inputs: ``cls_logit (B, 1)``, ``seg_logits (B, 1, H, W)``. Output: a scalar.
    """

    def __init__(self, block: int = 16) -> None:
        super().__init__()
        self.block = block

    def forward(self, cls_logit: torch.Tensor, seg_logits: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(cls_logit)
        q = block_max_mean(torch.sigmoid(seg_logits), self.block)
        return F.mse_loss(q, p)
