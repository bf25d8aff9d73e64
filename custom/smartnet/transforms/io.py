"""The head-CT load transform: ``LoadImaged`` with ``smartnet.data.loader.CTImageLoader`` (DICOM series folders with
SMART-Net's series reader, files with MONAI's readers)."""

from __future__ import annotations

import numpy as np
from monai.config import DtypeLike, KeysCollection
from monai.transforms import LoadImaged

from ..data.loader import CTImageLoader

__all__ = ["CTImageLoader", "LoadCTd"]


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
