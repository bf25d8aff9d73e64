"""Point estimates and 95 % bootstrap confidence intervals of the reported metrics.

Volumes are resampled with replacement ``n_boot`` times, for slice-level metrics too (a cluster bootstrap: all
slices of a drawn volume come along, since slices of one volume are correlated and resampling them one by one gives
intervals that are too narrow); the interval is the 2.5th..97.5th percentile of the metric over the resamples in
which it is defined (AUROC needs both classes, sensitivity a positive, specificity a negative). The seed is fixed, so
reports are reproducible.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from monai.metrics import compute_roc_auc

__all__ = [
    "auroc",
    "binary_scores",
    "sensitivity",
    "specificity",
    "average_precision",
    "bootstrap_ci",
    "binary_metrics_with_ci",
    "mean_with_ci",
    "weighted_log_loss",
]


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn, float64; MONAI's ``compute_roc_auc`` used by the evaluation handlers
    works in float32 and agrees to about 1e-7); NaN without both classes."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(int)
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else float("nan")


def sensitivity(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """True-positive rate at ``scores >= threshold``; NaN without positives."""
    labels = np.asarray(labels).astype(bool)
    return float(np.mean(np.asarray(scores)[labels] >= threshold)) if labels.any() else float("nan")


def specificity(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """True-negative rate at ``scores < threshold``; NaN without negatives."""
    labels = np.asarray(labels).astype(bool)
    return float(np.mean(np.asarray(scores)[~labels] < threshold)) if (~labels).any() else float("nan")


def binary_scores(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """AUROC, sensitivity, specificity, accuracy and F1 of binary ``labels`` given ``scores`` in [0, 1], deciding
    ``scores >= threshold``: the point estimates of the evaluation handlers' ``metrics.json``.

    The AUROC is MONAI's ``compute_roc_auc`` (float32; agrees with ``auroc`` to about 1e-7), so that evaluation
    needs no scikit-learn; NaN without both classes.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    decided = scores >= threshold
    tp, fp, fn = int((decided & labels).sum()), int((decided & ~labels).sum()), int((~decided & labels).sum())
    area = float("nan")
    if labels.any() and (~labels).any():
        area = float(compute_roc_auc(torch.as_tensor(scores), torch.as_tensor(labels.astype(np.float32))))
    return {
        "auroc": area,
        "sensitivity": sensitivity(labels, scores, threshold),
        "specificity": specificity(labels, scores, threshold),
        "accuracy": float(np.mean(decided == labels)) if len(labels) else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
    }


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (scikit-learn, area under the step precision-recall curve); NaN without positives."""
    from sklearn.metrics import average_precision_score

    labels = np.asarray(labels).astype(int)
    return float(average_precision_score(labels, scores)) if labels.any() else float("nan")


def bootstrap_ci(
    statistic: Callable[..., float],
    *arrays: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: Optional[Sequence] = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*arrays)`` resampling the rows of all arrays together, or, with
    ``groups`` (one label per row, e.g. the case id of each slice), resampling whole groups (cluster bootstrap)."""
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    members = None
    if groups is not None:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(inverse))[:-1])  # row indices of each group
    values = []
    for _ in range(n_boot):
        if members is None:
            index = rng.integers(0, n, n)
        else:
            index = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        value = statistic(*(a[index] for a in arrays))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def binary_metrics_with_ci(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Optional[Sequence] = None,
) -> dict[str, dict[str, float]]:
    """``{"auroc"|"average_precision"|"sensitivity"|"specificity": {"value", "ci_low", "ci_high"}}``; ``groups``
    (the case of each row) makes the intervals resample cases, not rows."""
    out = {}
    for name, fn in (
        ("auroc", auroc),
        ("average_precision", average_precision),
        ("sensitivity", lambda y, s: sensitivity(y, s, threshold)),
        ("specificity", lambda y, s: specificity(y, s, threshold)),
    ):
        low, high = bootstrap_ci(fn, labels, scores, n_boot=n_boot, seed=seed, groups=groups)
        out[name] = {"value": fn(labels, scores), "ci_low": low, "ci_high": high}
    return out


def mean_with_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Mean of the finite ``values`` (e.g. per-case Dice) with its bootstrap interval."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    low, high = bootstrap_ci(np.mean, finite, n_boot=n_boot, seed=seed)
    return {"value": float(finite.mean()), "ci_low": low, "ci_high": high}


def weighted_log_loss(labels: np.ndarray, probabilities: np.ndarray, weights: Sequence[float]) -> float:
    """The RSNA 2019 challenge's multi-label log loss: per case ``sum_j w_j * BCE_j / sum_j w_j``, averaged over
    cases, for ``labels`` and ``probabilities`` ``(N, K)`` (probabilities clipped to [1e-7, 1 - 1e-7]); NaN for no
    case."""
    labels = np.asarray(labels, dtype=np.float64)
    probs = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1.0 - 1e-7)
    if labels.size == 0:
        return float("nan")
    w = np.asarray(weights, dtype=np.float64)[: labels.shape[1]]
    bce = -(labels * np.log(probs) + (1.0 - labels) * np.log(1.0 - probs))
    return float(np.mean(bce @ w / w.sum()))
