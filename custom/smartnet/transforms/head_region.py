"""Keep lesion predictions inside the head: blood cannot lie in the air around it."""

from __future__ import annotations

from typing import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scipy import ndimage

__all__ = ["head_region", "KeepInsideHeadd"]


def head_region(image: np.ndarray, level: float = 0.02, margin: int = 1) -> np.ndarray:
    """Boolean ``(H, W, D)`` mask of the head in a windowed image ``(C, H, W, D)`` (intensities in [0, 1], air 0).

    Per axial slice: pixels whose channel maximum exceeds ``level`` (air, -1000 HU, is 0 in every HU window), holes
    filled, the largest connected component kept, grown by ``margin`` pixels. Slices without tissue are empty.
    """
    tissue = np.asarray(image).max(axis=0) > level
    out = np.zeros(tissue.shape, dtype=bool)
    for z in range(tissue.shape[-1]):
        plane = ndimage.binary_opening(tissue[..., z], iterations=1)  # drops isolated noise pixels in the air
        labels, count = ndimage.label(plane)
        if count == 0:
            continue
        sizes = ndimage.sum_labels(plane, labels, index=np.arange(1, count + 1))
        head = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
        out[..., z] = ndimage.binary_dilation(head, iterations=margin) if margin else head
    return out


class KeepInsideHeadd(MapTransform):
    """Zero the lesion probabilities (or mask) of ``keys`` outside the head found in ``image_key``.

    Lesion maps and the image share the network's grid ``(C, H, W, D)``. A haemorrhage lies inside the skull, so a
    prediction in the air around the head is always false; without this step an under-trained segmentation head
    can answer the zero padding at the image border with a band of "lesion" along an edge of every slice.

    Args:
        keys: lesion probability / mask keys (``(1, H, W, D)``, or ``(1, H, W)`` for a single slice).
        image_key: the windowed, min-max scaled network input.
        level: intensity above which a pixel counts as tissue.
    """

    def __init__(self, keys: KeysCollection, image_key: str = "image", level: float = 0.02,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.level = level

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        image = torch.as_tensor(d[self.image_key]).detach().float().cpu().numpy()
        flat = image.ndim == 3
        region = head_region(image[..., None] if flat else image, self.level)
        for key in self.key_iterator(d):
            pred = d[key]
            keep = torch.as_tensor(region[..., 0] if flat else region, device=pred.device)
            if keep.shape != pred.shape[1:]:
                raise ValueError(f"{key} has shape {tuple(pred.shape)} but the image {self.image_key} {image.shape}")
            d[key] = pred * keep.to(pred.dtype)
        return d
