"""Ignite handler that reports the weighted terms of ``MultiTaskLoss`` (CLS, SEG, REC, consistency) per epoch."""

from __future__ import annotations

from collections import defaultdict

from monai.utils import min_version, optional_import

from .collector import Collector

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["LossTermsLogger"]


class LossTermsLogger(Collector):
    """Average ``loss.last_terms`` over each epoch into ``engine.state.metrics["train_loss_<term>"]``.

    ``StatsHandler`` and ``TensorBoardStatsHandler`` placed after it then print / plot the terms with the epoch.

    Args:
        loss: a loss with a ``last_terms`` dict of floats, updated at every call (``smartnet.losses.MultiTaskLoss``).
    """

    def __init__(self, loss) -> None:
        self.loss = loss
        self.sums: dict[str, float] = defaultdict(float)
        self.count = 0

    def _reset(self, engine: Engine) -> None:
        self.sums, self.count = defaultdict(float), 0

    def _collect(self, engine: Engine) -> None:
        for name, value in getattr(self.loss, "last_terms", {}).items():
            self.sums[name] += value
        self.count += 1

    def _finish(self, engine: Engine) -> None:
        for name, total in self.sums.items():
            engine.state.metrics[f"train_loss_{name}"] = total / max(1, self.count)
