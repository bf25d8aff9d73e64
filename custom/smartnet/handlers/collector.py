"""The skeleton shared by the handlers that collect over an engine run and act at its end."""

from __future__ import annotations

from typing import Any

from monai.utils import min_version, optional_import

from .distributed import gather_to_rank0

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")

__all__ = ["Collector"]


class Collector:
    """Reset at every ``EPOCH_STARTED``, collect at every ``ITERATION_COMPLETED``, finish at ``EPOCH_COMPLETED``.

    Subclasses implement ``_reset``, ``_collect`` (read ``engine.state.batch`` / ``engine.state.output``) and
    ``_finish`` (write files, choose a threshold, publish metrics). A handler whose results must hold every rank's
    items under multi-GPU evaluation gathers them in ``_finish`` with ``_gather`` (a collective: every rank calls it;
    rank 0 gets the list of all ranks' parts, the others ``None`` and write nothing).
    """

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._finish)

    def _reset(self, engine: Engine | None) -> None:
        raise NotImplementedError

    def _collect(self, engine: Engine) -> None:
        raise NotImplementedError

    def _finish(self, engine: Engine) -> None:
        raise NotImplementedError

    @staticmethod
    def _gather(obj: Any) -> list[Any] | None:
        return gather_to_rank0(obj)
