"""Decoders of the upstream model. Both take the encoder's ``out_channels`` and its feature list ``[f0..f5]``.

* ``UNetDecoder`` (segmentation): four blocks "upsample x2 (nearest) -> concat skip -> 2 x ConvBNReLU" with
  channels (256, 128, 64, 32), skips f4, f3, f2, f1, then the 16-channel ``LastBlock``. Output ``(B, 16, H, W)``.
* ``ReconstructionDecoder`` (autoencoder, no skips): four blocks "1x1 conv C->4C + PixelShuffle(2) ->
  2 x (conv3x3 with bias + ReLU)" from f5 only, then the same ``LastBlock``. Output ``(B, 16, H, W)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .blocks import ConvBNReLU, LastBlock

__all__ = ["UNetDecoder", "ReconstructionDecoder"]

DECODER_CHANNELS = (256, 128, 64, 32)


class UNetBlock(nn.Module):
    """Upsample x2 (nearest), concatenate the skip, two ConvBNReLU; ``(B, Cin, h, w) -> (B, Cout, 2h, 2w)``."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels + skip_channels, out_channels)
        self.conv2 = ConvBNReLU(out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.conv2(self.conv1(torch.cat([x, skip], dim=1)))


class UNetDecoder(nn.Module):
    """U-Net segmentation decoder with skips; returns ``(B, 16, H, W)`` at the input resolution.

    Args:
        encoder_channels: the encoder's ``out_channels`` (six entries, f0 first).
        stem_stride: the encoder's stem stride; the last block upsamples by it.
    """

    def __init__(self, encoder_channels: Sequence[int], stem_stride: int = 1) -> None:
        super().__init__()
        deep = encoder_channels[-1]
        skips = list(encoder_channels[1:-1])[::-1]  # f4, f3, f2, f1
        ins = [deep, *DECODER_CHANNELS[:-1]]
        self.blocks = nn.ModuleList(UNetBlock(i, s, o) for i, s, o in zip(ins, skips, DECODER_CHANNELS))
        self.last = LastBlock(DECODER_CHANNELS[-1], 16, upsample=stem_stride)
        self.out_channels = 16

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for i, block in enumerate(self.blocks):
            x = block(x, features[-2 - i])
        return self.last(x)


class PixelShuffleBlock(nn.Module):
    """1x1 conv Cin->4Cin + PixelShuffle(2), then two conv3x3 (bias, no BN) + ReLU; ``(B,Cin,h,w)->(B,Cout,2h,2w)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upsample = nn.Sequential(nn.Conv2d(in_channels, 4 * in_channels, 1), nn.PixelShuffle(2))
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.upsample(x))


class ReconstructionDecoder(nn.Module):
    """Skip-less PixelShuffle decoder from the deepest feature map; returns ``(B, 16, H, W)``.

    Args:
        encoder_channels: the encoder's ``out_channels`` (only the last entry is used).
        stem_stride: the encoder's stem stride; the last block upsamples by it.
    """

    def __init__(self, encoder_channels: Sequence[int], stem_stride: int = 1) -> None:
        super().__init__()
        ins = [encoder_channels[-1], *DECODER_CHANNELS[:-1]]
        self.blocks = nn.Sequential(*(PixelShuffleBlock(i, o) for i, o in zip(ins, DECODER_CHANNELS)))
        self.last = LastBlock(DECODER_CHANNELS[-1], 16, upsample=stem_stride)
        self.out_channels = 16

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.last(self.blocks(features[-1]))
