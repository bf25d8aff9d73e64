"""Reading a head CT into a MONAI image: DICOM series folders with SMART-Net's series reader (gantry tilt, uneven
spacing), files with MONAI's readers (NIfTI via nibabel, others via ITK). Used by validation here and by the
``LoadCTd`` transform (``smartnet.transforms.io``)."""

from __future__ import annotations

import os

from monai.data import ImageReader
from monai.transforms import LoadImage

from .dicom_reader import DicomSeriesReader, is_dicom_dir

__all__ = ["CTImageLoader"]


class CTImageLoader(LoadImage):
    """``monai.transforms.LoadImage`` that reads a DICOM series folder with ``DicomSeriesReader``.

    Args:
        uneven_spacing: ``"resample"`` or ``"keep"``, see ``smartnet.data.read_dicom_series``.
        Other arguments as ``LoadImage`` (which chooses the reader of a file by its suffix).
    """

    def __init__(self, uneven_spacing: str = "resample", *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dicom_reader = DicomSeriesReader(uneven_spacing)

    def __call__(self, filename, reader: ImageReader | None = None):
        if reader is None and isinstance(filename, (str, os.PathLike)) and is_dicom_dir(filename):
            reader = self.dicom_reader
        return super().__call__(filename, reader)
