"""Fold the slices of a padded volume batch into the 2D batch dimension, and back.

Volumes are ``(B, C, H, W, D)`` (MONAI's channel-first layout, axial slices along the last axis), zero-padded at
the end of D to the longest volume of the batch, with the true depths in ``depths`` ``(B,)``. Only real slices are
folded, so padding costs no encoder work and never enters batch-norm statistics.
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["valid_slice_mask", "fold_slices", "unfold_slices"]


def valid_slice_mask(depths: Optional[torch.Tensor], batch: int, depth: int, device: torch.device) -> torch.Tensor:
    """``(B, D)`` boolean mask of the real (unpadded) slices; all true when ``depths`` is ``None``."""
    positions = torch.arange(depth, device=device)[None, :].expand(batch, depth)
    if depths is None:
        return torch.ones(batch, depth, dtype=torch.bool, device=device)
    return positions < depths.to(device=device, dtype=torch.long)[:, None]


def fold_slices(volume: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W, D)`` -> ``(N, C, H, W)``: the N real slices (``mask`` ``(B, D)``), batch-major then depth."""
    b, c, h, w, d = volume.shape
    slices = volume.permute(0, 4, 1, 2, 3).reshape(b * d, c, h, w)
    return slices.index_select(0, torch.nonzero(mask.reshape(-1)).squeeze(1))


def unfold_slices(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inverse of ``fold_slices`` for per-slice outputs: ``(N, ...)`` -> ``(B, D, ...)`` with zeros at padding."""
    b, d = mask.shape
    out = features.new_zeros((b * d,) + features.shape[1:])
    out = out.index_copy(0, torch.nonzero(mask.reshape(-1)).squeeze(1), features)
    return out.reshape((b, d) + features.shape[1:])
