"""ResNet slice encoders that return the feature pyramid ``[f0, ..., f5]``.

Contract (as segmentation_models.pytorch): ``forward(x)`` with ``x`` of shape ``(B, C, H, W)`` returns six maps,
the input first. For ResNet-50 with the reference stride-1 stem and a 256x256 input:

    f0 (B, 1, 256, 256)   input
    f1 (B, 64, 256, 256)  conv1 + BN + ReLU
    f2 (B, 256, 128, 128) maxpool + layer1
    f3 (B, 512, 64, 64)   layer2
    f4 (B, 1024, 32, 32)  layer3
    f5 (B, 2048, 16, 16)  layer4

With the standard stride-2 stem every map after f0 is half that size (total stride 32 instead of 16).
Parameter names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1`` ...), so torchvision state dicts map 1:1.
"""

from __future__ import annotations

import torch
from monai.networks.nets import ResNet

__all__ = ["ENCODERS", "ResNetEncoder"]

# name -> (block type, layers, out_channels of f0..f5 with f0 filled in at build time)
ENCODERS: dict[str, tuple[str, list[int], tuple[int, ...]]] = {
    "resnet18": ("basic", [2, 2, 2, 2], (64, 64, 128, 256, 512)),
    "resnet34": ("basic", [3, 4, 6, 3], (64, 64, 128, 256, 512)),
    "resnet50": ("bottleneck", [3, 4, 6, 3], (64, 256, 512, 1024, 2048)),
}


class ResNetEncoder(ResNet):
    """2D ResNet-18/34/50 feature extractor with a configurable stem stride.

    Args:
        name: one of ``ENCODERS`` ("resnet18", "resnet34", "resnet50").
        in_channels: input channels (1 for one HU window, more for multi-window input).
        stem_stride: 1 = the SMART-Net reference (total stride 16), 2 = the standard ResNet stem (total stride 32).

    Raises:
        ValueError: for an unknown name or a stem stride other than 1 or 2.
    """

    def __init__(self, name: str = "resnet50", in_channels: int = 1, stem_stride: int = 1) -> None:
        if name not in ENCODERS:
            raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 (reference) or 2 (standard), got {stem_stride}")
        block, layers, channels = ENCODERS[name]
        super().__init__(
            block=block,
            layers=layers,
            block_inplanes=[64, 128, 256, 512],
            spatial_dims=2,
            n_input_channels=in_channels,
            conv1_t_size=7,
            conv1_t_stride=stem_stride,
            feed_forward=False,
            bias_downsample=False,
        )
        del self.avgpool  # the heads pool for themselves
        self.out_channels: list[int] = [in_channels, *channels]
        self.stem_stride = stem_stride
        self.output_stride = 16 * stem_stride

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        """Return ``[f0, ..., f5]`` for ``x`` of shape ``(B, C, H, W)``; see the module docstring for shapes."""
        f1 = self.act(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return [x, f1, f2, f3, f4, f5]
