"""The "3D operators" of the volume classifier: slice features ``(B, D, F)`` + depths -> one vector per volume.

``depths`` ``None`` means no padding (every slice real): the operators then skip packing and masking, which gives
the same result and keeps the graph export-friendly (TorchScript, ONNX).

- ``BiLSTMOperator`` / ``BiGRUOperator``: bidirectional LSTM (reference: 2 layers, hidden 512) or GRU over the slice
  sequence, run on a packed sequence so padded slices take no part; returns ``[backward, forward]`` final hidden
  states of the last layer, concatenated (``2 * hidden``), in the reference's order.
- ``TransformerOperator``: linear projection, sinusoidal slice positions, a learnable summary token and a transformer
  encoder with a key-padding mask; returns the summary token (``hidden``).
- ``PoolingOperator``: mean or max over the real slices (``F``): baselines without learned slice interaction.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .slice_folding import valid_slice_mask

__all__ = ["OPERATORS", "BiLSTMOperator", "BiGRUOperator", "TransformerOperator", "PoolingOperator", "build_operator"]

OPERATORS = ("lstm", "gru", "transformer", "mean", "max")


class BiLSTMOperator(nn.Module):
    """Bidirectional LSTM over packed slice sequences; ``(B, D, F), (B,) -> (B, 2 * hidden)`` (the reference)."""

    def __init__(self, in_features: int, hidden: int = 512, num_layers: int = 2) -> None:
        super().__init__()
        self.rnn = nn.LSTM(in_features, hidden, num_layers=num_layers, batch_first=True, bidirectional=True)
        self.out_features = 2 * hidden

    def forward(self, features: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        if depths is None:
            _, (h_n, _) = self.rnn(features)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(features, depths.cpu(), batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.rnn(packed)
        return torch.cat([h_n[-1], h_n[-2]], dim=1)  # [backward, forward] of the last layer, as the reference


class BiGRUOperator(nn.Module):
    """Bidirectional GRU over packed slice sequences; ``(B, D, F), (B,) -> (B, 2 * hidden)``."""

    def __init__(self, in_features: int, hidden: int = 512, num_layers: int = 2) -> None:
        super().__init__()
        self.rnn = nn.GRU(in_features, hidden, num_layers=num_layers, batch_first=True, bidirectional=True)
        self.out_features = 2 * hidden

    def forward(self, features: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        if depths is None:
            _, h_n = self.rnn(features)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(features, depths.cpu(), batch_first=True, enforce_sorted=False)
            _, h_n = self.rnn(packed)
        return torch.cat([h_n[-1], h_n[-2]], dim=1)


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """``(length, dim)`` sinusoidal position codes (Vaswani et al.), for any number of slices."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return codes


class TransformerOperator(nn.Module):
    """Transformer encoder over slices with a summary token; ``(B, D, F), (B,) -> (B, hidden)``."""

    def __init__(self, in_features: int, hidden: int = 512, num_layers: int = 2, num_heads: int = 8,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.project = nn.Linear(in_features, hidden)
        self.summary = nn.Parameter(torch.zeros(1, 1, hidden))
        layer = nn.TransformerEncoderLayer(hidden, num_heads, 4 * hidden, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.hidden = hidden
        self.out_features = hidden
        nn.init.trunc_normal_(self.summary, std=0.02)

    def forward(self, features: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, d, _ = features.shape
        tokens = self.project(features) + sinusoidal_positions(d, self.hidden, features.device)[None]
        tokens = torch.cat([self.summary.expand(b, -1, -1), tokens], dim=1)
        if depths is None:
            return self.encoder(tokens)[:, 0]
        padding = ~valid_slice_mask(depths, b, d, features.device)
        padding = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=features.device), padding], dim=1)
        return self.encoder(tokens, src_key_padding_mask=padding)[:, 0]


class PoolingOperator(nn.Module):
    """Mean or max over the real slices; ``(B, D, F), (B,) -> (B, F)``."""

    def __init__(self, in_features: int, mode: str = "mean") -> None:
        super().__init__()
        if mode not in ("mean", "max"):
            raise ValueError(f"mode must be 'mean' or 'max', got {mode!r}")
        self.use_max: bool = mode == "max"
        self.out_features = in_features

    def forward(self, features: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        if depths is None:
            return features.amax(dim=1) if self.use_max else features.mean(dim=1)
        mask = valid_slice_mask(depths, features.shape[0], features.shape[1], features.device)[:, :, None]
        if self.use_max:
            return features.masked_fill(~mask, float("-inf")).amax(dim=1)
        return (features * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def build_operator(
    name: str, in_features: int, hidden: int = 512, num_layers: int = 2, num_heads: int = 8
) -> nn.Module:
    """The operator called ``name`` (one of ``OPERATORS``); raises ``ValueError`` listing the choices."""
    if name == "lstm":
        return BiLSTMOperator(in_features, hidden, num_layers)
    if name == "gru":
        return BiGRUOperator(in_features, hidden, num_layers)
    if name == "transformer":
        return TransformerOperator(in_features, hidden, num_layers, num_heads)
    if name in ("mean", "max"):
        return PoolingOperator(in_features, name)
    raise ValueError(f"unknown 3D operator {name!r}; choose one of {list(OPERATORS)}")
