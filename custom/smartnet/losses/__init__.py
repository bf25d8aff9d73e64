"""Losses: consistency, Dice+BCE segmentation, the weighted multi-task sum and the subtype BCE."""

from .consistency import ConsistencyLoss, block_max_mean
from .multitask import DEFAULT_WEIGHTS, MultiTaskLoss
from .segmentation import DiceBCELoss, VolumeDiceBCELoss
from .subtypes import SubtypeBCELoss

__all__ = ["ConsistencyLoss", "block_max_mean", "DEFAULT_WEIGHTS", "MultiTaskLoss", "DiceBCELoss", "VolumeDiceBCELoss",
           "SubtypeBCELoss"]
