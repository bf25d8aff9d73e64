"""The record of the settings that define what a network's weights mean, kept in every checkpoint beside them.

A stride-2 stem's weights load into a stride-1 network and a model trained at 96 px runs at 256 px: the tensors fit
and the outputs are wrong. So every checkpoint carries ``SettingsRecord.state_dict()`` (plain data) and evaluation,
inference, fine-tuning and transfer compare it with the running configuration (``settings_mismatches``). This module
imports nothing from the package but ``errors``, so checkpoints, settings and release all use it without a loop.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from .errors import SettingsError

__all__ = ["WEIGHT_SETTINGS", "SettingsRecord", "settings_mismatches"]

# the settings that decide what trained weights mean without changing a tensor's shape (a stride-2 stem's weights load
# into a stride-1 network; a model trained at 96 px runs at 256 px), and the upstream's seg_peak (named here rather than
# as a missing state-dict key), and the volume classifier's subtype head (likewise): recorded in every checkpoint,
# checked at load
WEIGHT_SETTINGS = (
    "encoder", "stem_stride", "image_size", "hu_windows", "clahe", "orientation", "variant", "operator", "seg_peak",
    "subtypes",
)


def _plain(value: Any) -> Any:
    """JSON-normal form (tuples -> lists, numpy / torch scalars -> numbers): saved and running values compare."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


class SettingsRecord:
    """The settings that define what a network's weights mean, saved in its checkpoints beside the weights.

    ``state_dict()`` is plain data (numbers, strings, lists), loadable with ``torch.load(weights_only=True)``; the
    bundles put it in every checkpoint under ``settings``. Only names of ``WEIGHT_SETTINGS`` are kept.
    """

    def __init__(self, **settings: Any) -> None:
        unknown = sorted(set(settings) - set(WEIGHT_SETTINGS))
        if unknown:
            raise SettingsError(f"not settings that define weights: {unknown}; choose from {list(WEIGHT_SETTINGS)}")
        self.settings = {k: _plain(v) for k, v in settings.items()}

    def state_dict(self) -> dict:
        return dict(self.settings)

    def load_state_dict(self, state: Mapping) -> None:
        self.settings = {k: _plain(v) for k, v in state.items()}


def settings_mismatches(saved: Mapping, running: Mapping) -> list[str]:
    """``"<name>: <saved> in the checkpoint, <running> in this run"`` for every setting both name and differ."""
    return [f"{name}: {_plain(saved[name])!r} in the checkpoint, {_plain(running[name])!r} in this run"
            for name in WEIGHT_SETTINGS
            if name in saved and name in running and _plain(saved[name]) != _plain(running[name])]
