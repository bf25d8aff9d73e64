"""Numeric precision names shared by the inference and training configs ("fp32", "bf16", "fp16", "auto")."""

from __future__ import annotations

import warnings
from typing import Optional

import torch

__all__ = ["PRECISIONS", "DTYPES", "bf16_native", "resolve_precision", "autocast_dtype", "training_amp"]

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def bf16_native(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 convolutions in hardware (CPU: AVX512-BF16 or AMX; CUDA: compute >= 8.0)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``precision`` ("fp32", "bf16", "fp16" or "auto") as the concrete one used on ``device``.

    "auto" is bf16 where ``device`` runs it natively, else fp16 on a GPU, else fp32. Raises ``ValueError`` for an
    unknown name and for fp16 on CPU (oneDNN has no fast fp16 convolutions there); warns (``RuntimeWarning``) for an
    explicit bf16 on a CPU that would emulate it.
    """
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if bf16_native(device):
            return "bf16"
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' (or 'auto') on CPU")
    if precision == "bf16" and device.type == "cpu" and not bf16_native(device):
        warnings.warn(
            "precision 'bf16' on a CPU without native bf16 (no AVX512-BF16 or AMX): it is emulated and runs several "
            "times slower than fp32 (8 x measured on an AVX2-only CPU); use 'auto' (fp32 here) or 'fp32'",
            RuntimeWarning, stacklevel=2,
        )
    return precision


def autocast_dtype(precision: str, device: torch.device | str) -> Optional[torch.dtype]:
    """The ``torch.autocast`` dtype of ``precision`` on ``device``; ``None`` for fp32."""
    return DTYPES[resolve_precision(precision, device)]


def training_amp(precision: str, device: torch.device | str) -> bool:
    """MONAI's ``amp`` switch for a trainer / evaluator: True for bf16 or fp16 on a CUDA device.

    MONAI's engines autocast CUDA only (fp16 with a gradient scaler; bf16 runs through the same scaler, harmlessly),
    so mixed-precision training on CPU is refused with a ``ValueError``; "auto" on CPU is fp32.
    """
    resolved = resolve_precision(precision, device)
    if torch.device(device).type != "cuda" and precision == "auto":
        return False
    if resolved != "fp32" and torch.device(device).type != "cuda":
        raise ValueError(
            f"precision {precision!r} for training needs a CUDA device (MONAI's trainers autocast CUDA only); "
            "use 'fp32' or 'auto' on CPU"
        )
    return resolved != "fp32"
