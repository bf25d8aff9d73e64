"""Post-processing transforms on the packed upstream output ``pred`` (see ``smartnet.networks.multitask_2d``)."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..networks.multitask_2d import pred_channels

__all__ = ["SplitHeadsd"]


class SplitHeadsd(MapTransform):
    """Split a packed ``pred`` of shape ``(K, *spatial)`` into ``<key>_cls``, ``<key>_seg`` and ``<key>_rec``.

    Args:
        keys: packed prediction keys (usually "pred").
        tasks: the network's heads.
        in_channels: the network's input channels (width of the reconstruction output).
        heads: which heads to keep (default all the network has); e.g. ``["cls", "seg"]`` at inference.

    Each output keeps the spatial shape (and the MetaTensor metadata, so ``Invertd`` can map it back):
    ``_cls (1, *spatial)`` (the slice logit, constant over each plane), ``_seg (1, *spatial)``,
    ``_rec (C_in, *spatial)``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        tasks: Sequence[str],
        in_channels: int = 1,
        heads: Sequence[str] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.channels = pred_channels(tasks, in_channels)
        self.heads = [h for h in (heads or self.channels) if h in self.channels]

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            for head in self.heads:
                start, stop = self.channels[head]
                d[f"{key}_{head}"] = d[key][start:stop]
        return d
