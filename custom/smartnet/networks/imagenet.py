"""ImageNet initialisation of the slice encoder from a local torchvision ResNet state-dict file.

Nothing is downloaded at run time (hospital machines are often offline). Put torchvision's file, e.g.
``resnet50-11ad3fa6.pth`` (``torchvision.models.ResNet50_Weights.IMAGENET1K_V2``; any torchvision ResNet-18/34/50
state dict of the same depth works), at the configured ``imagenet_path``.

torchvision key ``k`` maps to ``encoder.k`` (the encoder uses torchvision's parameter names); ``fc.*`` is left out.
The first convolution ``(64, 3, 7, 7)`` becomes ``(64, C_in, 7, 7)``: summed over its RGB filters for one input
channel, as the original did, and for ``C_in`` > 1 cycled over the RGB filters and scaled by ``3 / C_in`` (so a
constant image gives the same response as in RGB). The stem stride does not change any shape.
"""

from __future__ import annotations

from pathlib import Path

import torch
from monai.networks.utils import copy_model_state
from torch import nn

from ..errors import TransferError
from .state_dict import TransferReport, listed, read_state_dict, state_mismatches

__all__ = ["IMAGENET_DOWNLOAD_HINT", "adapt_first_conv", "load_imagenet_resnet"]

IMAGENET_DOWNLOAD_HINT = (
    "download torchvision's ImageNet weights on a machine with network access, e.g. "
    "https://download.pytorch.org/models/resnet50-11ad3fa6.pth (resnet18-f37072fd.pth, resnet34-b627a593.pth for "
    "the smaller encoders), and copy the file to that path (or set --imagenet_path)"
)


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB stem filters ``(O, 3, k, k)`` -> ``(O, in_channels, k, k)`` (sum for 1 channel; cycled x 3/C otherwise)."""
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected RGB convolution weights (O, 3, k, k), got {tuple(weight.shape)}")
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // 3)
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (3.0 / in_channels)


def load_imagenet_resnet(network: nn.Module, path: str | Path) -> TransferReport:
    """Copy torchvision ImageNet ResNet weights from the file at ``path`` into ``network.encoder`` (in place).

    Returns a ``TransferReport`` (``load_type`` "imagenet"). Raises ``TransferError`` when the file is missing
    (with where to get it), is not a torchvision ResNet state dict, or does not fit the encoder (keys listed).
    """
    network = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
    path = Path(path).expanduser()
    if not path.is_file():
        raise TransferError(f"ImageNet weights not found at {path}: {IMAGENET_DOWNLOAD_HINT}")
    source = read_state_dict(path)
    if "conv1.weight" not in source or not any(k.startswith("layer1.") for k in source):
        raise TransferError(f"{path} is not a torchvision ResNet state dict (no conv1.weight / layer1.* keys)")
    target = network.state_dict()
    wanted = {k: v for k, v in target.items() if k.startswith("encoder.")}
    offered = {"encoder." + k: v for k, v in source.items() if not k.startswith("fc.")}
    in_channels = wanted["encoder.conv1.weight"].shape[1]
    offered["encoder.conv1.weight"] = adapt_first_conv(offered["encoder.conv1.weight"], in_channels)
    # num_batches_tracked is absent from torchvision's released files: the network's value is kept
    problems = state_mismatches(wanted, offered, "file", "encoder", optional_suffix=".num_batches_tracked",
                                strip="encoder.")
    if problems:
        raise TransferError(f"{path} does not fit the {len(wanted)}-tensor encoder ({len(problems)} problem(s); "
                            f"a torchvision file of the same ResNet depth?):\n  {listed(problems)}")
    _, loaded, _ = copy_model_state(network, offered, inplace=True)
    return TransferReport(str(path), "imagenet", ("encoder.",), loaded=sorted(loaded),
                          ignored=sorted(k for k in source if k.startswith("fc.")))

