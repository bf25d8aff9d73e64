"""Task heads: slice classification (logit), segmentation (logits) and reconstruction (linear image)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ClassificationHead", "ConvHead", "tissue_mask", "tissue_peak"]


class ClassificationHead(nn.Module):
    """Global average pool -> dropout -> linear; ``(B, C, h, w) -> (B, 1)`` ICH logit of the slice."""

    def __init__(self, in_channels: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


class ConvHead(nn.Conv2d):
    """3x3 convolution 16 -> out_channels with bias and no activation (lesion logits or reconstructed image)."""

    def __init__(self, in_channels: int = 16, out_channels: int = 1) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1)


def tissue_mask(image: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, 1, H, W)`` bool: pixels whose input is above 0 in some channel (air and zero padding are
    0 in every HU window)."""
    return (image > 0).any(dim=1, keepdim=True)


def tissue_peak(seg_logits: torch.Tensor, image: torch.Tensor, floor: float = -20.0) -> torch.Tensor:
    """Largest lesion logit over tissue pixels: ``(B, 1, H, W), (B, C, H, W) -> (B, 1)``.

    Tissue pixels are those whose input is above 0 in some channel (air and zero padding are 0 in every HU
    window); a slice without tissue gives ``floor``.
    """
    masked = torch.where(tissue_mask(image), seg_logits, torch.full_like(seg_logits, floor))
    return masked.flatten(1).amax(dim=1, keepdim=True)
