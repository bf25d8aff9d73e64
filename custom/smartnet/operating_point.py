"""The decision threshold (operating point) of a classifier, chosen on validation data and stored with the weights.

A network's probabilities are not calibrated, so 0.5 means nothing in particular: a model can separate the classes
perfectly (AUROC 1) and still call every case negative at 0.5. Training therefore picks the threshold on the
validation set, by one of two rules:

* ``youden``: the threshold maximising Youden's J = sensitivity + specificity - 1 (balanced errors; ties, which
  on a small validation set span whole gaps between the classes, go where a binormal fit of the logits is best);
* ``sensitivity``: the highest threshold whose validation sensitivity is at least ``target_sensitivity``
  (e.g. 0.95 for triage, where a missed bleed costs more than a false alarm).

``OperatingPoint`` holds the choice. It has ``state_dict`` / ``load_state_dict``, so a ``CheckpointSaver`` stores it
beside the model as plain numbers and strings (loadable with ``torch.load(weights_only=True)``), and
``stored_threshold`` reads it back for evaluation, inference and MONAI Label. A classifier with the subtype head
gets a threshold per subtype too, by the same rule on its validation subtype labels (``subtype_thresholds``;
``stored_subtype_thresholds`` reads them; 0.5 for a subtype without positive and negative validation volumes).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import log_ndtr

from .checkpoints import load_checkpoint
from .vocabulary import SUBTYPES

__all__ = ["METHODS", "OperatingPoint", "choose_threshold", "stored_threshold", "stored_subtype_thresholds",
           "subtype_thresholds_or_default", "DEFAULT_THRESHOLD"]

METHODS = ("youden", "sensitivity", "fixed")
DEFAULT_THRESHOLD = 0.5
CHECKPOINT_KEY = "operating_point"


def _logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities ``p``, clipped to [1e-7, 1 - 1e-7] so that 0 and 1 stay finite."""
    p = np.clip(p, 1e-7, 1.0 - 1e-7)
    return np.log(p) - np.log1p(-p)


