"""Choose a trained model's operating point again on the user's own labelled scans, without retraining.

A threshold chosen on the validation scans of one site does not carry to another scanner or population: a network's
probabilities shift with the data, while the order of the cases (AUROC) may hold. The demo models show it on real
anatomy (``docs/training-at-small-scale.md``, "Real anatomy"): the volume classifier, whose threshold was chosen on
phantoms, ranks real head CTs well and calls every one of them positive. ``smartnet operating-point`` evaluates a
trained bundle on a labelled split of the user's data, picks the threshold there with the same rule training uses
(``smartnet.operating_point.choose_threshold``: Youden's J, or a target sensitivity) and stores it in the
checkpoint, where evaluation, inference, reports and the MONAI Label app read it.

The stored record keeps what it replaced (``previous``) and names the data it was chosen on (``chosen_on``); both are
plain data, so the checkpoint still loads with ``torch.load(weights_only=True)``. A classifier with the subtype head
gets its subtype thresholds chosen again too, for each subtype the labelled split holds with and without; the others
keep their stored threshold.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoints import load_checkpoint
from .errors import SmartNetError
from .operating_point import CHECKPOINT_KEY, DEFAULT_THRESHOLD, choose_threshold
from .storage import atomic_torch_save
from .vocabulary import SUBTYPES

__all__ = ["OperatingPointError", "SCORE_SOURCES", "SUBTYPE_KEY", "evaluation_scores", "rechoose_operating_point"]


class OperatingPointError(SmartNetError, ValueError):
    """The scores cannot set an operating point (missing results, one class only) or the checkpoint holds none."""


# per evaluation kind: stored key -> (file in the evaluation folder, score column, label column)
SCORE_SOURCES: dict[str, dict[str, tuple[str, str, str]]] = {
    "volume_cls": {"threshold": ("per_case.csv", "probability", "label")},
    "upstream": {
        "threshold": ("slice_predictions.csv", "probability", "label"),
        "volume_threshold": ("per_case.csv", "volume_score", "volume_label"),
    },
}
SUBTYPE_KEY = "subtype:"  # score keys ``subtype:<name>``: a subtype head's outputs, from per_case.csv


def evaluation_scores(eval_dir: str | os.PathLike, kind: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The scores and labels an evaluation folder holds, per stored threshold key.

    Args:
        eval_dir: the folder an ``evaluate.json`` run wrote (``per_case.csv``, and ``slice_predictions.csv`` for the
            upstream).
        kind: ``volume_cls`` (the volume classifier: ``threshold`` from the per-volume probabilities) or ``upstream``
            (``threshold`` from the slice probabilities, ``volume_threshold`` from the per-volume maximum).

    Returns:
        ``{key: (scores (N,) in [0, 1], labels (N,) bool)}``; for a volume classifier with the subtype head also
        ``subtype:<name>`` per subtype (its ``p_<name>`` / ``label_<name>`` columns).

    Raises:
        OperatingPointError: an unknown kind, a missing file or column.
    """
    if kind not in SCORE_SOURCES:
        raise OperatingPointError(f"no operating point for {kind!r} models; choose from {', '.join(SCORE_SOURCES)}")
    folder = Path(eval_dir)
    out = {}
    for key, (name, score_column, label_column) in SCORE_SOURCES[kind].items():
        path = folder / name
        if not path.is_file():
            raise OperatingPointError(f"{path} does not exist: run the bundle's evaluate.json on the labelled split")
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if rows and not {score_column, label_column} <= rows[0].keys():
            raise OperatingPointError(f"{path} has no {score_column!r} / {label_column!r} columns")
        scores = np.array([float(r[score_column]) for r in rows], dtype=np.float64)
        labels = np.array([float(r[label_column]) > 0 for r in rows], dtype=bool)
        out[key] = (scores, labels)
        if kind == "volume_cls" and rows and {f"p_{SUBTYPES[1]}", f"label_{SUBTYPES[1]}"} <= rows[0].keys():
            for sub in SUBTYPES[1:]:
                out[f"{SUBTYPE_KEY}{sub}"] = (np.array([float(r[f"p_{sub}"]) for r in rows], dtype=np.float64),
                                              np.array([float(r[f"label_{sub}"]) > 0 for r in rows], dtype=bool))
    return out


