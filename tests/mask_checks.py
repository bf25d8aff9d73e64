"""Checks on written lesion masks shared by the bundle tests."""

from __future__ import annotations

import numpy as np


def assert_nothing_in_the_air_at_the_border(mask: np.ndarray, image_hu: np.ndarray, width: int = 3) -> None:
    """No predicted voxel within ``width`` pixels of the in-plane border where the image is air (< -900 HU).

    Catches a band of false "lesion" along an image edge (an under-trained head answering the border's zero
    padding), which a Dice over haemorrhage cases hides and which adds tens of mL to every normal scan.
    """
    band = np.zeros(mask.shape[:2], dtype=bool)
    band[:width], band[-width:], band[:, :width], band[:, -width:] = True, True, True, True
    outside = band[..., None] & (np.asarray(image_hu) < -900)
    hits = int((np.asarray(mask) > 0)[outside].sum())
    assert hits == 0, f"{hits} predicted lesion voxel(s) in the air along the image border"
