"""Keep lesion predictions where blood can be: inside the head, and no denser than blood.

``HeadRegiond`` finds the head on the HU-windowed image (before CLAHE and min-max scaling, where air is exactly 0 in
every HU window) and stores it under its own key; ``KeepInsideHeadd`` later sets the lesion probabilities outside
it to 0. Both work on the network's grid ``(C, H, W, D)``.

Given the HU windows and a density ceiling (``max_hu``, 150 HU in the bundles), the region also leaves out the pixels
denser than any blood: acute haemorrhage reads 50-100 HU, so a pixel above 150 HU is bone, its partial-volume edge
or a calcification, the mimics a model trained on synthetic heads marks most on a real skull base. The HU are read
back from the widest window that reaches above the ceiling (the bone window of the demo profile); with no such window
(the reference profile's single brain window saturates at 80 HU) the ceiling cannot be read and is not applied.
"""

from __future__ import annotations

import logging
from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scipy import ndimage

__all__ = ["denser_than", "head_region", "HeadRegiond", "KeepInsideHeadd"]

logger = logging.getLogger(__name__)


def head_region(image: np.ndarray, level: float = 0.02, margin: int = 1) -> np.ndarray:
    """Boolean ``(H, W, D)`` mask of the head in a windowed image ``(C, H, W, D)`` (intensities in [0, 1], air 0).

    Per axial slice: pixels whose channel maximum exceeds ``level``, holes filled, the largest connected component
    kept, grown by ``margin`` pixels. Slices without tissue are empty. Use it before CLAHE and min-max scaling,
    which lift the air above 0.
    """
    tissue = np.asarray(image).max(axis=0) > level
    out = np.zeros(tissue.shape, dtype=bool)
    for z in range(tissue.shape[-1]):
        labels, count = ndimage.label(tissue[..., z])
        if count == 0:
            continue
        sizes = ndimage.sum_labels(tissue[..., z], labels, index=np.arange(1, count + 1))
        head = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
        out[..., z] = ndimage.binary_dilation(head, iterations=margin) if margin else head
    return out


def denser_than(image: np.ndarray, windows: Sequence[Sequence[float]], max_hu: float) -> np.ndarray | None:
    """Boolean ``(H, W, D)``: pixels of a windowed image ``(C, H, W, D)`` (channel ``c`` maps HU ``windows[c]`` =
    ``[low, high]`` to [0, 1]) denser than ``max_hu`` HU, read from the widest window whose ``high`` exceeds
    ``max_hu``; None when no window reaches above it."""
    if len(windows) != np.asarray(image).shape[0]:
        raise ValueError(f"{len(windows)} HU windows for an image of {np.asarray(image).shape[0]} channels")
    reaching = [c for c, (low, high) in enumerate(windows) if high > max_hu]
    if not reaching:
        return None
    c = max(reaching, key=lambda i: windows[i][1] - windows[i][0])
    low, high = windows[c]
    return np.asarray(image)[c] * (high - low) + low > max_hu


class HeadRegiond(MapTransform):
    """Store the region of the windowed ``keys`` image where blood can be as ``output_key`` (``(1, H, W, D)`` float,
    1 = head, and no denser than ``max_hu`` where a window shows it).

    Place it after the HU window and the resize, before CLAHE and min-max scaling.

    Args:
        keys: the windowed image ``(C, H, W, D)``, intensities in [0, 1].
        output_key: where the region is stored.
        level: windowed intensity above which a pixel is tissue.
        windows: the image's HU windows (``hu_windows``), one ``[low, high]`` per channel; with ``max_hu``, pixels
            denser than ``max_hu`` HU are left out of the region (see the module docstring).
        max_hu: the density ceiling in HU (None: none).
    """

    def __init__(self, keys: KeysCollection, output_key: str = "head_region", level: float = 0.02,
                 windows: Sequence[Sequence[float]] | None = None, max_hu: float | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if max_hu is not None and windows is None:
            raise ValueError("max_hu needs the image's HU windows (windows=@hu_windows)")
        self.output_key = output_key
        self.level = level
        self.windows = None if windows is None else [[float(v) for v in w] for w in windows]
        self.max_hu = None if max_hu is None else float(max_hu)
        if self.max_hu is not None and not any(high > self.max_hu for _, high in self.windows):
            logger.info("no HU window reaches above %.0f HU: the density ceiling of the lesion region is not applied",
                        self.max_hu)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key]).detach().float().cpu().numpy()
            region = head_region(image, self.level)
            if self.max_hu is not None:
                dense = denser_than(image, self.windows, self.max_hu)
                if dense is not None:
                    region &= ~dense
            d[self.output_key] = torch.as_tensor(region[None], dtype=torch.float32)
        return d


class KeepInsideHeadd(MapTransform):
    """Zero the lesion probabilities (or mask) of ``keys`` outside the head stored in ``region_key``.

    A haemorrhage lies inside the skull, so a prediction in the air around the head is always false; without this
    step an under-trained segmentation head can answer the zero padding at the image border with a band of "lesion"
    along an edge of every slice.

    Args:
        keys: lesion probability / mask keys ``(1, H, W, D)`` on the network's grid.
        region_key: the head region written by ``HeadRegiond`` (same grid; padded slices of a batch are 0).
    """

    def __init__(self, keys: KeysCollection, region_key: str = "head_region", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.region_key = region_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        region = torch.as_tensor(d[self.region_key]).detach()
        for key in self.key_iterator(d):
            pred = d[key]
            keep = region[..., : pred.shape[-1]].to(device=pred.device, dtype=pred.dtype)
            if keep.shape[1:] != pred.shape[1:]:
                raise ValueError(f"{key} has shape {tuple(pred.shape)} but {self.region_key} {tuple(region.shape)}")
            d[key] = pred * keep
        return d
