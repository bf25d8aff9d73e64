"""Memory layout of network weights."""

from __future__ import annotations

import torch

__all__ = ["channels_last_2d"]


def channels_last_2d(model: torch.nn.Module, enabled: bool = True) -> torch.nn.Module:
    """``model`` with every 2D convolution's weight stored channels_last (NHWC), in place, when ``enabled``.

    3D layers keep their layout. Values, state-dict keys and checkpoints are unchanged; oneDNN (CPU) and cuDNN
    tensor cores (GPU) run NHWC convolutions faster.
    """
    if enabled:
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.to(memory_format=torch.channels_last)
    return model
