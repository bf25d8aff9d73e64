"""Ignite handlers that write the downstream bundles' per-volume results.

``VolumeEvaluationReport`` (evaluation, masks known) writes ``metrics.json`` and ``per_case.csv``:

* classifier (``task="cls"``): per case the probability, label and decision; volume AUROC, F1, accuracy,
  sensitivity and specificity at ``threshold``;
* segmenter (``task="seg"``): per case the Dice, true / predicted / false-positive lesion volume in mL (from the voxel
  spacing of the evaluated image); mean Dice over haemorrhage volumes and mean false-positive mL over all and over
  haemorrhage-free volumes.

``VolumePredictionWriter`` (inference, no masks) writes ``predictions.csv`` and ``predictions.json``: per case the
probability and decision (classifier) or the lesion volume in mL of the written mask (segmenter, measured in the
original image geometry).

Under torch.distributed (multi-GPU evaluation) the rows of all ranks are gathered and rank 0 writes the files.
Both read the engine's decollated ``batch`` (``case_id``, ``image`` with its affine, ``depth``) and postprocessed
``output`` (``pred``: a probability for the classifier, a binary mask for the segmenter; ``label``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import min_version, optional_import

from ..reports.statistics import binary_scores
from ..storage import atomic_write_csv, atomic_write_text
from .distributed import gather_to_rank0

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")

__all__ = ["VolumeEvaluationReport", "VolumePredictionWriter", "voxel_volume_ml"]


def voxel_volume_ml(affine: Any) -> float:
    """Volume of one voxel in mL (cm^3) from a 4 x 4 affine in mm."""
    matrix = torch.as_tensor(affine, dtype=torch.float64)[:3, :3]
    return float(abs(torch.linalg.det(matrix))) / 1000.0


def _affine_of(item: dict, output: dict, first: str = "image") -> Any:
    """The affine of the evaluated ``image`` (evaluation) or of the ``pred`` inverted to the input (inference)."""
    sources = (item.get("image"), output.get("pred")) if first == "image" else (output.get("pred"), item.get("image"))
    for source in sources:
        affine = getattr(source, "affine", None)
        if affine is not None:
            return affine
    raise ValueError("no affine on the prediction or the image: cannot convert voxels to mL")


def _source_path(item: dict) -> str:
    meta = getattr(item.get("image"), "meta", None) or {}
    return str(meta.get("filename_or_obj", item.get("image_path", "")))


def _crop_depth(x: torch.Tensor, item: dict) -> torch.Tensor:
    depth = item.get("depth")
    return x if depth is None else x[..., : int(torch.as_tensor(depth))]


def _gather(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """All ranks' rows on rank 0 (``None`` on other ranks), each case once; the rows as they are without DDP."""
    parts = gather_to_rank0(rows)
    if parts is None:
        return None
    merged, seen = [], set()
    for part in parts:
        for row in part:
            if row["case_id"] not in seen:  # a DistributedSampler may repeat a case to even out the ranks
                seen.add(row["case_id"])
                merged.append(row)
    return merged


def _check_task(task: str) -> str:
    if task not in ("cls", "seg"):
        raise ValueError(f"task must be 'cls' or 'seg', got {task!r}")
    return task


class _PerVolumeRows:
    """Collects one row per volume during an engine run (``_collect``) and writes them at its end (``_write``)."""

    def __init__(self, output_dir: str, task: str, threshold: float = 0.5) -> None:
        self.output_dir = Path(output_dir)
        self.task = _check_task(task)
        self.threshold = threshold
        self.logger = logging.getLogger(self.__class__.__name__)
        self.rows: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self.rows = []

    def _collect(self, engine: Engine) -> None:
        raise NotImplementedError

    def _write(self, engine: Engine) -> None:
        raise NotImplementedError


