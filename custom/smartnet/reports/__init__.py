"""Evaluation reports: bootstrap confidence intervals, figures (curves, confusion, overlays, activation maps,
t-SNE, lesion volumes) and a static ``report.html``. Needs the ``report`` extra (matplotlib, scikit-learn)."""

from .build import FIGURES_DIR, MANIFEST, ReportError, build_report, require_report_extra
from .statistics import auroc, average_precision, binary_metrics_with_ci, bootstrap_ci, mean_with_ci

__all__ = [
    "FIGURES_DIR",
    "MANIFEST",
    "ReportError",
    "build_report",
    "require_report_extra",
    "auroc",
    "average_precision",
    "binary_metrics_with_ci",
    "bootstrap_ci",
    "mean_with_ci",
]
