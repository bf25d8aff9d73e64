"""Checks on written lesion masks shared by the bundle tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def assert_nothing_in_the_air_at_the_border(mask: np.ndarray, image_hu: np.ndarray, width: int = 3,
                                            margin: int = 3) -> None:
    """No predicted voxel within ``width`` pixels of the in-plane border where the image is air (< -900 HU) more
    than ``margin`` pixels away from the head.

    Catches a band of false "lesion" along an image edge (an under-trained head answering the border's zero
    padding), which a Dice over haemorrhage cases hides and which adds tens of mL to every normal scan. The margin
    leaves the resampling of a mask back to the input grid its one or two pixels where the head touches the edge.
    """
    image_hu = np.asarray(image_hu)
    band = np.zeros(mask.shape[:2], dtype=bool)
    band[:width], band[-width:], band[:, :width], band[:, -width:] = True, True, True, True
    tissue = image_hu > -500
    near_head = np.stack([ndimage.binary_dilation(tissue[..., z], iterations=margin) if tissue[..., z].any()
                          else tissue[..., z] for z in range(tissue.shape[-1])], axis=-1)
    outside = band[..., None] & (image_hu < -900) & ~near_head
    hits = int((np.asarray(mask) > 0)[outside].sum())
    assert hits == 0, f"{hits} predicted lesion voxel(s) in the air along the image border"
