"""A synthetic ImageNet ResNet state dict in torchvision's format (keys and shapes; random values), without
torchvision: what ``torchvision.models.resnet18/34/50().state_dict()`` holds, minus ``num_batches_tracked`` (absent
from torchvision's released weight files)."""

from __future__ import annotations

import torch

_LAYOUT = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
           "resnet50": ("bottleneck", (3, 4, 6, 3))}


def _bn(prefix: str, channels: int, gen: torch.Generator) -> dict:
    return {f"{prefix}.weight": torch.rand(channels, generator=gen) + 0.5,
            f"{prefix}.bias": torch.randn(channels, generator=gen) * 0.1,
            f"{prefix}.running_mean": torch.randn(channels, generator=gen) * 0.1,
            f"{prefix}.running_var": torch.rand(channels, generator=gen) + 0.5}


def torchvision_resnet_state_dict(name: str = "resnet18", seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision key -> random tensor of torchvision's shape for ResNet ``name`` (1000-class ``fc``)."""
    gen = torch.Generator().manual_seed(seed)
    block, counts = _LAYOUT[name]
    expansion = 4 if block == "bottleneck" else 1
    state = {"conv1.weight": torch.randn(64, 3, 7, 7, generator=gen) * 0.1, **_bn("bn1", 64, gen)}
    in_ch = 64
    for stage, (count, width) in enumerate(zip(counts, (64, 128, 256, 512)), start=1):
        for index in range(count):
            p = f"layer{stage}.{index}"
            out_ch = width * expansion
            if block == "basic":
                shapes = [(width, in_ch, 3, 3), (width, width, 3, 3)]
            else:
                shapes = [(width, in_ch, 1, 1), (width, width, 3, 3), (out_ch, width, 1, 1)]
            for i, shape in enumerate(shapes, start=1):
                state[f"{p}.conv{i}.weight"] = torch.randn(*shape, generator=gen) * 0.05
                state.update(_bn(f"{p}.bn{i}", shape[0], gen))
            if index == 0 and (stage > 1 or in_ch != out_ch):
                state[f"{p}.downsample.0.weight"] = torch.randn(out_ch, in_ch, 1, 1, generator=gen) * 0.05
                state.update(_bn(f"{p}.downsample.1", out_ch, gen))
            in_ch = out_ch
    state["fc.weight"] = torch.randn(1000, in_ch, generator=gen) * 0.01
    state["fc.bias"] = torch.zeros(1000)
    return state
