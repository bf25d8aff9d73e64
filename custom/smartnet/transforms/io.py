"""Loading head CT: DICOM series folders with SMART-Net's series reader (gantry tilt, uneven spacing), files with
MONAI's readers (NIfTI via nibabel, others via ITK)."""

from __future__ import annotations

import os

import numpy as np
from monai.config import DtypeLike, KeysCollection
from monai.data import ImageReader
from monai.transforms import LoadImage, LoadImaged

from ..data.dicom_reader import DicomSeriesReader, is_dicom_dir

__all__ = ["CTImageLoader", "LoadCTd"]


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


class LoadCTd(LoadImaged):
    """``monai.transforms.LoadImaged`` whose loader is ``CTImageLoader``: a DICOM folder becomes one HU volume with its
    true geometry, a NIfTI file loads as usual. Output ``(1, X, Y, Z)`` with ``ensure_channel_first``.

    It stays a ``LoadImaged`` (MONAI Label switches ``_loader.image_only`` of such transforms).
    """

    def __init__(
        self,
        keys: KeysCollection,
        uneven_spacing: str = "resample",
        image_only: bool = True,
        ensure_channel_first: bool = True,
        dtype: DtypeLike = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys,
            image_only=image_only,
            ensure_channel_first=ensure_channel_first,
            dtype=dtype,
            allow_missing_keys=allow_missing_keys,
        )
        self._loader = CTImageLoader(
            uneven_spacing, image_only=image_only, ensure_channel_first=ensure_channel_first, dtype=dtype
        )
