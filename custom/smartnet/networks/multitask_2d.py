"""The SMART-Net upstream 2D multi-task network (encoder + CLS / SEG / REC heads) and its seven variants.

``forward(x)`` returns one tensor, ``pred``, so that MONAI engines, inferers (incl. ``SliceInferer``) and exporters
(TorchScript, ONNX) can treat the model like any image-to-image network. Its channels are the heads present, in the
order CLS, SEG, REC (see ``pred_channels``):

    cls  1 channel       the slice's ICH logit, broadcast over the H x W plane (constant per slice)
    seg  1 channel       lesion logits
    rec  C_in channels   the reconstructed input (linear)

``forward_heads(x)`` returns the same outputs as a dict of unbroadcast tensors (``cls`` is ``(B, 1)``);
``split_heads(pred)`` turns ``pred`` back into that dict.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from ..vocabulary import HEADS
from .decoders import ReconstructionDecoder, UNetDecoder
from .encoders import ResNetEncoder
from .heads import ClassificationHead, ConvHead, tissue_peak

__all__ = ["TASKS", "VARIANTS", "SmartNet2D", "split_heads", "pred_channels", "variant_tasks"]

TASKS = HEADS  # the upstream heads (smartnet.vocabulary)

# The original implementation's seven model names -> the heads they train (its loss adds consistency only to the
# triple).
VARIANTS: dict[str, tuple[str, ...]] = {
    "smartnet": ("cls", "seg", "rec"),
    "dual_cls_seg": ("cls", "seg"),
    "dual_cls_rec": ("cls", "rec"),
    "dual_seg_rec": ("seg", "rec"),
    "single_cls": ("cls",),
    "single_seg": ("seg",),
    "single_rec": ("rec",),
}


def variant_tasks(variant: str) -> list[str]:
    """Heads of a named variant (``smartnet``, ``dual_cls_seg``, ...); raises ``ValueError`` listing the names."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown SMART-Net variant {variant!r}; choose one of {list(VARIANTS)}")
    return list(VARIANTS[variant])


def _check_tasks(tasks: Sequence[str]) -> list[str]:
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {list(tasks)}")
    return [t for t in TASKS if t in tasks]  # canonical order


def pred_channels(tasks: Sequence[str], in_channels: int = 1) -> dict[str, tuple[int, int]]:
    """Channel range ``(start, stop)`` of each head inside ``pred``, e.g. ``{"cls": (0, 1), "seg": (1, 2)}``."""
    out: dict[str, tuple[int, int]] = {}
    start = 0
    for task in _check_tasks(tasks):
        width = in_channels if task == "rec" else 1
        out[task] = (start, start + width)
        start += width
    return out


def split_heads(pred: torch.Tensor, tasks: Sequence[str], in_channels: int = 1) -> dict[str, torch.Tensor]:
    """Split a packed ``pred`` of shape ``(B, K, H, W[, D])`` into per-head tensors.

    ``cls`` becomes ``(B, 1)`` for 2D input and ``(B, 1, D)`` for a stack of slices ``(B, K, H, W, D)``;
    ``seg`` ``(B, 1, H, W[, D])``; ``rec`` ``(B, C_in, H, W[, D])``.
    """
    heads = {}
    for task, (a, b) in pred_channels(tasks, in_channels).items():
        part = pred[:, a:b]
        heads[task] = part[:, :, 0, 0] if task == "cls" else part
    return heads


