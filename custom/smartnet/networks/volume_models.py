"""SMART-Net downstream volume models: the upstream 2D encoder per slice plus a "3D operator".

Both take a volume batch ``(B, C_in, H, W, D)`` (windowed, min-max scaled intensities in [0, 1]; H and W multiples
of the encoder's output stride) and optional true depths ``(B,)`` when the batch is zero-padded along D. Slices are
folded into the 2D batch and encoded ``chunk_size`` at a time (0 = all at once), so memory is bounded; the result
does not depend on the chunk size (with batch norm in eval mode, as it is for frozen encoders and at inference).
"""

from __future__ import annotations

import math
from typing import Any, List, Optional

import torch
from torch import nn

from .decoders import UNetDecoder
from .encoders import ResNetEncoder
from .freezing import EncoderFreezingMixin
from .heads import ClassificationHead, ConvHead, tissue_mask, tissue_peak
from ..vocabulary import SUBTYPES
from .lesion_descriptor import (DESCRIPTOR_FEATURES, RunningStandardizer, slice_lesion_columns,
                                volume_lesion_descriptor)
from .slice_folding import fold_slices, unfold_slices, valid_slice_mask
from .volume_operators import OPERATORS, build_operator

__all__ = ["OPERATORS", "SmartNetVolumeClassifier", "SmartNetVolumeSegmenter"]


@torch.jit.unused
def _plain_tensor(x: torch.Tensor) -> torch.Tensor:
    """Drop MONAI MetaTensor metadata (batched metadata cannot follow the folding of slices into the batch)."""
    return x.as_tensor() if hasattr(x, "as_tensor") else x


