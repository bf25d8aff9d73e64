"""Every axial slice of a set of volumes as a map-style dataset (used to evaluate on all slices, GT-free)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from monai.transforms import apply_transform
from torch.utils.data import Dataset

__all__ = ["SliceDataset"]


class SliceDataset(Dataset):
    """Expose each slice ``z`` of each volume of ``volumes`` as one item.

    Args:
        volumes: a dataset of dicts whose ``keys`` hold ``(C, H, W, D)`` volumes, typically a MONAI ``CacheDataset``
            with the deterministic preprocessing, so volumes are read and windowed once.
        keys: the volume keys to slice (missing keys are skipped, e.g. no ``label`` at inference).
        transform: applied to each slice item (e.g. per-slice min-max scaling).

    Items: ``{key: (C, H, W) tensor, "case_id": str, "slice_index": int, "depth": int}``.
    """

    def __init__(
        self,
        volumes: Dataset,
        keys: Sequence[str] = ("image", "label"),
        transform: Callable | None = None,
    ) -> None:
        self.volumes = volumes
        self.keys = tuple(keys)
        self.transform = transform
        self.index: list[tuple[int, int]] = []
        for v in range(len(volumes)):  # type: ignore[arg-type]
            depth = int(volumes[v][self.keys[0]].shape[-1])
            self.index += [(v, z) for z in range(depth)]
        self._last: tuple[int, dict] | None = None

    def __len__(self) -> int:
        return len(self.index)

    def _volume(self, v: int) -> dict:
        if self._last is None or self._last[0] != v:
            self._last = (v, self.volumes[v])
        return self._last[1]

    def __getitem__(self, i: int) -> dict:
        v, z = self.index[i]
        volume = self._volume(v)
        item = {k: val for k, val in volume.items() if k not in self.keys and not isinstance(val, torch.Tensor)}
        for key in self.keys:
            if key in volume:
                data = volume[key][..., z]
                item[key] = data.as_tensor() if hasattr(data, "as_tensor") else torch.as_tensor(data)
        item["slice_index"] = z
        item["depth"] = int(volume[self.keys[0]].shape[-1])
        item.setdefault("case_id", str(v))
        return apply_transform(self.transform, item) if self.transform is not None else item