class SmartNet2D(nn.Module):
    """SMART-Net upstream network: one ResNet encoder shared by up to three heads.

    Args:
        tasks: heads to build, a subset of ``("cls", "seg", "rec")``; see ``VARIANTS`` for the original seven.
        encoder: "resnet50" (reference), "resnet34" or "resnet18".
        in_channels: input channels (HU windows); the reconstruction head outputs the same number.
        stem_stride: 1 (reference: total stride 16) or 2 (standard ResNet stem: total stride 32, 4x cheaper).
        dropout: dropout before the classification layer (0.5 in the reference).
        seg_peak: the slice logit also sees the segmentation head: ``cls = head(features) + w * m + b``, where
            ``m`` is the largest lesion logit over the slice's tissue pixels (pixels whose input is above 0 in some
            channel; air and zero padding are left out) and ``w`` (starts at 1), ``b`` (starts at 0) are learned.
            Needs the CLS and SEG heads. ``m`` is read without gradient: the segmentation head learns from its own
            loss (a slice BCE through the single peak pixel drives every lesion logit down before the head has
            learned lesions). Off in the reference.
        seg_prior: start the segmentation head's bias at ``log(p / (1 - p))`` for this lesion probability ``p`` (the
            prior-probability initialisation of focal-loss detectors), so that training does not first have to
            learn "background" from a head that says 0.5 everywhere. ``None`` (the reference): bias 0.

    Input ``(B, C_in, H, W)`` with H and W multiples of the encoder's output stride (16 or 32); windowed, min-max
    scaled intensities in [0, 1]. Output: see the module docstring.

    With the defaults the parameter count is 55,545,773, as in the original ``Up_SMART_Net``.
    """

    def __init__(
        self,
        tasks: Sequence[str] = ("cls", "seg", "rec"),
        encoder: str = "resnet50",
        in_channels: int = 1,
        stem_stride: int = 1,
        dropout: float = 0.5,
        seg_peak: bool = False,
        seg_prior: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.tasks = _check_tasks(tasks)
        if seg_peak and not ("cls" in self.tasks and "seg" in self.tasks):
            raise ValueError(f"seg_peak needs the cls and seg heads, got tasks {self.tasks}")
        self.in_channels = in_channels
        self.encoder = ResNetEncoder(encoder, in_channels=in_channels, stem_stride=stem_stride)
        self.output_stride = self.encoder.output_stride
        channels = self.encoder.out_channels
        self.has_cls: bool = "cls" in self.tasks
        self.has_seg: bool = "seg" in self.tasks
        self.has_rec: bool = "rec" in self.tasks
        self.cls_head = ClassificationHead(channels[-1], dropout) if self.has_cls else None
        self.seg_decoder = UNetDecoder(channels, stem_stride) if self.has_seg else None
        self.seg_head = ConvHead(16, 1) if self.has_seg else None
        self.rec_decoder = ReconstructionDecoder(channels, stem_stride) if self.has_rec else None
        self.rec_head = ConvHead(16, in_channels) if self.has_rec else None
        self.seg_peak = nn.Linear(1, 1) if seg_peak else None
        self._init_weights()
        if seg_prior is not None:
            if not 0.0 < seg_prior < 1.0:
                raise ValueError(f"seg_prior must be a probability in (0, 1), got {seg_prior}")
            if self.seg_head is None:
                raise ValueError(f"seg_prior sets the SEG head's bias, but tasks are {self.tasks}")
            nn.init.constant_(self.seg_head.bias, math.log(seg_prior / (1.0 - seg_prior)))
        if self.seg_peak is not None:
            nn.init.ones_(self.seg_peak.weight)
            nn.init.zeros_(self.seg_peak.bias)

    def _init_weights(self) -> None:
        """Reference initialisation: decoders Kaiming-uniform (fan_in, ReLU), heads Xavier-uniform, zero biases."""
        for decoder in (self.seg_decoder, self.rec_decoder):
            if decoder is None:
                continue
            for m in decoder.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        for head in (self.cls_head, self.seg_head, self.rec_head):
            if head is None:
                continue
            for m in head.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    @torch.jit.export
    def forward_heads(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Per-head outputs for ``x`` of shape ``(B, C_in, H, W)``: ``cls (B, 1)``, ``seg (B, 1, H, W)``,
        ``rec (B, C_in, H, W)`` (only the heads the model has)."""
        features = self.encoder(x)
        out: Dict[str, torch.Tensor] = {}
        if self.cls_head is not None:
            out["cls"] = self.cls_head(features[-1])
        if self.seg_decoder is not None and self.seg_head is not None:
            out["seg"] = self.seg_head(self.seg_decoder(features))
            if self.seg_peak is not None:
                out["cls"] = out["cls"] + self.seg_peak(tissue_peak(out["seg"].detach(), x))
        if self.rec_decoder is not None and self.rec_head is not None:
            out["rec"] = self.rec_head(self.rec_decoder(features))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Packed ``pred`` ``(B, K, H, W)``: the heads' channels in the order cls, seg, rec (module docstring)."""
        heads = self.forward_heads(x)
        parts = []
        for task in self.tasks:
            part = heads[task]
            if task == "cls":
                part = part[:, :, None, None].expand(-1, -1, x.shape[-2], x.shape[-1])
            parts.append(part)
        return torch.cat(parts, dim=1)