def _check_depths(volume: torch.Tensor, depths: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """``depths`` as long tensor on the volume's device; ``None`` (no padding: every slice is real) stays ``None``."""
    if volume.dim() != 5:
        raise ValueError("expected a volume batch (B, C, H, W, D), got " + str(volume.dim()) + " dimensions")
    if depths is None:
        return None
    if depths.numel() != volume.shape[0] or int(depths.min()) < 1 or int(depths.max()) > volume.shape[-1]:
        raise ValueError("depths must hold one value in [1, D] per volume; D = " + str(volume.shape[-1]))
    return depths.to(device=volume.device, dtype=torch.long)


class _SliceEncodingModel(EncoderFreezingMixin, nn.Module):
    """Shared by the volume models: encode the real slices of a padded batch, ``self.chunk_size`` slices per call.

    ``chunk_encoder``, when set (by ``smartnet.inferers.AcceleratedInferer`` for one call), replaces
    ``encode_chunk`` (e.g. a compiled version of it); ``None`` uses ``encode_chunk``.
    """

    chunk_encoder: Any = None
    decoder_frozen = False  # a fixed ``seg_decoder`` (no gradients) that stays in eval mode (set per instance)

    def train(self, mode: bool = True):  # type: ignore[no-untyped-def]
        """``nn.Module.train`` that keeps a fixed segmentation decoder (``decoder_frozen``) in eval mode."""
        super().train(mode)
        if self.decoder_frozen:
            self.seg_decoder.eval()  # type: ignore[attr-defined]
        return self

    def encode_chunk(self, slices: torch.Tensor) -> torch.Tensor:
        """Per-slice output ``(n, ...)`` for ``slices`` ``(n, C_in, H, W)``: the 2D part of the model, applied to one
        chunk of slices. Public because it is the part an inferer may compile (``chunk_encoder``)."""
        raise NotImplementedError

    def _encode_slices(self, volume: torch.Tensor, depths: Optional[torch.Tensor]) -> torch.Tensor:
        """``(B, D, ...)`` per-slice outputs, zeros at padded slices (``depths`` ``None``: no padding, no masking)."""
        b, c, h, w, d = volume.shape
        if depths is None:
            slices = volume.permute(0, 4, 1, 2, 3).reshape(b * d, c, h, w)
            encoded = self._encode_in_chunks(slices)
            return encoded.reshape((b, d) + encoded.shape[1:])
        mask = valid_slice_mask(depths, b, d, volume.device)
        return unfold_slices(self._encode_in_chunks(fold_slices(volume, mask)), mask)

    def _encode_in_chunks(self, slices: torch.Tensor) -> torch.Tensor:
        """``(N, ...)`` outputs for ``slices`` ``(N, C_in, H, W)``, ``self.chunk_size`` slices per encoder call."""
        if self.chunk_size <= 0:  # one call, no loop over a shape (keeps the slice count symbolic for export)
            return self._run_chunk(slices)
        step = self.chunk_size
        parts: List[torch.Tensor] = []
        for start in range(0, slices.shape[0], step):
            parts.append(self._run_chunk(slices[start : start + step]))
        return torch.cat(parts, dim=0)

    def _run_chunk(self, slices: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if self.chunk_encoder is not None:
                return self.chunk_encoder(slices)
        return self.encode_chunk(slices)


class SmartNetVolumeClassifier(_SliceEncodingModel):
    """Volume-level ICH classifier (``Down_SMART_Net_CLS``).

    Per slice: encoder -> global average pool (``F`` = 2048 for ResNet-50) -> 3D operator over the slice sequence
    -> Linear(op, 512) -> ReLU -> Dropout(0.5) -> Linear(512, 1) = the volume's ICH logit ``(B, 1)``.

    Args:
        encoder: "resnet50" (reference), "resnet34" or "resnet18".
        in_channels: input channels (HU windows).
        stem_stride: 1 (reference) or 2 (standard stem).
        operator: "lstm" (reference: bidirectional, packed), "gru", "transformer", "mean" or "max".
        hidden: LSTM/GRU hidden size per direction, or the transformer width (512).
        num_layers: recurrent or transformer layers (2).
        num_heads: transformer attention heads (8).
        fc_features: width of the layer before the logit (512).
        dropout: dropout before the logit (0.5).
        chunk_size: slices encoded per encoder call; 0 = all slices of the batch at once.
        slice_head: keep the upstream's slice classification head (``cls_head``, transferred with load type
            ``encoder+cls_head``): the volume logit is then the maximum slice logit over the real slices plus the 3D
            operator's output, whose last layer starts at zero, so training starts from the upstream's own
            "most suspicious slice" decision and the operator learns a correction. Not in the original (``False``).
        seg_evidence: also keep the upstream's segmentation decoder and head (``seg_decoder.*``, ``seg_head.*``,
            transferred with load type ``encoder+decoder+seg_head`` or ``encoder+cls_head+decoder+seg_head``), fixed
            (no gradients, batch norm in eval mode), and add the volume's segmentation evidence to the logit:
            ``evidence.weight * log(1 + n) + evidence.bias``, ``n`` = pixels over the real slices whose lesion
            probability exceeds 0.5 and whose input is above 0 in some window (air, and the zero padding around
            the image where an under-trained head marks a band, is never counted), at the model's input size.
            Starts at weight 1 and bias ``-log(1 + evidence_pixels)``: ``evidence_pixels`` lesion pixels add 0. At
            small scale the upstream's segmentation head separates volumes better than its slice classification head
            (see docs/training-at-small-scale.md). Not in the original (``False``).
        evidence_pixels: lesion pixels at which the evidence term starts at 0 (with ``seg_evidence``).
        seg_peak: with ``slice_head``, the slice logit is the upstream's ``SmartNet2D(seg_peak=True)`` slice logit:
            the slice head plus ``seg_peak.weight * m + seg_peak.bias``, ``m`` the largest lesion logit over the
            slice's tissue pixels from the upstream's segmentation decoder and head, kept fixed as with
            ``seg_evidence`` (load type ``encoder+cls_head+decoder+seg_head+seg_peak``). Not in the original
            (``False``).
        subtypes: add a subtype head: the output becomes ``(B, 6)`` logits in ``smartnet.vocabulary.SUBTYPES``
            order, "any" (the logit above, unchanged) then epidural, intraparenchymal, intraventricular,
            subarachnoid and subdural (multi-label, one sigmoid each). Their logits are a linear layer on the 3D
            operator's features (``subtype_fc``) plus, when the model keeps the upstream's segmentation head
            (``seg_evidence`` or ``seg_peak``), a small MLP (``lesion_mlp``) on the lesion descriptor of
            ``smartnet.networks.lesion_descriptor`` (where and how thick the segmented blood is, standardised with
            running statistics; ``subtype_fc`` then starts at zero). Not in the original (``False``).
        subtype_lr_factor: the subtype head's learning rate as a multiple of the model's (``parameter_groups``): a
            head trained from scratch beside a transferred model that only needs a correction (30: on the demo's
            lesion descriptors 30 steps at lr 1e-3 x 30 reached a mean test subtype AUROC of 0.95, x 10 0.93).

    With the defaults the parameter count is 40,820,673, as in the original.
    """

    def __init__(
        self,
        encoder: str = "resnet50",
        in_channels: int = 1,
        stem_stride: int = 1,
        operator: str = "lstm",
        hidden: int = 512,
        num_layers: int = 2,
        num_heads: int = 8,
        fc_features: int = 512,
        dropout: float = 0.5,
        chunk_size: int = 0,
        slice_head: bool = False,
        seg_evidence: bool = False,
        evidence_pixels: float = 100.0,
        seg_peak: bool = False,
        subtypes: bool = False,
        subtype_lr_factor: float = 30.0,
    ) -> None:
        super().__init__()
        if seg_peak and not slice_head:
            raise ValueError("seg_peak is part of the upstream's slice logit: it needs slice_head=True")
        self.frozen_stages = []  # encoder stages kept frozen (see EncoderFreezingMixin)
        self.encoder = ResNetEncoder(encoder, in_channels=in_channels, stem_stride=stem_stride)
        self.output_stride = self.encoder.output_stride
        self.chunk_size = int(chunk_size)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.operator = build_operator(operator, self.encoder.out_channels[-1], hidden, num_layers, num_heads)
        self.fc = nn.Linear(self.operator.out_features, fc_features)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(fc_features, 1)
        self.cls_head = ClassificationHead(self.encoder.out_channels[-1], dropout) if slice_head else None
        uses_seg = seg_evidence or seg_peak
        self.seg_decoder = UNetDecoder(self.encoder.out_channels, stem_stride) if uses_seg else None
        self.seg_head = ConvHead(16, 1) if uses_seg else None
        self.evidence = nn.Linear(1, 1) if seg_evidence else None
        self.seg_peak = nn.Linear(1, 1) if seg_peak else None
        self.decoder_frozen = bool(uses_seg)  # the evidence decoder and head stay fixed
        if self.cls_head is not None or self.evidence is not None:  # the operator starts as a zero correction
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        if self.seg_decoder is not None and self.seg_head is not None:
            for p in self.seg_decoder.parameters():
                p.requires_grad_(False)
            for p in self.seg_head.parameters():
                p.requires_grad_(False)
            self.seg_decoder.eval()
        if self.seg_peak is not None:  # as SmartNet2D(seg_peak=True); replaced by the transferred weights
            nn.init.ones_(self.seg_peak.weight)
            nn.init.zeros_(self.seg_peak.bias)
        if self.evidence is not None:
            nn.init.ones_(self.evidence.weight)
            nn.init.constant_(self.evidence.bias, -math.log1p(float(evidence_pixels)))
        self.subtype_lr_factor = float(subtype_lr_factor)
        n_subtypes = len(SUBTYPES) - 1  # "any" is the logit above
        self.subtype_fc = nn.Linear(fc_features, n_subtypes) if subtypes else None
        self.lesion_mlp = None
        if subtypes and uses_seg:
            self.lesion_mlp = nn.Sequential(RunningStandardizer(DESCRIPTOR_FEATURES),
                                            nn.Linear(DESCRIPTOR_FEATURES, 32), nn.ReLU(inplace=True),
                                            nn.Linear(32, n_subtypes))
            nn.init.zeros_(self.subtype_fc.weight)  # type: ignore[union-attr]
            nn.init.zeros_(self.subtype_fc.bias)  # type: ignore[union-attr]
        # columns of encode_chunk after the pooled features: [evidence count][seg peak][lesion columns]
        self._peak_col = self.n_features + (1 if seg_evidence else 0)
        self._lesion_col = self._peak_col + (1 if seg_peak else 0)

    @property
    def n_features(self) -> int:
        """Pooled encoder features per slice (``F``); the columns of ``encode_chunk`` after them are evidence."""
        return self.encoder.out_channels[-1]

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups: the subtype head at ``lr * subtype_lr_factor``, everything else at ``lr``."""
        fast = [p for m in (self.subtype_fc, self.lesion_mlp) if m is not None for p in m.parameters()]
        fast_ids = {id(p) for p in fast}
        rest = [p for p in self.parameters() if id(p) not in fast_ids]
        groups = [{"params": rest, "lr": lr}]
        if fast:
            groups.append({"params": fast, "lr": lr * self.subtype_lr_factor})
        return groups

    @property
    def out_channels(self) -> int:
        """Logits per volume: 1 ("any"), or 6 with the subtype head (``smartnet.vocabulary.SUBTYPES``)."""
        return 1 if self.subtype_fc is None else len(SUBTYPES)

    def encode_chunk(self, slices: torch.Tensor) -> torch.Tensor:
        """``(n, F + E)``: pooled features, then with ``seg_evidence`` the slice's lesion pixel count, then with
        ``seg_peak`` its largest lesion logit over tissue, then with the lesion descriptor its per-slice columns
        (``smartnet.networks.lesion_descriptor.SLICE_COLUMNS``)."""
        features = self.encoder(slices)
        pooled = torch.flatten(self.pool(features[-1]), 1)
        if self.seg_decoder is None or self.seg_head is None:
            return pooled
        fixed = [f.detach() for f in features]  # evidence only: no gradient into the encoder through it
        logits = self.seg_head(self.seg_decoder(fixed))
        columns = [pooled]
        if self.evidence is not None:
            lesion = logits > 0  # probability above 0.5
            lesion = lesion & tissue_mask(slices)  # not in air (0 in every window), e.g. the border
            columns.append(lesion.flatten(1).sum(1, keepdim=True).to(pooled.dtype))
        if self.seg_peak is not None:
            columns.append(tissue_peak(logits, slices).to(pooled.dtype))
        if self.lesion_mlp is not None:
            columns.append(slice_lesion_columns(logits, slices).to(pooled.dtype))
        return torch.cat(columns, dim=1)

    def slice_features(self, volume: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, D, F)`` pooled encoder features of each slice (zeros at padded slices)."""
        return self._encode_slices(volume, _check_depths(volume, depths))[..., : self.n_features]

    def forward(self, volume: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Volume ICH logits ``(B, 1)`` (``(B, 6)`` with ``subtypes``) for ``volume`` ``(B, C_in, H, W, D)`` with true
        ``depths`` ``(B,)``."""
        if not torch.jit.is_scripting():
            volume = _plain_tensor(volume)
        checked = _check_depths(volume, depths)
        encoded = self._encode_slices(volume, checked)
        f = self.n_features
        features = encoded[..., :f]
        hidden = self.dropout(self.act(self.fc(self.operator(features, checked))))
        logit = self.head(hidden)
        if self.cls_head is not None:
            peaks: Optional[torch.Tensor] = encoded[..., self._peak_col] if self.seg_peak is not None else None
            logit = logit + self.max_slice_logit(features, checked, peaks)
        if self.evidence is not None:  # padded slices hold a count of 0
            logit = logit + self.evidence(torch.log1p(encoded[..., f].sum(dim=1, keepdim=True)))
        if self.subtype_fc is None:
            return logit
        subtype_logits = self.subtype_fc(hidden)
        if self.lesion_mlp is not None:  # padded slices hold zeros
            descriptor = volume_lesion_descriptor(encoded[..., self._lesion_col :])
            subtype_logits = subtype_logits + self.lesion_mlp(descriptor)
        return torch.cat([logit, subtype_logits], dim=1)

    def lesion_pixels(self, volume: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, D)`` pixels per slice whose lesion probability exceeds 0.5, air excluded (zeros at padded slices);
        needs ``seg_evidence``."""
        if self.evidence is None:
            raise RuntimeError("the model has no segmentation evidence (seg_evidence=False)")
        return self._encode_slices(volume, _check_depths(volume, depths))[..., self.n_features]

    def max_slice_logit(self, features: torch.Tensor, depths: Optional[torch.Tensor],
                        peaks: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, 1)``: the largest slice logit over the real slices of ``features`` ``(B, D, F)``; with ``seg_peak``
        each slice logit adds the peak term of the slice's ``peaks`` ``(B, D)`` (largest lesion logit over tissue)."""
        if self.cls_head is None:
            raise RuntimeError("the model has no slice head (slice_head=False)")
        logits = self.cls_head.fc(features)[..., 0]  # (B, D); pooled features, no dropout (a fixed decision)
        if self.seg_peak is not None and peaks is not None:
            logits = logits + self.seg_peak(peaks[..., None])[..., 0]
        if depths is not None:
            mask = valid_slice_mask(depths, features.shape[0], features.shape[1], features.device)
            logits = logits.masked_fill(~mask, float("-inf"))
        return logits.amax(dim=1, keepdim=True)


class ConvBNReLU3d(nn.Sequential):
    """Conv3d 3x3x3 (bias, as the reference) -> BatchNorm3d -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=1), nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True)
        )


class SmartNetVolumeSegmenter(_SliceEncodingModel):
    """Volume-level ICH segmenter (``Down_SMART_Net_SEG``).

    Per slice: encoder + U-Net seg decoder up to its 16-channel block -> stack along D -> ``(B, 16, H, W, D)`` ->
    [Conv3d 16->16, BN, ReLU] x 2 -> Conv3d 16->1 = voxel logits ``(B, 1, H, W, D)``. Padded slices are held at
    zero before every 3D convolution, exactly like the convolutions' own zero padding beyond D, so real slices get
    the same logits with or without padding in eval mode (logits at padded slices are meaningless). In training mode
    the BatchNorm3d batch statistics include the padded positions, as in the original.

    Args:
        encoder, in_channels, stem_stride, chunk_size: as ``SmartNetVolumeClassifier``.
        freeze_decoder: keep the (transferred) 2D seg decoder fixed (no gradients, batch norm in eval mode), so that
            only the 3D head (and any unfrozen encoder stage) trains: a step then needs no backward pass through the
            full-resolution decoder, about 3x cheaper on a CPU. The original trains the decoder (``False``).
        slice_head: keep the upstream's 2D segmentation head (``seg_head``, transferred with load type
            ``encoder+decoder+seg_head``): the voxel logits are then the slice head's logits of every slice plus the
            3D head's output, whose last convolution starts at zero, so training starts from the upstream's own
            masks and the 3D convolutions learn a correction across slices. Not in the original (``False``).

    With the defaults the parameter count is 32,529,302, as in the original (3D part: 14,353).
    """

    def __init__(self, encoder: str = "resnet50", in_channels: int = 1, stem_stride: int = 1, chunk_size: int = 0,
                 freeze_decoder: bool = False, slice_head: bool = False) -> None:
        super().__init__()
        self.frozen_stages = []  # encoder stages kept frozen (see EncoderFreezingMixin)
        self.encoder = ResNetEncoder(encoder, in_channels=in_channels, stem_stride=stem_stride)
        self.output_stride = self.encoder.output_stride
        self.chunk_size = int(chunk_size)
        self.seg_decoder = UNetDecoder(self.encoder.out_channels, stem_stride)
        self.volume_head = nn.Sequential(ConvBNReLU3d(16, 16), ConvBNReLU3d(16, 16), nn.Conv3d(16, 1, 3, padding=1))
        self.seg_head = ConvHead(16, 1) if slice_head else None
        if self.seg_head is not None:  # the 3D head starts as a zero correction of the slice head's logits
            nn.init.zeros_(self.volume_head[-1].weight)
            nn.init.zeros_(self.volume_head[-1].bias)
        for m in self.seg_decoder.modules():  # the upstream decoder's initialisation, for training without transfer
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
        self.decoder_frozen: bool = bool(freeze_decoder)
        if self.decoder_frozen:
            for p in self.seg_decoder.parameters():
                p.requires_grad_(False)
            self.seg_decoder.eval()

    def slice_features(self, volume: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, 16, H, W, D)`` decoder features of each slice (zeros at padded slices)."""
        return self._encode_slices(volume, _check_depths(volume, depths)).permute(0, 2, 3, 4, 1)

    def encode_chunk(self, slices: torch.Tensor) -> torch.Tensor:
        return self.seg_decoder(self.encoder(slices))

    def forward(self, volume: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Voxel ICH logits ``(B, 1, H, W, D)`` for ``volume`` ``(B, C_in, H, W, D)`` with true ``depths``."""
        if not torch.jit.is_scripting():
            volume = _plain_tensor(volume)
        checked = _check_depths(volume, depths)
        x = self.slice_features(volume, checked)
        slice_logits = self.slice_head_logits(x)
        if checked is None:  # no padding: nothing to hold at zero
            out = self.volume_head(x)
        else:
            real = valid_slice_mask(checked, volume.shape[0], volume.shape[-1], volume.device)
            real = real[:, None, None, None, :].to(volume.dtype)
            last = len(self.volume_head) - 1
            out = x
            for i, layer in enumerate(self.volume_head):
                out = layer(out)
                if i < last:
                    out = out * real  # padded slices stay zero, as the convolution's own zero padding beyond D
        if slice_logits is None:
            return out
        return out + slice_logits

    def slice_head_logits(self, features: torch.Tensor) -> Optional[torch.Tensor]:
        """``(B, 1, H, W, D)`` logits of the 2D slice head for decoder features ``(B, 16, H, W, D)``; ``None``
        without a slice head."""
        if self.seg_head is None:
            return None
        b, c, h, w, d = features.shape
        slices = features.permute(0, 4, 1, 2, 3).reshape(b * d, c, h, w)
        return self.seg_head(slices).reshape(b, d, 1, h, w).permute(0, 2, 3, 4, 1)
