"""MONAI-style transforms for head CT: loading (DICOM series, NIfTI), HU windows, CLAHE, empty-slice crop, slice
sampling, per-slice scores, volume labels, subtype labels and depths."""

from .intensity import CLAHE, WINDOW_PRESETS, CheckHUd, CLAHEd, HUWindow, HUWindowd
from .head_region import HeadRegiond, KeepInsideHeadd, head_region
from .heads import SplitHeadsd
from .io import CTImageLoader, LoadCTd
from .slices import CropEmptySlicesd, RandSliceSamplerd, SliceMinMaxd, SliceScored
from .subtypes import SplitSubtypesd, SubtypeCodesd, SubtypeLabeld
from .volumes import CropToDepthd, VolumeDepthd, VolumeLabeld

__all__ = [
    "CLAHE",
    "CLAHEd",
    "CheckHUd",
    "HUWindow",
    "HUWindowd",
    "WINDOW_PRESETS",
    "CropEmptySlicesd",
    "RandSliceSamplerd",
    "SliceScored",
    "SliceMinMaxd",
    "SplitHeadsd",
    "HeadRegiond",
    "KeepInsideHeadd",
    "head_region",
    "CTImageLoader",
    "LoadCTd",
    "CropToDepthd",
    "VolumeDepthd",
    "VolumeLabeld",
    "SubtypeCodesd",
    "SubtypeLabeld",
    "SplitSubtypesd",
]
