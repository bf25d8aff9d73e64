"""Build an evaluation report from the files an evaluation wrote (``metrics.json``, ``per_case.csv`` and, upstream,
``slice_predictions.csv``): bootstrap confidence intervals added to ``metrics.json``, figures in ``figures/`` and a
static ``report.html``. Figures that need the network and images (activation maps, t-SNE, overlays) are written
during evaluation by ``smartnet.handlers.ReportFigures`` and listed in ``figures/figures.json``; they are included.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SmartNetError
from ..storage import atomic_write_text
from ..vocabulary import SUBTYPES
from .figures import plot_confusion, plot_roc_pr, plot_volume_scatter
from .html import write_html
from .statistics import binary_metrics_with_ci, mean_with_ci, sensitivity, specificity

__all__ = ["ReportError", "build_report", "require_report_extra", "FIGURES_DIR", "MANIFEST"]

FIGURES_DIR = "figures"
MANIFEST = "figures.json"
_logger = logging.getLogger("smartnet.report")


class ReportError(SmartNetError, ValueError):
    """An evaluation folder that holds no evaluation results."""


def require_report_extra() -> None:
    """Raise ``ReportError`` with the install command when matplotlib or scikit-learn is missing."""
    missing = [name for name in ("matplotlib", "sklearn") if importlib.util.find_spec(name) is None]
    if missing:
        raise ReportError(
            f"the report needs matplotlib and scikit-learn ({', '.join(missing)} not installed): "
            "pip install 'smartnet[report]'"
        )


def _read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows.append({k: _number(v) for k, v in row.items()})
    return rows


def _number(text: str) -> Any:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _column(rows: list[dict], *names: str) -> np.ndarray | None:
    for name in names:
        if rows and all(isinstance(r.get(name), (int, float)) for r in rows):
            return np.array([r[name] for r in rows], dtype=float)
    return None


def read_manifest(figures: Path) -> list[tuple[str, str]]:
    """``(file, caption)`` pairs written by the evaluation handler (missing manifest: none)."""
    path = figures / MANIFEST
    if not path.is_file():
        return []
    return [(entry["file"], entry["caption"]) for entry in json.loads(path.read_text())]


def _at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> str:
    """``"sens / spec"`` at ``threshold``, for captions beside the operating point."""
    return f"{sensitivity(labels, scores, threshold):.2f} / {specificity(labels, scores, threshold):.2f}"


def build_report(eval_dir: str | Path, prefix: str = "", n_boot: int = 1000, seed: int = 0) -> Path:
    """Write ``figures/*.png``, confidence intervals into ``<prefix>metrics.json`` and ``report.html``.

    Returns the path of ``report.html``.

    Raises:
        ReportError: no ``<prefix>metrics.json`` / ``<prefix>per_case.csv`` in ``eval_dir``, or the ``report``
            extra (matplotlib, scikit-learn) is not installed.
    """
    require_report_extra()
    folder = Path(eval_dir).expanduser()
    metrics_path = folder / f"{prefix}metrics.json"
    if not metrics_path.is_file():
        raise ReportError(f"{folder}: no {metrics_path.name}; run the evaluate workflow first")
    results = json.loads(metrics_path.read_text())
    threshold = float(results.get("summary", {}).get("threshold", 0.5))
    volume_threshold = float(results.get("summary", {}).get("volume_threshold", threshold))
    per_case = _read_csv(folder / f"{prefix}per_case.csv")
    slices = _read_csv(folder / f"{prefix}slice_predictions.csv")
    if not per_case:
        raise ReportError(f"{folder}: no {prefix}per_case.csv")
    figures_dir = folder / FIGURES_DIR
    figure_list: list[tuple[str, str]] = []
    intervals: dict[str, dict[str, float]] = {}

    def add(path: Path, caption: str) -> None:
        figure_list.append((f"{FIGURES_DIR}/{path.name}", caption))

    levels = []
    slice_scores, slice_labels = _column(slices, "probability"), _column(slices, "label")
    if slice_scores is not None and slice_labels is not None:
        # slices of one volume are resampled together (a cluster bootstrap)
        slice_cases = [row["case_id"] for row in slices] if "case_id" in slices[0] else None
        levels.append(("slice", slice_labels, slice_scores, slice_cases))
    volume_scores = _column(per_case, "volume_score", "probability")
    volume_labels = _column(per_case, "volume_label", "label")
    if volume_scores is not None and volume_labels is not None:
        levels.append(("volume", volume_labels, volume_scores, None))
    for level, labels, scores, groups in levels:
        # the upstream model decides volumes on the maximum slice probability, with a threshold of its own
        level_threshold = volume_threshold if level == "volume" and slice_scores is not None else threshold
        stats = binary_metrics_with_ci(labels, scores, level_threshold, n_boot=n_boot, seed=seed, groups=groups)
        intervals.update({f"{level}_{name}": value for name, value in stats.items()})
        add(plot_roc_pr(labels, scores, level_threshold, figures_dir / f"{prefix}roc_pr_{level}.png",
                        f"{level} level", stats),
            f"ROC and precision-recall curves, {level} level, operating point at {level_threshold:g} (chosen on the "
            f"validation set unless set by hand); sensitivity / specificity at 0.5: "
            f"{_at(labels, scores, 0.5)}")
        add(plot_confusion(labels, scores, level_threshold, figures_dir / f"{prefix}confusion_{level}.png",
                           f"{level} level"), f"Confusion matrix, {level} level, threshold {level_threshold:g}")
    subtype_thresholds = results.get("summary", {}).get("subtype_thresholds", {})
    for name in SUBTYPES[1:]:  # the subtype head's outputs, decided at their stored thresholds (0.5 without)
        sub_scores, sub_labels = _column(per_case, f"p_{name}"), _column(per_case, f"label_{name}")
        if sub_scores is not None and sub_labels is not None:
            stats = binary_metrics_with_ci(sub_labels, sub_scores, float(subtype_thresholds.get(name, 0.5)),
                                           n_boot=n_boot, seed=seed)
            intervals.update({f"{name}_{k}": stats[k] for k in ("auroc", "sensitivity", "specificity")})
    dice = _column(per_case, "dice")
    if dice is None and any("dice" in r for r in per_case):
        dice = np.array([r["dice"] if isinstance(r.get("dice"), (int, float)) else np.nan for r in per_case])
    if dice is not None:
        intervals["dice"] = mean_with_ci(dice, n_boot=n_boot, seed=seed)
    true_ml, pred_ml = _column(per_case, "true_ml"), _column(per_case, "predicted_ml")
    if true_ml is not None and pred_ml is not None:
        labels = (true_ml > 0).astype(int)
        detected = (pred_ml > 0).astype(float)
        stats = binary_metrics_with_ci(labels, detected, 0.5, n_boot=n_boot, seed=seed)
        intervals.update({f"detection_{k}": stats[k] for k in ("sensitivity", "specificity")})
        add(plot_volume_scatter(true_ml, pred_ml, figures_dir / f"{prefix}lesion_volume.png",
                                "lesion volume per case", intervals.get("dice")),
            "Predicted against true lesion volume (mL), one point per case")
        add(plot_confusion(labels, detected, 0.5, figures_dir / f"{prefix}confusion_detection.png",
                           "detection (any predicted voxel)"), "Confusion matrix of detection (predicted volume > 0)")
    figure_list += [(f"{FIGURES_DIR}/{name}", caption) for name, caption in read_manifest(figures_dir)
                    if name.startswith(prefix) or not prefix]

    results["confidence_intervals"] = {"level": 0.95, "n_boot": n_boot, **intervals}
    atomic_write_text(metrics_path, json.dumps(results, indent=4) + "\n")
    rows = [{"metric": name, "value": v["value"], "95% CI low": v["ci_low"], "95% CI high": v["ci_high"]}
            for name, v in intervals.items()]
    rows += [{"metric": name, "value": value} for name, value in results.get("metrics", {}).items()
             if isinstance(value, (int, float)) and name not in intervals]
    summary = ", ".join(f"{k}: {v}" for k, v in results.get("summary", {}).items())
    report = write_html(folder / f"{prefix}report.html", f"SMART-Net evaluation: {folder.name}", rows, per_case,
                        figure_list, notes=[summary])
    _logger.info(f"report written to {report}")
    return report
