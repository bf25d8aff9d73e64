"""Slice-level transforms: crop empty end slices, sample training slices, reduce maps to per-slice scores.

Volumes are channel-first with depth last: ``(C, H, W, D)``.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, SpatialCrop

__all__ = ["CropEmptySlicesd", "RandSliceSamplerd", "SliceScored", "SliceMinMaxd"]


class CropEmptySlicesd(MapTransform):
    """Keep the contiguous slice range from the first to the last slice whose ``source_key`` image is not all zero.

    After an HU window, slices of pure air are zero; the reference crops them ("Filter_Zero_Depths"). The crop is
    MONAI's invertible ``SpatialCrop``, applied to every key.
    """

    def __init__(self, keys: KeysCollection, source_key: str = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        src = torch.as_tensor(d[self.source_key])
        nonzero = torch.nonzero(src.abs().flatten(0, -2).sum(dim=0) > 0).flatten()
        if len(nonzero) == 0:
            return d  # nothing to keep apart from everything
        z0, z1 = int(nonzero[0]), int(nonzero[-1]) + 1
        cropper = SpatialCrop(roi_slices=[slice(None)] * (src.ndim - 2) + [slice(z0, z1)])
        for key in self.key_iterator(d):
            d[key] = cropper(d[key])
        return d


class RandSliceSamplerd(Randomizable, MapTransform):
    """Draw ``num_samples`` axial slices from a volume for upstream training; returns a list of 2D samples.

    For a volume with lesion voxels in ``label_key``, each draw is, with probability ``negative_fraction``, a
    lesion-free slice (if the volume has one), and otherwise a lesion slice chosen with probability proportional to
    its lesion voxel count (the reference's sampler). A lesion-free volume gives lesion-free slices.

    Lesion-free slices are drawn ``negative_sampling="uniform"`` (the reference) or ``"tissue"``: with probability
    proportional to the slice's mean intensity in ``image_key``, i.e. to how much head tissue it shows. Lesion slices
    lie mid-head, so uniform negatives (often vertex or skull-base slices) let a network separate the classes by
    "how much brain is in the slice" instead of by blood; tissue-weighted negatives remove that shortcut.
    The reference never shows lesion-free slices of haemorrhage volumes (``negative_fraction=0``).

    Each sample has the keys of the input with ``(C, H, W, D)`` replaced by ``(C, H, W)``, plus ``slice_index``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        num_samples: int = 1,
        negative_fraction: float = 0.25,
        negative_sampling: str = "tissue",
        image_key: str = "image",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if negative_sampling not in ("uniform", "tissue"):
            raise ValueError(f"negative_sampling must be 'uniform' or 'tissue', got {negative_sampling!r}")
        self.negative_sampling = negative_sampling
        self.image_key = image_key
        if not 0.0 <= negative_fraction <= 1.0:
            raise ValueError(f"negative_fraction must be in [0, 1], got {negative_fraction}")
        self.label_key = label_key
        self.num_samples = num_samples
        self.negative_fraction = negative_fraction

    def randomize(self, lesion_voxels: np.ndarray, tissue: np.ndarray | None = None) -> list[int]:
        depth = len(lesion_voxels)
        positive = lesion_voxels > 0
        negatives = np.flatnonzero(~positive)
        weights = None
        if tissue is not None and len(negatives):
            w = np.clip(tissue[negatives], 0, None) + 1e-6
            weights = w / w.sum()
        picks = []
        for _ in range(self.num_samples):
            if len(negatives) and (not positive.any() or self.R.rand() < self.negative_fraction):
                picks.append(int(self.R.choice(negatives, p=weights)))
            else:
                picks.append(int(self.R.choice(depth, p=lesion_voxels / lesion_voxels.sum())))
        return picks

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> list[dict[Hashable, torch.Tensor]]:
        d = dict(data)
        label = torch.as_tensor(d[self.label_key])
        lesion_voxels = (label > 0).flatten(0, -2).sum(dim=0).cpu().numpy().astype(np.float64)
        tissue = None
        if self.negative_sampling == "tissue":
            image = torch.as_tensor(d[self.image_key]).float()
            tissue = image.flatten(0, -2).mean(dim=0).cpu().numpy().astype(np.float64)
        samples = []
        for z in self.randomize(lesion_voxels, tissue):
            sample = dict(d)
            for key in self.key_iterator(d):
                sample[key] = d[key][..., z]
            sample["slice_index"] = z
            samples.append(sample)
        return samples


class SliceScored(MapTransform):
    """Reduce each ``(C, *spatial)`` map over its spatial axes to a ``(C,)`` score, written to ``output_keys``.

    ``reduction="max"`` turns a lesion mask into the slice label (1 if any positive pixel) and the broadcast CLS
    channel of ``pred`` into the slice probability.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_keys: Sequence[str],
        reduction: str = "max",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_keys = dict(zip(self.keys, output_keys))
        if reduction not in ("max", "mean"):
            raise ValueError(f"reduction must be 'max' or 'mean', got {reduction!r}")
        self.reduction = reduction

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            flat = torch.as_tensor(d[key]).flatten(1)
            flat = flat if flat.is_floating_point() else flat.float()  # float64 probabilities stay float64
            score = flat.amax(dim=1) if self.reduction == "max" else flat.mean(dim=1)
            d[self.output_keys[key]] = score.as_tensor() if hasattr(score, "as_tensor") else score
        return d


class SliceMinMaxd(MapTransform):
    """Min-max scale each axial slice to [0, 1] (the reference's per-sample normalisation).

    A 2D sample ``(C, H, W)`` is scaled as a whole; a volume ``(C, H, W, D)`` slice by slice over ``(C, H, W)``, so
    a slice seen at inference is scaled exactly as the same slice seen in training. Constant slices are left
    unchanged (as in the reference).

    Args:
        keys: image keys.
        volume: True when the inputs are volumes ``(C, H, W, D)``, False for 2D samples ``(C, H, W)``.
    """

    def __init__(self, keys: KeysCollection, volume: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.volume = volume

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            dims = tuple(range(img.ndim - 1)) if self.volume else tuple(range(img.ndim))
            lo = torch.amin(torch.as_tensor(img), dim=dims, keepdim=True)
            hi = torch.amax(torch.as_tensor(img), dim=dims, keepdim=True)
            span = hi - lo
            scaled = (img - lo) / torch.where(span > 0, span, torch.ones_like(span))
            d[key] = torch.where(span > 0, scaled, img)
        return d
