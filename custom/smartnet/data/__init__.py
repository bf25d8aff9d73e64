"""Data tools: datalists, dataset validation, synthetic demo volumes and the slice dataset."""

from .datalist import SPLITS, DatalistError, build_datalist, case_id_of, find_images, load_datalist, write_datalist
from .dicom import write_dicom_series
from .demo import HEMORRHAGE_KINDS, SyntheticHeadCT, make_volume
from .demo_dataset import write_demo_dataset
from .slice_dataset import SliceDataset
from .validation import (
    check_datalist_or_exit,
    check_entries_or_exit,
    check_image,
    load_datalist_or_exit,
    validate_datalist,
    validate_entries,
)

__all__ = [
    "SPLITS",
    "DatalistError",
    "build_datalist",
    "case_id_of",
    "find_images",
    "load_datalist",
    "write_datalist",
    "HEMORRHAGE_KINDS",
    "SyntheticHeadCT",
    "make_volume",
    "write_demo_dataset",
    "SliceDataset",
    "write_dicom_series",
    "check_datalist_or_exit",
    "check_entries_or_exit",
    "load_datalist_or_exit",
    "check_image",
    "validate_datalist",
    "validate_entries",
]