class VolumeEvaluationReport(_PerVolumeRows):
    """Per-volume evaluation results on disk; see the module docstring.

    Args:
        output_dir: folder for ``metrics.json`` and ``per_case.csv`` (created).
        task: "cls" or "seg".
        threshold: decision threshold on the volume probability (classifier).
        prefix: file-name prefix.
    """

    def __init__(self, output_dir: str, task: str, threshold: float = 0.5, prefix: str = "") -> None:
        super().__init__(output_dir, task, threshold)
        self.prefix = prefix
        self.results: dict[str, Any] = {}

    def _collect(self, engine: Engine) -> None:
        for item, output in zip(engine.state.batch, engine.state.output):
            row: dict[str, Any] = {"case_id": str(item.get("case_id", "?"))}
            if self.task == "cls":
                prob = float(torch.as_tensor(output["pred"]).float().flatten()[0])
                label = int(torch.as_tensor(output["label"]).flatten()[0] > 0.5)
                row.update(label=label, probability=prob, decision=int(prob >= self.threshold))
            else:
                pred = _crop_depth(torch.as_tensor(output["pred"]), item) > 0.5
                truth = _crop_depth(torch.as_tensor(output["label"])[:1], item) > 0.5
                ml = voxel_volume_ml(_affine_of(item, output))
                inter, n_pred, n_true = int((pred & truth).sum()), int(pred.sum()), int(truth.sum())
                row.update(
                    label=int(n_true > 0),
                    dice=2 * inter / (n_pred + n_true) if n_true else float("nan"),
                    true_ml=n_true * ml,
                    predicted_ml=n_pred * ml,
                    false_positive_ml=(n_pred - inter) * ml,
                )
            self.rows.append(row)

    def _write(self, engine: Engine) -> None:
        rows = _gather(self.rows)
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
        else:
            dice = [r["dice"] for r in self.rows if r["label"]]
            fp = np.array([r["false_positive_ml"] for r in self.rows])
            metrics["dice_mean"] = float(np.mean(dice)) if dice else float("nan")
            metrics["dice_median"] = float(np.median(dice)) if dice else float("nan")
            metrics["false_positive_ml_mean"] = float(fp.mean()) if len(fp) else float("nan")
            metrics["false_positive_ml_mean_normal"] = float(fp[~labels].mean()) if (~labels).any() else float("nan")
        summary = {"volumes": len(self.rows), "haemorrhage_volumes": int(labels.sum()), "threshold": self.threshold}
        self.results = {"metrics": metrics, "summary": summary}
        atomic_write_text(self.output_dir / f"{self.prefix}metrics.json", json.dumps(self.results, indent=4) + "\n")
        atomic_write_csv(self.output_dir / f"{self.prefix}per_case.csv", self.rows)
        shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
        self.logger.info(f"evaluation of {len(self.rows)} volumes at threshold {self.threshold:.4f}: {shown}")
        self.logger.info(f"results written to {self.output_dir}")


class VolumePredictionWriter(_PerVolumeRows):
    """Per-volume inference results (``predictions.csv`` / ``.json``); see the module docstring.

    Args:
        output_dir: folder for the files (created).
        task: "cls" (probability, decision) or "seg" (lesion volume in mL of the binary ``pred`` mask, which should
            already be in the original image geometry, e.g. after ``Invertd``).
        threshold: decision threshold on the volume probability (classifier).
    """

    def _collect(self, engine: Engine) -> None:
        for item, output in zip(engine.state.batch, engine.state.output):
            row: dict[str, Any] = {"case_id": str(item.get("case_id", "?")), "image": _source_path(item)}
            if self.task == "cls":
                prob = float(torch.as_tensor(output["pred"]).float().flatten()[0])
                row.update(probability=prob, decision=int(prob >= self.threshold))
            else:
                pred = torch.as_tensor(output["pred"]) > 0.5
                voxels = int(pred.sum())
                row.update(lesion_voxels=voxels, lesion_ml=voxels * voxel_volume_ml(_affine_of(item, output, first="pred")),
                           decision=int(voxels > 0))
            self.rows.append(row)
            self.logger.info(", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))

    def _write(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_csv(self.output_dir / "predictions.csv", self.rows)
        payload = {"threshold": self.threshold, "volumes": self.rows}
        atomic_write_text(self.output_dir / "predictions.json", json.dumps(payload, indent=4) + "\n")
        self.logger.info(f"{len(self.rows)} volume result(s) written to {self.output_dir}")
