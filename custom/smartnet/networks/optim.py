"""Optimizer parameter groups of the bundles' networks."""

from __future__ import annotations

import torch

__all__ = ["parameter_groups"]


def parameter_groups(model: torch.nn.Module, lr: float) -> list[dict]:
    """``model.parameter_groups(lr)`` for a model that trains parts at their own learning rate (the volume
    classifier's subtype head), else one group of all parameters at ``lr``."""
    groups = getattr(model, "parameter_groups", None)
    if callable(groups):
        return groups(lr)
    return [{"params": list(model.parameters()), "lr": lr}]
