"""Per-epoch seeding, so that a resumed run repeats exactly what the uninterrupted run would have done.

With one seed set at the start, the random state at epoch ``k`` depends on everything drawn before it, which a run
resumed from a checkpoint cannot replay. Here every epoch starts from ``seed + epoch``: Python, NumPy and torch
generators (``monai.utils.set_determinism``: shuffling, DataLoader worker seeds, dropout) and the random
transforms of the training dataset (``monai.data.utils.set_rnd``, needed when they run in the main process).
"""

from __future__ import annotations

from monai.data.utils import set_rnd
from monai.utils import min_version, optional_import, set_determinism

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")

__all__ = ["EpochSeeder"]


class EpochSeeder:
    """Seed every generator with ``seed + epoch`` when an epoch starts (before its data iterator is created).

    Args:
        seed: the run's base seed (``None`` disables the handler, leaving runs non-deterministic).
        dataset: the training dataset whose random transforms are reseeded (may be ``None``).
    """

    def __init__(self, seed: int | None, dataset: object = None) -> None:
        self.seed = seed
        self.dataset = dataset

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        if self.seed is None:
            return
        epoch_seed = int(self.seed) + int(engine.state.epoch)
        set_determinism(seed=epoch_seed)
        if self.dataset is not None:
            set_rnd(self.dataset, epoch_seed)