def rechoose_operating_point(
    checkpoint_path: str | os.PathLike,
    scores: dict[str, tuple[np.ndarray, np.ndarray]],
    method: str = "youden",
    target_sensitivity: float = 0.95,
    chosen_on: str = "",
    write: bool = True,
) -> dict[str, Any]:
    """Choose every threshold in ``scores`` again and (with ``write``) store the new record in the checkpoint.

    Args:
        checkpoint_path: a bundle's ``models/model.pt`` (a dict with ``model`` and ``operating_point``).
        scores: ``{key: (scores, labels)}`` as ``evaluation_scores`` returns them; ``threshold`` is required,
            ``volume_threshold`` and ``subtype:<name>`` optional (a subtype the data hold with one class only keeps
            its stored threshold).
        method, target_sensitivity: the rule (``smartnet.operating_point.choose_threshold``).
        chosen_on: a short description of the data (stored as ``chosen_on``).
        write: replace the checkpoint (atomically: a failed write leaves the old file).

    Returns:
        ``{"previous": the stored record, "record": the new one}`` (plain data).

    Raises:
        OperatingPointError: the checkpoint is not a bundle checkpoint, or a score set lacks one of the classes.
        ValueError: an unknown method or a target sensitivity outside (0, 1].
    """
    path = Path(checkpoint_path).expanduser()
    state = load_checkpoint(path)
    if not isinstance(state, dict) or "model" not in state:
        raise OperatingPointError(f"{path} is not a bundle checkpoint (a dict with 'model' and 'operating_point')")
    previous = dict(state.get(CHECKPOINT_KEY) or {})
    if "threshold" not in scores:
        raise OperatingPointError("no slice or volume scores to choose the threshold on")
    record: dict[str, Any] = {}
    stored_subtypes = dict(previous.get("subtype_thresholds") or {})
    subtypes: dict[str, float] = {}
    for key, (values, labels) in scores.items():
        labels = np.asarray(labels, dtype=bool)
        if key.startswith(SUBTYPE_KEY):
            name = key[len(SUBTYPE_KEY):]
            kept = float(stored_subtypes.get(name, DEFAULT_THRESHOLD))
            both = labels.any() and (~labels).any()
            subtypes[name] = choose_threshold(values, labels, method, target_sensitivity)["threshold"] if both else kept
            continue
        n_pos, n_neg = int(labels.sum()), int((~labels).sum())
        if n_pos == 0 or n_neg == 0:
            raise OperatingPointError(
                f"choosing the {key.replace('_', ' ')} needs haemorrhage and lesion-free cases; these data have "
                f"{n_pos} positive and {n_neg} negative")
        chosen = choose_threshold(values, labels, method, target_sensitivity)
        if key == "threshold":
            record.update(chosen)
        else:
            prefix = key[: -len("threshold")]
            record.update({f"{prefix}{k}": chosen[k] for k in ("threshold", "sensitivity", "specificity")})
    if subtypes or stored_subtypes:
        record["subtype_thresholds"] = {**stored_subtypes, **subtypes}
    record["chosen_on"] = str(chosen_on)
    record["previous"] = {k: float(v) for k, v in previous.items() if k.endswith("threshold")}
    if stored_subtypes:
        record["previous"]["subtype_thresholds"] = {k: float(v) for k, v in stored_subtypes.items()}
    if write:
        atomic_torch_save(path, {**state, CHECKPOINT_KEY: record})
        torch.load(path, map_location="cpu", weights_only=True)  # proof that it still loads as plain data
    return {"previous": previous, "record": record}
