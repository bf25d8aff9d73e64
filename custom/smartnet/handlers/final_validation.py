"""Validate the final weights of every training run, whatever its length relative to the validation interval."""

from __future__ import annotations

import logging

from ignite.engine import Engine, Events

__all__ = ["FinalValidation"]


class FinalValidation:
    """At ``Events.COMPLETED``, run ``validator`` once more if the last epoch was not a validation epoch of
    ``ValidationHandler(interval)``; so the final weights are always validated, and a run shorter than the
    interval (such as a one-epoch MONAI Label training round) still writes its best checkpoint ``model.pt``.

    Args:
        validator: the evaluator (``@validate#evaluator``); its handlers save the best checkpoint.
        interval: the ``ValidationHandler`` interval in epochs (``@val_interval``).
    """

    def __init__(self, validator: Engine, interval: int) -> None:
        if interval < 1:
            raise ValueError(f"interval must be a positive number of epochs, got {interval}")
        self.validator = validator
        self.interval = int(interval)
        self.logger = logging.getLogger("smartnet")

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        if epoch % self.interval != 0:
            self.logger.info(f"validating the final weights of epoch {epoch} (not a multiple of {self.interval})")
            self.validator.run(epoch)
