"""Ignite handler for downstream training: the encoder's schedule, frozen (BN in eval mode) and unfrozen stage by
stage as the original's gradual unfreezing."""

from __future__ import annotations

import logging
from typing import Mapping

from monai.utils import min_version, optional_import
from torch import nn

from ..networks.freezing import ENCODER_STAGES

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["GradualUnfreezing", "REFERENCE_UNFREEZE_SCHEDULE", "scale_schedule"]

logger = logging.getLogger("smartnet")

# 0-based epoch from which each stage trains, as in the original (encoder frozen in epochs 0-100 of 500).
REFERENCE_UNFREEZE_SCHEDULE: dict[str, int] = {"layer4": 101, "layer3": 111, "layer2": 121, "layer1": 131, "stem": 141}


def _unwrap(network: nn.Module) -> nn.Module:
    return network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network


def scale_schedule(schedule: Mapping[str, int], epochs: int, reference_epochs: int = 500) -> dict[str, int]:
    """Scale an unfreeze schedule written for ``reference_epochs`` to a run of ``epochs`` (rounded, at least 1)."""
    factor = epochs / reference_epochs
    return {stage: max(1, round(start * factor)) for stage, start in schedule.items()}


class GradualUnfreezing:
    """Keep the encoder frozen (BN in eval mode) and unfreeze its stages on a schedule.

    Args:
        network: a volume model with ``freeze_encoder`` / ``unfreeze_encoder`` (DDP-wrapped is fine).
        schedule: stage -> 0-based epoch from which it trains (``REFERENCE_UNFREEZE_SCHEDULE`` or
            ``scale_schedule(...)`` of it); stages left out stay frozen. ``None`` or ``{}``: the whole encoder stays
            frozen for the run (the original's ``--gradual-unfreeze False``).

    The state is set at the start of every epoch from the epoch number alone, so a resumed run is in the same state.
    Under DDP, build the wrapper before this runs (all parameters trainable) with ``find_unused_parameters=True``.
    """

    def __init__(self, network: nn.Module, schedule: Mapping[str, int] | None = None) -> None:
        self.network = network
        self.schedule = dict(schedule or {})
        unknown = [s for s in self.schedule if s not in ENCODER_STAGES]
        if unknown:
            raise ValueError(f"unknown encoder stage(s) {unknown} in the unfreeze schedule; use {list(ENCODER_STAGES)}")
        self._trainable: set[str] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def trainable_stages(self, epoch_index: int) -> list[str]:
        """Stages that train in the 0-based epoch ``epoch_index``."""
        return [s for s in ENCODER_STAGES if s in self.schedule and self.schedule[s] <= epoch_index]

    def __call__(self, engine: Engine) -> None:
        trainable = set(self.trainable_stages(engine.state.epoch - 1))
        if trainable == self._trainable:
            return
        network = _unwrap(self.network)
        network.freeze_encoder([s for s in ENCODER_STAGES if s not in trainable])
        network.unfreeze_encoder(sorted(trainable))
        self._trainable = trainable
        logger.info("epoch %d: encoder stages training: %s", engine.state.epoch, sorted(trainable) or "none (frozen)")
