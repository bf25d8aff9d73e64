"""Volume-level transforms for the downstream bundles: the volume's ICH label and its true depth.

Volumes are channel-first with depth last: ``(C, H, W, D)``.
"""

from __future__ import annotations

from typing import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["VolumeLabeld", "VolumeDepthd", "CropToDepthd"]


class VolumeLabeld(MapTransform):
    """Write ``output_key`` = 1.0 if the mask in ``label_key`` has any positive voxel, else 0.0 (a ``(1,)`` tensor).

    An entry that already carries ``output_key`` (a datalist with volume labels and no masks) keeps its value.
    """

    def __init__(self, label_key: str = "label", output_key: str = "volume_label", allow_missing_keys: bool = False):
        super().__init__([label_key], allow_missing_keys)
        self.label_key = label_key
        self.output_key = output_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.output_key in d:
            d[self.output_key] = torch.as_tensor(float(d[self.output_key])).reshape(1)
        elif self.label_key in d:
            d[self.output_key] = torch.as_tensor(float(torch.as_tensor(d[self.label_key]).any())).reshape(1)
        elif not self.allow_missing_keys:
            raise KeyError(f"VolumeLabeld: neither {self.label_key!r} nor {self.output_key!r} in the data")
        return d


class VolumeDepthd(MapTransform):
    """Write the number of slices (last axis) of ``keys`` into ``depth_key`` as an ``int``.

    Collated batches padded along D by ``PadListDataCollate(method="end")`` then carry each volume's true depth,
    which the volume models, losses and metrics use to ignore the padding.
    """

    def __init__(self, keys: str = "image", depth_key: str = "depth", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.depth_key = depth_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.depth_key] = int(d[key].shape[-1])
        return d


class CropToDepthd(MapTransform):
    """Crop ``keys`` ``(C, H, W, D_padded)`` to the item's true depth in ``depth_key`` (last axis).

    Used in post-processing of padded volume batches, so metrics never score the padding.
    """

    def __init__(self, keys: KeysCollection, depth_key: str = "depth", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.depth_key = depth_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if d.get(self.depth_key) is None:
            return d
        depth = int(torch.as_tensor(d[self.depth_key]))
        for key in self.key_iterator(d):
            d[key] = d[key][..., :depth]
        return d