def _rates(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    decided = scores >= threshold
    sens = float(decided[labels].mean()) if labels.any() else float("nan")
    spec = float((~decided[~labels]).mean()) if (~labels).any() else float("nan")
    return sens, spec


def choose_threshold(
    scores: np.ndarray,
    labels: np.ndarray,
    method: str = "youden",
    target_sensitivity: float = 0.95,
    fixed: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Pick a decision threshold on probabilities ``scores`` (N,) in [0, 1] for binary ``labels`` (N,).

    Candidate thresholds are the midpoints between consecutive distinct scores (so a threshold never sits exactly on
    a validation case), plus the ends; rates are counted on the validation cases. Every threshold inside a gap
    between two consecutive scores gives the same counts, so Youden's J ties over whole gaps (and, on a small
    validation set, over several). The tie goes to the point of the best gaps where a binormal model of the
    validation logits (one normal per class, the network's output being linear in logits) has its largest J
    (``_break_youden_tie``): where the positives spread over far more logits than the negatives (bleeds of every
    size against lesion-free heads), that point lies nearer the negatives than the middle of the gap, and it is
    the middle when the two classes spread alike (0.01 / 0.4 with equal spreads -> 0.076, logit -2.5, not 0.205).
    With only one class present, or ``method="fixed"``, ``fixed`` is returned unchanged.

    Returns a dict of plain Python values: ``threshold``, ``method``, ``target_sensitivity`` (or None),
    ``sensitivity``, ``specificity`` (at the threshold, on these data), ``n_positive``, ``n_negative``.

    Raises:
        ValueError: for an unknown ``method``, a target outside (0, 1], or scores and labels of different lengths.
    """
    if method not in METHODS:
        raise ValueError(f"operating point method must be one of {METHODS}, got {method!r}")
    if not 0.0 < float(target_sensitivity) <= 1.0:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1) > 0
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    result: dict[str, Any] = {
        "method": method,
        "target_sensitivity": float(target_sensitivity) if method == "sensitivity" else None,
        "n_positive": int(labels.sum()),
        "n_negative": int((~labels).sum()),
    }
    threshold = float(fixed)
    if method != "fixed" and labels.any() and (~labels).any():
        distinct = np.unique(scores)
        logits = _logit(distinct)
        midpoints = 1.0 / (1.0 + np.exp(-(logits[:-1] + logits[1:]) / 2))
        candidates = np.concatenate([[0.0], midpoints, [min(1.0, distinct[-1] + 1e-6)]])
        rates = np.array([_rates(scores, labels, t) for t in candidates])
        if method == "youden":
            j = rates[:, 0] + rates[:, 1] - 1.0
            best = np.flatnonzero(np.isclose(j, j.max()))
            threshold = _break_youden_tie(logits, best, _logit(scores), labels)
            if threshold is None:  # no bounded gap among the best: the middle of the best candidates
                threshold = float(np.median(candidates[best]))
        else:
            ok = np.flatnonzero(rates[:, 0] >= target_sensitivity - 1e-12)
            threshold = float(candidates[ok].max())
    else:
        result["method"] = "fixed"
    sens, spec = _rates(scores, labels, threshold)
    result.update(threshold=threshold, sensitivity=sens, specificity=spec)
    return result


def _break_youden_tie(distinct_logits: np.ndarray, best: np.ndarray, logits: np.ndarray,
                      labels: np.ndarray) -> float | None:
    """The threshold (a probability) among Youden-optimal gaps where a binormal fit of the validation logits has the
    largest J, or None when no best candidate is a bounded gap.

    ``distinct_logits`` (K,): the logits of the distinct validation scores, ascending; ``best``: indices into the
    K + 1 candidates (0: below every score, k in 1..K-1: the gap between distinct scores k-1 and k, K: above every
    score) whose J is largest; ``logits`` / ``labels`` (N,): every validation case. Each class's logits are fitted
    by a normal (mean, sample standard deviation, at least 1e-3); the fitted J(t) = Phi((t - mu_neg) / sd_neg) -
    Phi((t - mu_pos) / sd_pos) is evaluated on 101 points across the inner 80 % of each best gap (so the threshold
    keeps a tenth of the gap from the nearest validation case), as log(1 - J) so that classes many standard
    deviations apart still rank the points, and the best point is returned.
    """
    gaps = [int(k) for k in best if 1 <= k <= distinct_logits.size - 1]
    if not gaps:
        return None

    def fit(values: np.ndarray) -> tuple[float, float]:
        sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
        return float(values.mean()), max(sd, 1e-3)

    mu_neg, sd_neg = fit(logits[~labels])
    mu_pos, sd_pos = fit(logits[labels])
    points = np.concatenate([
        distinct_logits[k - 1] + (distinct_logits[k] - distinct_logits[k - 1]) * np.linspace(0.1, 0.9, 101)
        for k in gaps])
    # 1 - J = P(negative above t) + P(positive below t), in logs: far apart classes would round J to 1 everywhere
    log_error = np.logaddexp(log_ndtr(-(points - mu_neg) / sd_neg), log_ndtr((points - mu_pos) / sd_pos))
    near_best = np.flatnonzero(log_error <= log_error.min() + 1e-9)
    chosen = float(points[near_best[near_best.size // 2]])  # a flat optimum: its middle point
    return float(1.0 / (1.0 + np.exp(-chosen)))


class OperatingPoint:
    """The classifier's decision threshold, as a ``state_dict``-able object for MONAI's checkpoint handlers.

    Args:
        method: ``youden``, ``sensitivity`` (with ``target_sensitivity``) or ``fixed`` (keep ``threshold``).
        target_sensitivity: the validation sensitivity to reach with ``method="sensitivity"``.
        threshold: the starting (and, with ``fixed``, the final) threshold.
    """

    def __init__(self, method: str = "youden", target_sensitivity: float = 0.95, threshold: float = DEFAULT_THRESHOLD):
        choose_threshold(np.zeros(0), np.zeros(0), method, target_sensitivity)  # validates the settings
        self.method = method
        self.target_sensitivity = float(target_sensitivity)
        self.record: dict[str, Any] = {"threshold": float(threshold), "method": "fixed"}

    @property
    def threshold(self) -> float:
        return float(self.record["threshold"])

    def update(self, scores: np.ndarray, labels: np.ndarray, volume_scores: np.ndarray | None = None,
               volume_labels: np.ndarray | None = None, subtype_scores: np.ndarray | None = None,
               subtype_labels: np.ndarray | None = None) -> dict[str, Any]:
        """Choose the threshold on these validation scores and labels; returns (and keeps) the record.

        With ``volume_scores`` / ``volume_labels`` (per-volume scores of a slice model, e.g. the maximum slice
        probability) a second threshold is chosen for volume decisions: ``volume_threshold``,
        ``volume_sensitivity``, ``volume_specificity``. A slice threshold applied to the maximum over 30 slices
        would call almost every volume positive.

        With ``subtype_scores`` / ``subtype_labels`` (``(N, 5)``, the subtypes in ``SUBTYPES[1:]`` order) a threshold
        per subtype: ``subtype_thresholds`` ``{name: threshold}`` (0.5 where the validation volumes hold one class
        only); their validation sensitivity and specificity are in ``subtype_rates`` ``{name: [sens, spec]}`` (NaN
        for a missing class).
        """
        record = choose_threshold(scores, labels, self.method, self.target_sensitivity, self.threshold)
        if volume_scores is not None and volume_labels is not None:
            fallback = float(self.record.get("volume_threshold", record["threshold"]))
            volume = choose_threshold(volume_scores, volume_labels, self.method, self.target_sensitivity, fallback)
            record.update({f"volume_{k}": volume[k] for k in ("threshold", "sensitivity", "specificity")})
        if subtype_scores is not None and subtype_labels is not None:
            sub_scores = np.asarray(subtype_scores, dtype=np.float64).reshape(-1, len(SUBTYPES) - 1)
            sub_labels = np.asarray(subtype_labels).reshape(-1, len(SUBTYPES) - 1)
            chosen = {name: choose_threshold(sub_scores[:, i], sub_labels[:, i], self.method, self.target_sensitivity)
                      for i, name in enumerate(SUBTYPES[1:])}
            record["subtype_thresholds"] = {name: c["threshold"] for name, c in chosen.items()}
            record["subtype_rates"] = {name: [c["sensitivity"], c["specificity"]] for name, c in chosen.items()}
        self.record = record
        return self.record

    def state_dict(self) -> dict[str, Any]:
        """The record as plain data, without NaN rates (``subtype_rates`` is for the logs only)."""
        return {k: v for k, v in self.record.items()
                if not (isinstance(v, float) and math.isnan(v)) and k != "subtype_rates"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.record = dict(state)


def stored_threshold(
    checkpoint_path: str | os.PathLike, explicit: float | None = None, key: str = "threshold"
) -> float:
    """The decision threshold to use with a checkpoint: ``explicit`` when given, else the operating point stored in
    the checkpoint (``key``: ``threshold``, or ``volume_threshold`` for the volume decisions of the slice model), else
    ``DEFAULT_THRESHOLD`` (0.5) with a warning (a checkpoint from before operating points, or none yet: the loaders
    say what is wrong with a missing file)."""
    if explicit is not None:
        value = float(explicit)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"a decision threshold is a probability in [0, 1], got {value}")
        return value
    logger = logging.getLogger("smartnet")
    path = Path(checkpoint_path).expanduser()
    try:
        state = load_checkpoint(path)
    except Exception:  # missing or unreadable: the checkpoint loader reports it
        return DEFAULT_THRESHOLD
    record = state.get(CHECKPOINT_KEY) if isinstance(state, dict) else None
    if not isinstance(record, dict) or key not in record:
        logger.warning(f"{path} stores no operating point ({key}); using threshold {DEFAULT_THRESHOLD}")
        return DEFAULT_THRESHOLD
    threshold = float(record[key])
    logger.info(
        f"decision {key} {threshold:.4f} from {path.name} ({record.get('method', '?')} on the validation set)"
    )
    return threshold


def stored_subtype_thresholds(checkpoint_path: str | os.PathLike,
                              explicit: dict[str, float] | None = None) -> dict[str, float]:
    """The decision threshold of each subtype (``{name: threshold}`` over ``SUBTYPES[1:]``): ``explicit`` values where
    given, else those stored in the checkpoint's operating point, else ``DEFAULT_THRESHOLD`` (0.5; a checkpoint
    without the subtype head, or from before subtype thresholds).

    Raises:
        ValueError: an explicit threshold outside [0, 1] or for a name that is not a subtype.
    """
    explicit = dict(explicit or {})
    unknown = sorted(set(explicit) - set(SUBTYPES[1:]))
    if unknown:
        raise ValueError(f"subtype thresholds for {unknown}: the subtypes are {list(SUBTYPES[1:])}")
    try:
        state = load_checkpoint(Path(checkpoint_path).expanduser())
    except Exception:  # missing or unreadable: the checkpoint loader reports it
        state = {}
    record = state.get(CHECKPOINT_KEY) if isinstance(state, dict) else None
    stored = record.get("subtype_thresholds", {}) if isinstance(record, dict) else {}
    thresholds = {}
    for name in SUBTYPES[1:]:
        value = float(explicit.get(name, stored.get(name, DEFAULT_THRESHOLD)))
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"the {name} threshold is a probability in [0, 1], got {value}")
        thresholds[name] = value
    return thresholds


def subtype_thresholds_or_default(thresholds: dict[str, float] | None) -> dict[str, float]:
    """``{name: threshold}`` over ``SUBTYPES[1:]``: the given ones, ``DEFAULT_THRESHOLD`` for the others."""
    return {name: float((thresholds or {}).get(name, DEFAULT_THRESHOLD)) for name in SUBTYPES[1:]}
