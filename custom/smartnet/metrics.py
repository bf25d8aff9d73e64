"""Metric handlers for the slice-level validation of the upstream model, chosen by the heads the model has.

They read the per-slice keys written by the validation postprocessing: ``cls_prob`` / ``cls_pred`` / ``cls_label``
(shape ``(1,)``), ``seg`` (binary ``(1, H, W)``) against ``label``, and ``pred_rec`` against ``image``.
"""

from __future__ import annotations

from typing import Sequence

import math

from ignite.metrics import MetricsLambda
from monai.handlers import ROCAUC, ConfusionMatrix, MeanAbsoluteError, MeanDice, from_engine

__all__ = ["slice_key_metric", "slice_additional_metrics", "key_metric_is_loss_like"]

CONFUSION_METRICS = {
    "f1": "f1 score", "accuracy": "accuracy", "sensitivity": "sensitivity", "specificity": "specificity"
}


def _auroc() -> ROCAUC:
    return ROCAUC(output_transform=from_engine(["cls_prob", "cls_label"]))


def _dice(save_details: bool = True) -> MeanDice:
    # DiceMetric ignores empty ground truth by default: lesion-free slices give NaN and are left out, so this is the
    # Dice on positive slices
    return MeanDice(include_background=True, output_transform=from_engine(["seg", "label"]), save_details=save_details)


def _mae() -> MeanAbsoluteError:
    return MeanAbsoluteError(output_transform=from_engine(["pred_rec", "image"]))


def _mean_of(auroc: float, dice: float) -> float:
    """Mean of two scores in [0, 1]; a NaN (no positive slice to score) counts as 0."""
    values = [float(v) for v in (auroc, dice)]
    return sum(0.0 if math.isnan(v) else v for v in values) / 2


def slice_key_metric(tasks: Sequence[str]) -> dict:
    """The model-selection metric: the mean of slice AUROC and Dice with both a CLS and a SEG head (a checkpoint
    that ranks slices but outlines nothing is not selected), else slice AUROC with a CLS head, Dice with a SEG head,
    reconstruction MAE with a REC head only."""
    if "cls" in tasks and "seg" in tasks:
        return {"slice_auroc_dice": MetricsLambda(_mean_of, _auroc(), _dice(save_details=False))}  # parts unnamed
    if "cls" in tasks:
        return {"slice_auroc": _auroc()}
    if "seg" in tasks:
        return {"dice": _dice()}
    return {"rec_mae": _mae()}


def key_metric_is_loss_like(tasks: Sequence[str]) -> bool:
    """True when the key metric is better when smaller (only the reconstruction-only model: MAE)."""
    return "cls" not in tasks and "seg" not in tasks


def slice_additional_metrics(tasks: Sequence[str]) -> dict:
    """Every other slice metric the heads allow: F1 / accuracy / sensitivity / specificity, Dice, MAE."""
    metrics: dict = {}
    if "cls" in tasks and "seg" in tasks:  # the key metric is their mean: report AUROC on its own too
        metrics["slice_auroc"] = _auroc()
    if "cls" in tasks:
        for name, monai_name in CONFUSION_METRICS.items():
            metrics[f"slice_{name}"] = ConfusionMatrix(
                include_background=True, metric_name=monai_name, output_transform=from_engine(["cls_pred", "cls_label"])
            )
        if "seg" in tasks:
            metrics["dice"] = _dice()
    if "rec" in tasks and ("cls" in tasks or "seg" in tasks):
        metrics["rec_mae"] = _mae()
    return metrics
