"""Networks: ResNet slice encoders, U-Net / reconstruction decoders, heads and the upstream multi-task model."""

from .encoders import ENCODERS, ResNetEncoder
from .multitask_2d import TASKS, VARIANTS, SmartNet2D, pred_channels, split_heads, variant_tasks

__all__ = [
    "ENCODERS",
    "ResNetEncoder",
    "TASKS",
    "VARIANTS",
    "SmartNet2D",
    "pred_channels",
    "split_heads",
    "variant_tasks",
]
