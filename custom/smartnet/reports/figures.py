"""Report figures as PNG files (matplotlib, Agg backend): curves, confusion matrix, overlays, activation maps,
lesion-volume scatter and t-SNE. Each function writes one file of a fixed pixel size and returns its path."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "DPI",
    "plot_roc_pr",
    "plot_confusion",
    "plot_overlays",
    "plot_activation_maps",
    "plot_volume_scatter",
    "plot_tsne",
]

DPI = 100
CURVES_SIZE = (10.0, 4.6)  # inches: 1000 x 460 px
SQUARE_SIZE = (5.0, 5.0)  # 500 x 500 px
TILE = 2.6  # inches per montage tile


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial.png")
    fig.savefig(tmp, dpi=DPI)  # no bbox_inches: the pixel size stays what the figure size says
    _pyplot().close(fig)
    tmp.replace(path)
    return path


def _ci_text(entry: dict | None) -> str:
    if not entry or not np.isfinite(entry.get("ci_low", np.nan)):
        return ""
    return f" (95% CI {entry['ci_low']:.3f}-{entry['ci_high']:.3f})"


def _ci_short(entry: dict | None) -> str:
    if not entry or not np.isfinite(entry.get("ci_low", np.nan)):
        return ""
    return f" [{entry['ci_low']:.2f}-{entry['ci_high']:.2f}]"


def plot_roc_pr(
    labels: np.ndarray, scores: np.ndarray, threshold: float, path: Path, title: str, stats: dict | None = None
) -> Path:
    """ROC and precision-recall curves side by side, with AUROC / AP and the operating point's sensitivity and
    specificity, each with its 95 % CI when ``stats`` (``binary_metrics_with_ci``) holds one."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _pyplot()
    labels, scores = np.asarray(labels).astype(int), np.asarray(scores, dtype=float)
    stats = stats or {}
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=CURVES_SIZE)
    decided = scores >= threshold
    tpr_op = decided[labels == 1].mean() if (labels == 1).any() else np.nan
    fpr_op = decided[labels == 0].mean() if (labels == 0).any() else np.nan
    if 0 < labels.sum() < len(labels):
        fpr, tpr, _ = roc_curve(labels, scores)
        ax_roc.plot(fpr, tpr, lw=2, label=f"AUROC {stats.get('auroc', {}).get('value', np.nan):.3f}"
                    f"{_ci_text(stats.get('auroc'))}")
        precision, recall, _ = precision_recall_curve(labels, scores)
        ax_pr.step(recall, precision, where="post", lw=2,
                   label=f"AP {stats.get('average_precision', {}).get('value', np.nan):.3f}"
                   f"{_ci_text(stats.get('average_precision'))}")
        ax_pr.axhline(labels.mean(), color="grey", ls=":", label=f"prevalence {labels.mean():.2f}")
    else:
        ax_roc.text(0.5, 0.5, "needs both classes", ha="center")
    ax_roc.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax_roc.plot([fpr_op], [tpr_op], "o", color="crimson", label=f"threshold {threshold:g}: sens {tpr_op:.2f}"
                f"{_ci_short(stats.get('sensitivity'))}, spec {1 - fpr_op:.2f}{_ci_short(stats.get('specificity'))}")
    if decided.any():
        precision_op = labels[decided].mean()
        ax_pr.plot([tpr_op], [precision_op], "o", color="crimson", label=f"threshold {threshold:g}")
    ax_roc.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.02), title=f"ROC: {title}")
    ax_pr.set(xlabel="recall (sensitivity)", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"PR: {title}")
    for ax in (ax_roc, ax_pr):
        ax.legend(loc="lower right" if ax is ax_roc else "lower left", fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion(labels: np.ndarray, scores: np.ndarray, threshold: float, path: Path, title: str) -> Path:
    """Confusion matrix (counts and row percentages) at ``scores >= threshold``."""
    plt = _pyplot()
    labels = np.asarray(labels).astype(int)
    decided = (np.asarray(scores, dtype=float) >= threshold).astype(int)
    matrix = np.array([[np.sum((labels == t) & (decided == p)) for p in (0, 1)] for t in (0, 1)])
    fig, ax = plt.subplots(figsize=SQUARE_SIZE)
    ax.imshow(matrix, cmap="Blues")
    for t in (0, 1):
        for p in (0, 1):
            share = matrix[t, p] / max(matrix[t].sum(), 1) * 100
            ax.text(p, t, f"{matrix[t, p]}\n{share:.0f}%", ha="center", va="center",
                    color="white" if matrix[t, p] > matrix.max() / 2 else "black", fontsize=14)
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["no ICH", "ICH"], yticklabels=["no ICH", "ICH"],
           xlabel="predicted", ylabel="true", title=f"{title} at threshold {threshold:g}")
    fig.tight_layout()
    return _save(fig, path)


