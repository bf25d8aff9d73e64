"""Evaluation handlers: results on disk at the end of each evaluation run, into ``output_dir``.

``SliceEvaluationReport`` (upstream, per-slice outputs):

* ``metrics.json``: the engine's metrics (slice AUROC, F1, ...), plus volume-level AUROC / sensitivity /
  specificity from the per-volume score (the max, or mean, of the slice probabilities), Dice per case and counts;
* ``per_case.csv``: one row per volume (case_id, slices, positive slices, volume label, volume score, Dice);
* ``slice_predictions.csv``: one row per slice (case_id, slice_index, label, probability).

``VolumeEvaluationReport`` (downstream bundles, masks known) writes ``metrics.json`` and ``per_case.csv``:

* classifier (``task="cls"``): per case the probability, label and decision; volume AUROC, F1, accuracy,
  sensitivity and specificity at ``threshold``; with the subtype head (``pred_subtypes`` / ``label_subtypes`` in the
  outputs) per case ``p_<subtype>`` and ``label_<subtype>``, and per subtype AUROC, sensitivity and specificity at
  its stored threshold (``subtype_thresholds``, chosen on validation; 0.5 where none) (``<subtype>_auroc``, ...)
  with the challenge's weighted log loss over "any" and the subtypes
  (``weighted_log_loss``);
* segmenter (``task="seg"``): per case the Dice, true / predicted / false-positive lesion volume in mL (from the voxel
  spacing of the evaluated image); mean Dice over haemorrhage volumes and mean false-positive mL over all and over
  haemorrhage-free volumes.

Under torch.distributed (multi-GPU evaluation) the results of all ranks are gathered and rank 0 writes the files.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import min_version, optional_import

from ..operating_point import subtype_thresholds_or_default
from ..storage import atomic_write_csv, atomic_write_text
from ..reports.statistics import binary_scores, weighted_log_loss
from ..vocabulary import SUBTYPE_WEIGHTS, SUBTYPES
from .collector import Collector
from .volume_rows import PerVolumeRows, affine_of, crop_depth, gather_rows, subtype_columns, voxel_volume_ml

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["SliceEvaluationReport", "VolumeEvaluationReport"]


def _value(x: Any) -> float:
    return float(torch.as_tensor(x).double().flatten()[0])


def _is_number(x: Any) -> bool:
    """True for Python, numpy and one-element torch numbers (ignite metrics may return any of them)."""
    try:
        return torch.as_tensor(x).numel() == 1
    except (TypeError, ValueError, RuntimeError):
        return False


class SliceEvaluationReport(Collector):
    """Collect ``case_id``, ``slice_index``, ``cls_prob``, ``cls_label``, ``seg`` and ``label`` of every slice.

    Args:
        output_dir: folder for ``metrics.json``, ``per_case.csv`` and ``slice_predictions.csv`` (created).
        threshold: decision threshold on probabilities.
        aggregation: "max" (default) or "mean" of the slice probabilities as the volume score.
        prefix: file-name prefix (e.g. "test_").
        volume_threshold: decision threshold on the volume score (default: ``threshold``).
    """

    def __init__(self, output_dir: str, threshold: float = 0.5, aggregation: str = "max", prefix: str = "",
                 volume_threshold: float | None = None) -> None:
        if aggregation not in ("max", "mean"):
            raise ValueError(f"aggregation must be 'max' or 'mean', got {aggregation!r}")
        self.output_dir = Path(output_dir)
        self.threshold = threshold
        self.volume_threshold = threshold if volume_threshold is None else volume_threshold
        self.aggregation = aggregation
        self.prefix = prefix
        self.logger = logging.getLogger(self.__class__.__name__)
        self.results: dict[str, Any] = {}
        self._reset(None)

    def _reset(self, engine: Engine | None) -> None:
        self.slices: list[dict[str, Any]] = []
        self.overlap: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # intersection, pred, truth

    def _collect(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        for b, o in zip(batch, output):
            case = str(b.get("case_id", o.get("case_id", "?")))
            row = {"case_id": case, "slice_index": int(_value(b.get("slice_index", -1)))}
            if "cls_prob" in o:
                row["probability"] = _value(o["cls_prob"])
            if "label" in o or "label" in b:
                label = torch.as_tensor(o.get("label", b.get("label")))
                row["label"] = int(label.max() > 0)
                if "seg" in o:
                    seg = torch.as_tensor(o["seg"]) > 0
                    truth = label > 0
                    acc = self.overlap[case]
                    acc[0] += float((seg & truth).sum())
                    acc[1] += float(seg.sum())
                    acc[2] += float(truth.sum())
            self.slices.append(row)

    def _finish(self, engine: Engine) -> None:
        parts = self._gather((self.slices, dict(self.overlap)))
        if parts is None:  # not rank 0 of a multi-GPU evaluation: rank 0 writes everything
            return
        slices, seen, overlap = [], set(), {}
        for part_slices, part_overlap in parts:
            for row in part_slices:
                key = (row["case_id"], row["slice_index"])
                if key not in seen:  # a DistributedSampler may repeat a slice to even out the ranks
                    seen.add(key)
                    slices.append(row)
            for case, values in part_overlap.items():
                overlap.setdefault(case, [0.0, 0.0, 0.0])
                overlap[case] = [a + b for a, b in zip(overlap[case], values)]
        self.slices = slices
        self.overlap = defaultdict(lambda: [0.0, 0.0, 0.0], overlap)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        cases: dict[str, list[dict]] = defaultdict(list)
        for row in self.slices:
            cases[row["case_id"]].append(row)
        per_case = []
        for case, rows in cases.items():
            rows.sort(key=lambda r: r["slice_index"])
            entry: dict[str, Any] = {"case_id": case, "slices": len(rows)}
            if "label" in rows[0]:
                entry["positive_slices"] = sum(r["label"] for r in rows)
                entry["volume_label"] = int(entry["positive_slices"] > 0)
            if "probability" in rows[0]:
                probs = np.array([r["probability"] for r in rows])
                entry["volume_score"] = float(probs.max() if self.aggregation == "max" else probs.mean())
            if case in self.overlap:
                inter, pred, truth = self.overlap[case]
                entry["dice"] = 2 * inter / (pred + truth) if truth > 0 else float("nan")
                entry["predicted_lesion_pixels"] = int(pred)
            per_case.append(entry)

        metrics = {k: _value(v) for k, v in engine.state.metrics.items() if _is_number(v)}
        summary: dict[str, Any] = {"slices": len(self.slices), "volumes": len(per_case), "threshold": self.threshold,
                                   "volume_threshold": self.volume_threshold}
        labelled = [c for c in per_case if "volume_label" in c]
        if labelled and "volume_score" in labelled[0]:
            scores = np.array([c["volume_score"] for c in labelled])
            labels = np.array([c["volume_label"] for c in labelled])
            vol = binary_scores(labels, scores, self.volume_threshold)
            metrics.update({f"volume_{k}": v for k, v in vol.items()})
            if self.volume_threshold != 0.5:  # the operating point chosen on validation data, and 0.5 beside it
                at_half = binary_scores(labels, scores, 0.5)
                metrics.update({f"volume_{k}_at_0.5": at_half[k] for k in ("sensitivity", "specificity")})
            metrics["volume_aggregation"] = self.aggregation  # type: ignore[assignment]
        scored = [r for r in self.slices if "probability" in r and "label" in r]
        if scored and self.threshold != 0.5:
            at_half = binary_scores(
                np.array([r["label"] for r in scored]), np.array([r["probability"] for r in scored]), 0.5
            )
            metrics.update({f"slice_{k}_at_0.5": at_half[k] for k in ("sensitivity", "specificity")})
        dices = [c["dice"] for c in per_case if "dice" in c and not np.isnan(c["dice"])]
        if dices:
            metrics["dice_mean"] = float(np.mean(dices))
        self.results = {"metrics": metrics, "summary": summary}

        atomic_write_text(self.output_dir / f"{self.prefix}metrics.json", json.dumps(self.results, indent=4) + "\n")
        atomic_write_csv(self.output_dir / f"{self.prefix}per_case.csv", per_case)
        atomic_write_csv(self.output_dir / f"{self.prefix}slice_predictions.csv", self.slices)
        shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        self.logger.info(f"evaluation of {len(per_case)} volumes / {len(self.slices)} slices: {shown}")
        self.logger.info(f"results written to {self.output_dir}")


class VolumeEvaluationReport(PerVolumeRows):
    """Per-volume evaluation results on disk; see the module docstring.

    Args:
        output_dir: folder for ``metrics.json`` and ``per_case.csv`` (created).
        task: "cls" or "seg".
        threshold: decision threshold on the volume probability (classifier).
        prefix: file-name prefix.
        subtype_thresholds: ``{subtype: threshold}`` of the subtype head's decisions (a subtype not named: 0.5).
    """

    def __init__(self, output_dir: str, task: str, threshold: float = 0.5, prefix: str = "",
                 subtype_thresholds: dict[str, float] | None = None) -> None:
        super().__init__(output_dir, task, threshold)
        self.prefix = prefix
        self.subtype_thresholds = subtype_thresholds_or_default(subtype_thresholds)
        self.results: dict[str, Any] = {}

    def _collect(self, engine: Engine) -> None:
        for item, output in zip(engine.state.batch, engine.state.output):
            row: dict[str, Any] = {"case_id": str(item.get("case_id", "?"))}
            if self.task == "cls":
                prob = float(torch.as_tensor(output["pred"]).double().flatten()[0])
                label = int(torch.as_tensor(output["label"]).flatten()[0] > 0.5)
                row.update(label=label, probability=prob, decision=int(prob >= self.threshold))
                row.update(subtype_columns(output, "pred_subtypes", "p_"))
                row.update({k: int(v > 0.5) for k, v in subtype_columns(output, "label_subtypes", "label_").items()})
            else:
                pred = crop_depth(torch.as_tensor(output["pred"]), item) > 0.5
                truth = crop_depth(torch.as_tensor(output["label"])[:1], item) > 0.5
                ml = voxel_volume_ml(affine_of(item, output))
                inter, n_pred, n_true = int((pred & truth).sum()), int(pred.sum()), int(truth.sum())
                row.update(
                    label=int(n_true > 0),
                    dice=2 * inter / (n_pred + n_true) if n_true else float("nan"),
                    true_ml=n_true * ml,
                    predicted_ml=n_pred * ml,
                    false_positive_ml=(n_pred - inter) * ml,
                )
            self.rows.append(row)

    def _finish(self, engine: Engine) -> None:
        rows = gather_rows(self.rows)
        if rows is None:
            return
        self.rows = rows
        self.output_dir.mkdir(parents=True, exist_ok=True)
        labels = np.array([r["label"] for r in self.rows], dtype=bool)
        metrics: dict[str, Any] = {}
        if self.task == "cls":
            scores = np.array([r["probability"] for r in self.rows])
            metrics.update(binary_scores(labels, scores, self.threshold))
            if self.threshold != 0.5:  # the operating point chosen on validation data, and the naive 0.5 beside it
                at_half = binary_scores(labels, scores, 0.5)
                metrics.update({f"{k}_at_0.5": at_half[k] for k in ("sensitivity", "specificity", "accuracy", "f1")})
            metrics.update(self._subtype_metrics(labels, scores))
        else:
            dice = [r["dice"] for r in self.rows if r["label"]]
            fp = np.array([r["false_positive_ml"] for r in self.rows])
            metrics["dice_mean"] = float(np.mean(dice)) if dice else float("nan")
            metrics["dice_median"] = float(np.median(dice)) if dice else float("nan")
            metrics["false_positive_ml_mean"] = float(fp.mean()) if len(fp) else float("nan")
            metrics["false_positive_ml_mean_normal"] = float(fp[~labels].mean()) if (~labels).any() else float("nan")
        summary = {"volumes": len(self.rows), "haemorrhage_volumes": int(labels.sum()), "threshold": self.threshold}
        if any(f"label_{SUBTYPES[1]}" in r for r in self.rows):
            summary.update({f"{name}_volumes": sum(r.get(f"label_{name}", 0) for r in self.rows)
                            for name in SUBTYPES[1:]})
            summary["subtype_thresholds"] = self.subtype_thresholds
        self.results = {"metrics": metrics, "summary": summary}
        atomic_write_text(self.output_dir / f"{self.prefix}metrics.json", json.dumps(self.results, indent=4) + "\n")
        atomic_write_csv(self.output_dir / f"{self.prefix}per_case.csv", self.rows)
        shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
        self.logger.info(f"evaluation of {len(self.rows)} volumes at threshold {self.threshold:.4f}: {shown}")
        self.logger.info(f"results written to {self.output_dir}")

    def _subtype_metrics(self, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        """Per subtype AUROC / sensitivity / specificity at its threshold and the weighted log loss, for rows that
        have both subtype probabilities and labels (none without the subtype head)."""
        names = SUBTYPES[1:]
        if not self.rows or not all(f"p_{names[0]}" in r and f"label_{names[0]}" in r for r in self.rows):
            return {}
        metrics: dict[str, float] = {}
        for name in names:
            sub = binary_scores(np.array([r[f"label_{name}"] for r in self.rows], dtype=bool),
                                np.array([r[f"p_{name}"] for r in self.rows]), self.subtype_thresholds[name])
            metrics.update({f"{name}_{k}": sub[k] for k in ("auroc", "sensitivity", "specificity")})
        all_labels = np.column_stack([labels] + [[r[f"label_{n}"] for r in self.rows] for n in names])
        all_probs = np.column_stack([scores] + [[r[f"p_{n}"] for r in self.rows] for n in names])
        metrics["weighted_log_loss"] = weighted_log_loss(all_labels, all_probs, SUBTYPE_WEIGHTS)
        return metrics
