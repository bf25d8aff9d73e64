"""Intensity transforms: an HU plausibility check, HU windows (one or several channels) and per-slice CLAHE."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import cv2
import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, ScaleIntensityRange, Transform
from monai.utils import convert_to_dst_type

from ..data.validation import check_image

__all__ = ["HUWindow", "HUWindowd", "CLAHE", "CLAHEd", "CheckHUd", "WINDOW_PRESETS"]

# (min HU, max HU). "reference" is SMART-Net's single window, level 40 / width 80.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "reference": (0.0, 80.0),
    "brain": (0.0, 80.0),
    "subdural": (-20.0, 180.0),
    "bone": (-800.0, 2000.0),
    "stroke": (8.0, 48.0),
}


def _window_bounds(window: str | Sequence[float]) -> tuple[float, float]:
    if isinstance(window, str):
        if window not in WINDOW_PRESETS:
            raise ValueError(f"unknown HU window {window!r}; use [min_hu, max_hu] or one of {list(WINDOW_PRESETS)}")
        return WINDOW_PRESETS[window]
    lo, hi = (float(v) for v in window)
    if not hi > lo:
        raise ValueError(f"an HU window needs min < max, got {window}")
    return lo, hi


class HUWindow(Transform):
    """Clip an HU image to each window and scale it to [0, 1]; one output channel per window.

    Args:
        windows: list of ``[min_hu, max_hu]`` pairs or preset names (``WINDOW_PRESETS``); the reference is
            ``[[0, 80]]`` (one channel).

    Input ``(1, *spatial)`` in HU; output ``(len(windows), *spatial)`` float32 in [0, 1].
    """

    def __init__(self, windows: Sequence[str | Sequence[float]] = ((0.0, 80.0),)) -> None:
        if len(windows) == 0:
            raise ValueError("at least one HU window is needed")
        self.scalers = [
            ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True, dtype=np.float32)
            for lo, hi in (_window_bounds(w) for w in windows)
        ]

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[0] != 1:
            raise ValueError(f"HUWindow expects a one-channel HU image, got {img.shape[0]} channels")
        out = torch.cat([torch.as_tensor(s(img)) for s in self.scalers], dim=0)
        return convert_to_dst_type(out, img, dtype=torch.float32)[0]


class HUWindowd(MapTransform):
    """Dictionary wrapper of ``HUWindow``."""

    def __init__(
        self,
        keys: KeysCollection,
        windows: Sequence[str | Sequence[float]] = ((0.0, 80.0),),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.window = HUWindow(windows)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.window(d[key])
        return d


class CLAHE(Transform):
    """Contrast-limited adaptive histogram equalisation of every 2D slice, with OpenCV (as the reference).

    Each ``(H, W)`` plane of a ``(C, H, W[, D])`` image in [0, 1] is rounded to uint8, equalised by
    ``cv2.createCLAHE(clip_limit, tile_grid)`` and scaled back to [0, 1] float32.

    Args:
        clip_limit: OpenCV clip limit (reference 2.0).
        tile_grid: tiles per axis (reference 8 x 8).
    """

    def __init__(self, clip_limit: float = 2.0, tile_grid: Sequence[int] = (8, 8)) -> None:
        self.clip_limit = float(clip_limit)
        self.tile_grid = (int(tile_grid[0]), int(tile_grid[1]))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        arr = np.asarray(img.detach().cpu() if isinstance(img, torch.Tensor) else img, dtype=np.float32)
        planes = arr.reshape(arr.shape[0], arr.shape[1], arr.shape[2], -1)
        u8 = np.clip(np.rint(planes * 255.0), 0, 255).astype(np.uint8)
        clahe = cv2.createCLAHE(clipLimit=self.clip_limit, tileGridSize=self.tile_grid)
        out = np.empty(planes.shape, dtype=np.float32)
        for c in range(planes.shape[0]):
            for z in range(planes.shape[3]):
                out[c, :, :, z] = clahe.apply(np.ascontiguousarray(u8[c, :, :, z])) / 255.0
        return convert_to_dst_type(out.reshape(arr.shape), img, dtype=torch.float32)[0]


class CLAHEd(MapTransform):
    """Dictionary wrapper of ``CLAHE``; ``enabled=False`` makes it a no-op (a config switch)."""

    def __init__(
        self,
        keys: KeysCollection,
        clip_limit: float = 2.0,
        tile_grid: Sequence[int] = (8, 8),
        enabled: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.clahe = CLAHE(clip_limit, tile_grid)
        self.enabled = enabled

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.enabled:
            for key in self.key_iterator(d):
                d[key] = self.clahe(d[key])
        return d


class CheckHUd(MapTransform):
    """Refuse an image that does not look like a head CT in HU before it is windowed into garbage.

    Raises ``ValueError`` naming the file (``filename_or_obj``) and the problem (see ``smartnet.data.check_image``:
    not 3D, NaN/Inf, unsigned raw values without rescale, already windowed 0..1, no air near -1000 HU). Input
    ``(1, X, Y, Z)`` in HU, returned unchanged.
    """

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            name = str(getattr(image, "meta", {}).get("filename_or_obj", key))
            array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
            problems = check_image(array[0] if array.ndim == 4 and array.shape[0] == 1 else array, name)
            if problems:
                raise ValueError("; ".join(problems))
        return d