def plot_overlays(cases: Sequence[dict], path: Path, title: str) -> Path:
    """One tile per case: the CT slice (brain window, as given in [0, 1]) with the true contour in green and the
    predicted contour in red. ``cases``: ``{"title", "image" (H, W), "truth" (H, W), "pred" (H, W)}``."""
    plt = _pyplot()
    n = max(len(cases), 1)
    fig, axes = plt.subplots(1, n, figsize=(TILE * n, TILE + 0.4), squeeze=False)
    for ax, case in zip(axes[0], cases):
        ax.imshow(np.asarray(case["image"]).T, cmap="gray", vmin=0, vmax=1, origin="lower")
        for mask, colour in ((case["truth"], "lime"), (case["pred"], "red")):
            mask = np.asarray(mask, dtype=float).T
            if mask.any() and not mask.all():
                ax.contour(mask, levels=[0.5], colors=colour, linewidths=1.2, origin="lower")
        ax.set_title(case["title"], fontsize=7)
        ax.axis("off")
    for ax in axes[0][len(cases):]:
        ax.axis("off")
    fig.suptitle(f"{title} (green: truth, red: prediction)", fontsize=9)
    return _save(fig, path)


def plot_activation_maps(items: Sequence[dict], path: Path, title: str) -> Path:
    """Grad-CAM heat maps over CT slices. ``items``: ``{"title", "image" (H, W) in [0, 1], "cam" (H, W) in [0, 1]}``."""
    plt = _pyplot()
    n = max(len(items), 1)
    fig, axes = plt.subplots(1, n, figsize=(TILE * n, TILE + 0.4), squeeze=False)
    for ax, item in zip(axes[0], items):
        ax.imshow(np.asarray(item["image"]).T, cmap="gray", vmin=0, vmax=1, origin="lower")
        ax.imshow(np.asarray(item["cam"]).T, cmap="jet", alpha=0.4, vmin=0, vmax=1, origin="lower")
        ax.set_title(item["title"], fontsize=7)
        ax.axis("off")
    for ax in axes[0][len(items):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_volume_scatter(
    true_ml: np.ndarray, pred_ml: np.ndarray, path: Path, title: str, dice: dict | None = None
) -> Path:
    """Predicted against true lesion volume (mL) per case, with the identity line (and the mean Dice with its CI)."""
    plt = _pyplot()
    true_ml, pred_ml = np.asarray(true_ml, dtype=float), np.asarray(pred_ml, dtype=float)
    fig, ax = plt.subplots(figsize=SQUARE_SIZE)
    ax.scatter(true_ml, pred_ml, s=24, alpha=0.8)
    top = float(max(true_ml.max(initial=0), pred_ml.max(initial=0), 1e-3)) * 1.05
    ax.plot([0, top], [0, top], color="grey", ls="--", lw=1)
    if dice and np.isfinite(dice.get("value", np.nan)):
        title = f"{title}\nmean Dice {dice['value']:.3f}{_ci_text(dice)}"
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="true lesion volume (mL)", ylabel="predicted lesion volume (mL)",
           title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_tsne(features: np.ndarray, labels: np.ndarray, path: Path, title: str, seed: int = 0) -> Path:
    """t-SNE (scikit-learn) of ``features`` ``(N, F)`` in 2D, points coloured by label (0 no ICH, 1 ICH)."""
    from sklearn.manifold import TSNE

    plt = _pyplot()
    features, labels = np.asarray(features, dtype=np.float32), np.asarray(labels).astype(int)
    perplexity = float(min(30.0, max(2.0, (len(features) - 1) / 3.0)))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
    fig, ax = plt.subplots(figsize=SQUARE_SIZE)
    for value, name, colour in ((0, "no ICH", "tab:blue"), (1, "ICH", "tab:red")):
        chosen = labels == value
        ax.scatter(embedded[chosen, 0], embedded[chosen, 1], s=12, alpha=0.8, c=colour,
                   label=f"{name} ({chosen.sum()})")
    ax.legend(fontsize=8)
    ax.set(title=title, xticks=[], yticks=[])
    fig.tight_layout()
    return _save(fig, path)
