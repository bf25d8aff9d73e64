"""Ignite handler that reports the weighted terms of ``MultiTaskLoss`` (CLS, SEG, REC, consistency) per epoch."""

from __future__ import annotations

from collections import defaultdict

from monai.utils import min_version, optional_import

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")

__all__ = ["LossTermsLogger"]


class LossTermsLogger:
    """Average ``loss.last_terms`` over each epoch into ``engine.state.metrics["train_loss_<term>"]``.

    ``StatsHandler`` and ``TensorBoardStatsHandler`` placed after it then print / plot the terms with the epoch.

    Args:
        loss: a loss with a ``last_terms`` dict of floats, updated at every call (``smartnet.losses.MultiTaskLoss``).
    """

    def __init__(self, loss) -> None:
        self.loss = loss
        self.sums: dict[str, float] = defaultdict(float)
        self.count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._publish)

    def _reset(self, engine: Engine) -> None:
        self.sums, self.count = defaultdict(float), 0

    def _collect(self, engine: Engine) -> None:
        for name, value in getattr(self.loss, "last_terms", {}).items():
            self.sums[name] += value
        self.count += 1

    def _publish(self, engine: Engine) -> None:
        for name, total in self.sums.items():
            engine.state.metrics[f"train_loss_{name}"] = total / max(1, self.count)
