"""Small building blocks shared by the decoders: conv-BN-ReLU, SCSE attention and the 16-channel last block."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBNReLU", "SCSE", "LastBlock"]


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (no bias) + batch norm + ReLU; ``(B, Cin, H, W) -> (B, Cout, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SCSE(nn.Module):
    """Concurrent spatial and channel squeeze-and-excitation (Roy et al. 2018): ``x * cSE(x) + x * sSE(x)``.

    Args:
        channels: input and output channels.
        reduction: channel reduction of the cSE bottleneck (at least one channel is kept).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.cse = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )
        self.sse = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.cse(x) + x * self.sse(x)


class LastBlock(nn.Module):
    """SCSE(C) -> [upsample] -> ConvBNReLU(C -> 16) -> ConvBNReLU(16 -> 16) -> SCSE(16), the decoders' final block.

    Args:
        in_channels: channels coming from the last decoder block (32 in the reference).
        out_channels: 16 in the reference.
        upsample: nearest-neighbour scale factor; 1 for the stride-1 stem (f1 is already full size), 2 for the
            stride-2 stem. Upsampling adds no parameters, so parameter counts do not depend on the stem.
    """

    def __init__(self, in_channels: int = 32, out_channels: int = 16, upsample: int = 1) -> None:
        super().__init__()
        self.attention_in = SCSE(in_channels)
        self.upsample = nn.Upsample(scale_factor=float(upsample), mode="nearest") if upsample > 1 else nn.Identity()
        self.conv1 = ConvBNReLU(in_channels, out_channels)
        self.conv2 = ConvBNReLU(out_channels, out_channels)
        self.attention_out = SCSE(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.upsample(self.attention_in(x))
        return self.attention_out(self.conv2(self.conv1(x)))
