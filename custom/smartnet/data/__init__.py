"""Data tools: datalists, dataset validation, synthetic demo volumes and the slice dataset."""

from .datalist import SPLITS, DatalistError, build_datalist, case_id_of, find_images, load_datalist, write_datalist
from .dicom_reader import DicomSeriesError, DicomSeriesReader, is_dicom_dir, read_dicom_series
from .demo import HEMORRHAGE_KINDS, SyntheticHeadCT, make_volume
from .demo_dataset import write_demo_dataset
from .screening import FAILURES_FILE, InferenceInputs
from .slice_dataset import SliceDataset
from .validation import check_image, inspect_file, validate_datalist, validate_entries, validate_splits

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
    "FAILURES_FILE",
    "InferenceInputs",
    "DicomSeriesError",
    "DicomSeriesReader",
    "is_dicom_dir",
    "read_dicom_series",
    "check_image",
    "inspect_file",
    "validate_datalist",
    "validate_entries",
    "validate_splits",
]
