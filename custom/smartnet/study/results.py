"""The study's comparison: per-seed and per-arm tables (CSV, Markdown) and figures, from the arms' ``done.json``.

Columns (the bundles' own evaluation metrics, test split):

* ``volume_auroc``, ``sensitivity``, ``specificity``: the volume classifier's (cls arms) or, for upstream arms, the
  volume level of the upstream evaluation (a volume is positive when any slice is);
* ``dice``: the segmenter's mean Dice over haemorrhage volumes (seg arms) or the upstream seg head's Dice;
* ``slice_auroc``, ``slice_sensitivity``, ``slice_specificity``: the upstream slice classifier.

``results.csv`` holds the mean and sample sd over seeds (sd empty for one seed), ``results.md`` the same as
"mean ± sd", ``results_per_seed.csv`` every arm's own numbers.
"""

from __future__ import annotations

import io
import json
import math
import statistics
from pathlib import Path

from ..storage import atomic_write_csv, atomic_write_text
from .spec import Study

__all__ = ["METRICS", "SETTINGS", "collect_runs", "summarise", "write_results"]

METRICS = ("volume_auroc", "sensitivity", "specificity", "dice", "slice_auroc", "slice_sensitivity",
           "slice_specificity")
SETTINGS = ("stage", "variant", "consistency", "init", "operator")
_SOURCE = {  # table column -> the evaluation's metrics.json key, per stage
    "cls": {"volume_auroc": "auroc", "sensitivity": "sensitivity", "specificity": "specificity"},
    "seg": {"dice": "dice_mean"},
    "upstream": {"volume_auroc": "volume_auroc", "sensitivity": "volume_sensitivity",
                 "specificity": "volume_specificity", "dice": "dice", "slice_auroc": "slice_auroc",
                 "slice_sensitivity": "slice_sensitivity", "slice_specificity": "slice_specificity"},
}
_FIGURE_METRIC = {"upstream": "slice_auroc", "cls": "volume_auroc", "seg": "dice"}


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(float(value)) else None


def collect_runs(study: Study) -> list[dict]:
    """One row per finished arm, in the study's order: id, group, seed, settings and the METRICS columns."""
    rows = []
    for arm in study.arms:
        done = study.output_dir / "arms" / arm.id / "done.json"
        if not done.is_file():
            continue
        metrics = json.loads(done.read_text())["metrics"]
        row = {"arm": arm.id, "group": arm.group, "seed": arm.seed}
        row.update({k: getattr(arm, k) for k in SETTINGS})
        row.update({col: _number(metrics.get(key)) for col, key in _SOURCE[arm.stage].items()})
        rows.append(row)
    return rows


def summarise(runs: list[dict]) -> list[dict]:
    """Per group: settings, seeds, and ``<metric>_mean`` / ``<metric>_sd`` (sample sd; ``None`` for one seed)."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["group"], []).append(run)
    table = []
    for group, members in groups.items():
        row = {"arm": group, **{k: members[0][k] for k in SETTINGS},
               "seeds": " ".join(str(m["seed"]) for m in members)}
        for metric in METRICS:
            values = [m[metric] for m in members if m.get(metric) is not None]
            row[f"{metric}_mean"] = statistics.fmean(values) if values else None
            row[f"{metric}_sd"] = statistics.stdev(values) if len(values) > 1 else None
        table.append(row)
    return table


def _markdown(table: list[dict]) -> str:
    used = [m for m in METRICS if any(r[f"{m}_mean"] is not None for r in table)]
    head = ["arm", "seeds"] + used
    out = io.StringIO()
    out.write("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
    for row in table:
        cells = [row["arm"], row["seeds"]]
        for metric in used:
            mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
            cells.append("" if mean is None else f"{mean:.3f}" + ("" if sd is None else f" ± {sd:.3f}"))
        out.write("| " + " | ".join(cells) + " |\n")
    return out.getvalue()


def _csv(rows: list[dict]) -> list[dict]:
    return [{k: ("" if v is None else v) for k, v in r.items()} for r in rows]


def plot_comparison(table: list[dict], path: Path) -> Path | None:
    """Dot plot with sd error bars: slice AUROC (upstream), volume AUROC (cls), Dice (seg), one panel per stage
    present; 1000 px wide. ``None`` (nothing written) without matplotlib or rows."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    stages = [s for s in ("upstream", "cls", "seg") if any(r["stage"] == s for r in table)]
    if not stages:
        return None
    heights = [max(1, sum(r["stage"] == s for r in table)) for s in stages]
    dpi = 100
    fig, axes = plt.subplots(len(stages), 1, figsize=(10, (sum(heights) * 0.32 + 1.0 * len(stages) + 0.6)),
                             dpi=dpi, gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, stage in zip(axes[:, 0], stages):
        metric = _FIGURE_METRIC[stage]
        rows = [r for r in table if r["stage"] == stage]
        for y, row in enumerate(rows):
            mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
            if mean is not None:
                ax.errorbar(mean, y, xerr=sd if sd is not None else None, fmt="o", color="tab:blue", capsize=3)
                ax.annotate(f"{mean:.3f}", (mean, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
        ax.set_yticks(range(len(rows)), [r["arm"] for r in rows], fontsize=7)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.invert_yaxis()
        ax.set_xlim(0.0, 1.05)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel(f"{metric.replace('_', ' ')} (test split; mean ± sd over seeds)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fig.savefig(partial, dpi=dpi, format="png")
    plt.close(fig)
    partial.replace(path)
    return path


def tsne_panel(study: Study, path: Path) -> Path | None:
    """One t-SNE figure per initialisation side by side (first classifier arm of each init that has one in its
    evaluation report); ``None`` when there are none or matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.image as mpimg
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    chosen: dict[str, Path] = {}
    for arm in study.arms:
        if arm.stage != "cls" or arm.init in chosen:
            continue
        found = sorted((study.output_dir / "arms" / arm.id / "eval" / "evaluation" / "figures").glob("*tsne*.png"))
        if found and (study.output_dir / "arms" / arm.id / "done.json").is_file():
            chosen[arm.init] = found[0]
    if not chosen:
        return None
    fig, axes = plt.subplots(1, len(chosen), figsize=(5 * len(chosen), 5.3), dpi=100, squeeze=False)
    for ax, (init, image) in zip(axes[0], chosen.items()):
        ax.imshow(mpimg.imread(str(image)))
        ax.set_title(f"init: {init}", fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    partial = path.with_name(path.name + ".partial")
    fig.savefig(partial, dpi=100, format="png")
    plt.close(fig)
    partial.replace(path)
    return path


def write_results(study: Study) -> dict[str, Path]:
    """Write the tables and figures into the study's output folder; returns what was written."""
    out = study.output_dir
    runs = collect_runs(study)
    table = summarise(runs)
    written = {}
    atomic_write_csv(out / "results_per_seed.csv", _csv(runs) or [{"arm": ""}])
    atomic_write_csv(out / "results.csv", _csv(table) or [{"arm": ""}])
    atomic_write_text(out / "results.md", f"# Study {study.name}: test-split metrics, mean ± sd over seeds\n\n"
                      + _markdown(table))
    written.update({"table": out / "results.md", "csv": out / "results.csv", "per seed": out / "results_per_seed.csv"})
    figure = plot_comparison(table, out / "comparison.png")
    if figure:
        written["figure"] = figure
    panel = tsne_panel(study, out / "tsne_by_init.png")
    if panel:
        written["t-SNE"] = panel
    return written
