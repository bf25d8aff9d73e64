"""MONAI-style transforms for head CT: HU windows, CLAHE, empty-slice crop, slice sampling, per-slice scores, volume labels and depths."""

from .intensity import CLAHE, WINDOW_PRESETS, CLAHEd, HUWindow, HUWindowd
from .heads import SplitHeadsd
from .slices import CropEmptySlicesd, RandSliceSamplerd, SliceMinMaxd, SliceScored
from .volumes import CropToDepthd, VolumeDepthd, VolumeLabeld

__all__ = [
    "CLAHE",
    "CLAHEd",
    "HUWindow",
    "HUWindowd",
    "WINDOW_PRESETS",
    "CropEmptySlicesd",
    "RandSliceSamplerd",
    "SliceScored",
    "SliceMinMaxd",
    "SplitHeadsd",
    "CropToDepthd",
    "VolumeDepthd",
    "VolumeLabeld",
]
