"""Learning-rate schedule of the reference, without its off-by-one (two epochs at lr 0)."""

from __future__ import annotations

__all__ = ["WarmupLinearDecay"]


class WarmupLinearDecay:
    """Multiplier for ``torch.optim.lr_scheduler.LambdaLR``, stepped once per epoch.

    ``(e + 1) / warmup`` for the first ``warmup`` epochs (the first epoch already trains), then 1 until
    ``hold_fraction * total``, then a linear decay to ``min_factor`` at the last epoch. The reference uses
    ``warmup=10``, ``hold_fraction=0.1`` and a floor of ``min_lr / lr``.

    Args:
        total: number of epochs.
        warmup: warm-up epochs (0 = none).
        hold_fraction: fraction of ``total`` after which the decay starts (at least the warm-up).
        min_factor: floor of the multiplier.
    """

    def __init__(self, total: int, warmup: int = 10, hold_fraction: float = 0.1, min_factor: float = 0.02) -> None:
        if total < 1:
            raise ValueError(f"total epochs must be positive, got {total}")
        self.total = total
        self.warmup = max(0, min(warmup, total))
        self.decay_start = max(self.warmup, int(hold_fraction * total))
        self.min_factor = min_factor

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup:
            return (epoch + 1) / self.warmup
        if epoch < self.decay_start or self.total <= self.decay_start:
            return 1.0
        progress = (epoch - self.decay_start) / max(1, self.total - 1 - self.decay_start)
        return max(self.min_factor, 1.0 - progress * (1.0 - self.min_factor))
