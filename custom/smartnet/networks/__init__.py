"""Networks: ResNet slice encoders, decoders, heads, the upstream multi-task model and the downstream volume models."""

from .encoders import ENCODERS, ResNetEncoder
from .imagenet import adapt_first_conv, load_imagenet_resnet
from .memory_format import channels_last
from .freezing import ENCODER_STAGES, EncoderFreezingMixin, encoder_stage_modules
from .optim import parameter_groups
from .multitask_2d import TASKS, VARIANTS, SmartNet2D, pred_channels, split_heads, variant_tasks
from .state_dict import TransferReport, read_state_dict
from .transfer import LOAD_TYPES, TransferError, load_pretrained
from .volume_models import OPERATORS, SmartNetVolumeClassifier, SmartNetVolumeSegmenter

__all__ = [
    "ENCODERS",
    "ResNetEncoder",
    "channels_last",
    "parameter_groups",
    "adapt_first_conv",
    "load_imagenet_resnet",
    "ENCODER_STAGES",
    "EncoderFreezingMixin",
    "encoder_stage_modules",
    "TASKS",
    "VARIANTS",
    "SmartNet2D",
    "pred_channels",
    "split_heads",
    "variant_tasks",
    "LOAD_TYPES",
    "TransferError",
    "TransferReport",
    "load_pretrained",
    "read_state_dict",
    "OPERATORS",
    "SmartNetVolumeClassifier",
    "SmartNetVolumeSegmenter",
]
