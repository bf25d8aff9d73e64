"""BN-safe freezing of ResNet encoder stages, for transfer learning and gradual unfreezing.

A frozen stage has ``requires_grad=False`` **and** stays in eval mode, so its batch-norm running statistics do not
drift while the rest of the network trains (the original kept frozen BN layers in train mode). ``train()`` is
overridden so that engines calling ``network.train()`` every iteration cannot undo this (as segmentation_models.pytorch
does for its frozen encoders).
"""

from __future__ import annotations

from typing import Iterable

from torch import nn

__all__ = ["ENCODER_STAGES", "EncoderFreezingMixin", "encoder_stage_modules"]

# In unfreezing order of the reference schedule: the deepest stage first, the stem last.
ENCODER_STAGES = ("layer4", "layer3", "layer2", "layer1", "stem")


def encoder_stage_modules(encoder: nn.Module, stage: str) -> list[nn.Module]:
    """Modules of one named stage of a ResNet encoder: ``stem`` (conv1 + bn1) or ``layer1`` ... ``layer4``."""
    if stage == "stem":
        return [encoder.conv1, encoder.bn1]
    if stage in ENCODER_STAGES:
        return [getattr(encoder, stage)]
    raise ValueError(f"unknown encoder stage {stage!r}; choose from {list(ENCODER_STAGES)}")


def _check_stages(stages: Iterable[str] | None) -> list[str]:
    names = list(ENCODER_STAGES) if stages is None else list(stages)
    bad = [s for s in names if s not in ENCODER_STAGES]
    if bad:
        raise ValueError(f"unknown encoder stage(s) {bad}; choose from {list(ENCODER_STAGES)}")
    return names


class EncoderFreezingMixin:
    """Adds ``freeze_encoder`` / ``unfreeze_encoder`` to an ``nn.Module`` that has an ``encoder`` attribute and a
    ``frozen_stages`` list (empty at construction)."""

    def freeze_encoder(self, stages: Iterable[str] | None = None) -> None:
        """Freeze the named stages (all when ``None``): no gradients, batch norm in eval mode."""
        for stage in _check_stages(stages):
            for module in encoder_stage_modules(self.encoder, stage):  # type: ignore[attr-defined]
                for p in module.parameters():
                    p.requires_grad_(False)
                module.eval()
            if stage not in self.frozen_stages:
                self.frozen_stages.append(stage)

    def unfreeze_encoder(self, stages: Iterable[str] | None = None) -> None:
        """Make the named stages (all when ``None``) trainable again; they follow the module's train/eval mode."""
        for stage in _check_stages(stages):
            for module in encoder_stage_modules(self.encoder, stage):  # type: ignore[attr-defined]
                for p in module.parameters():
                    p.requires_grad_(True)
                module.train(self.training)  # type: ignore[attr-defined]
            if stage in self.frozen_stages:
                self.frozen_stages.remove(stage)

    def train(self, mode: bool = True):  # type: ignore[no-untyped-def]
        """``nn.Module.train`` that keeps frozen encoder stages in eval mode."""
        super().train(mode)  # type: ignore[misc]
        for stage in self.frozen_stages:
            for module in encoder_stage_modules(self.encoder, stage):  # type: ignore[attr-defined]
                module.eval()
        return self
