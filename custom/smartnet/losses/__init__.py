"""Losses: consistency, Dice+BCE segmentation and the weighted multi-task sum."""

from .consistency import ConsistencyLoss, block_max_mean
from .multitask import DEFAULT_WEIGHTS, MultiTaskLoss
from .segmentation import DiceBCELoss, VolumeDiceBCELoss

__all__ = ["ConsistencyLoss", "block_max_mean", "DEFAULT_WEIGHTS", "MultiTaskLoss", "DiceBCELoss", "VolumeDiceBCELoss"]
