"""A single static ``report.html``: metric tables (with confidence intervals), per-case table and the figures."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Sequence

from ..storage import atomic_write_text

__all__ = ["STYLE", "table", "write_html"]

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0 2em; } figcaption { font-size: 0.9em; color: #555; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def table(rows: Sequence[dict]) -> str:
    if not rows:
        return "<p>(none)</p>"
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(
    path: Path,
    title: str,
    metric_rows: Sequence[dict],
    per_case: Sequence[dict],
    figures: Sequence[tuple[str, str]],
    notes: Sequence[str] = (),
) -> Path:
    """Write ``path`` (atomically). ``figures``: ``(file name relative to path's folder, caption)``."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    parts += ["<h2>Metrics (95% bootstrap confidence intervals)</h2>", table(metric_rows)]
    parts += ["<h2>Figures</h2>"]
    for name, caption in figures:
        parts.append(f"<figure><img src='{html.escape(name)}' alt='{html.escape(caption)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts += [f"<h2>Per case ({len(per_case)})</h2>", table(per_case), "</body></html>"]
    atomic_write_text(path, "\n".join(parts) + "\n")
    return Path(path)
