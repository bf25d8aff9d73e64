"""Keep lesion predictions inside the head: blood cannot lie in the air around it.

``HeadRegiond`` finds the head on the HU-windowed image (before CLAHE and min-max scaling, where air is exactly 0 in
every HU window) and stores it under its own key; ``KeepInsideHeadd`` later sets the lesion probabilities outside
it to 0. Both work on the network's grid ``(C, H, W, D)``.
"""

from __future__ import annotations

from typing import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scipy import ndimage

__all__ = ["head_region", "HeadRegiond", "KeepInsideHeadd"]


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


class HeadRegiond(MapTransform):
    """Store the head region of the windowed ``keys`` image as ``output_key`` (``(1, H, W, D)`` float, 1 = head).

    Place it after the HU window and the resize, before CLAHE and min-max scaling.
    """

    def __init__(self, keys: KeysCollection, output_key: str = "head_region", level: float = 0.02,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_key = output_key
        self.level = level

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key]).detach().float().cpu().numpy()
            d[self.output_key] = torch.as_tensor(head_region(image, self.level)[None], dtype=torch.float32)
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
