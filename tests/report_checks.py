"""Checks shared by the report tests: PNG validity and size, that report.html references only existing files, and
an evaluation folder as the slice evaluation report writes it."""

from __future__ import annotations

import csv
import json
import re
import struct
from pathlib import Path

import numpy as np

CURVES = (1000, 460)
SQUARE = (500, 500)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file, checking its signature and IHDR chunk."""
    data = Path(path).read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def montage_size(tiles: int) -> tuple[int, int]:
    """Pixel size of an overlay or activation-map montage of ``tiles`` tiles (2.6 x 3.0 inches each, 100 dpi)."""
    return int(round(260 * tiles)), 300


def check_report(folder: Path, expected: dict[str, tuple[int, int]]) -> str:
    """Every expected figure is a valid PNG of its size, report.html shows exactly the figures in ``figures/`` and
    references only files that exist; returns the HTML."""
    for name, size in expected.items():
        assert png_size(folder / "figures" / name) == size, name
    html = (folder / "report.html").read_text()
    sources = re.findall(r"<img src='([^']+)'", html)
    assert all((folder / s).is_file() for s in sources), sources
    on_disk = sorted(p.name for p in (folder / "figures").glob("*.png"))
    assert sorted(Path(s).name for s in sources) == on_disk
    assert set(expected) <= set(on_disk), (expected, on_disk)
    return html


def write_slice_evaluation(folder: Path, labels: np.ndarray, scores: np.ndarray) -> None:
    """What SliceEvaluationReport writes for 20 cases of 4 slices (``labels``, ``scores``: 80 slices, case by case)."""
    folder.mkdir(parents=True)
    slices = [{"case_id": f"c{i // 4}", "slice_index": i % 4, "probability": float(s), "label": int(y)}
              for i, (y, s) in enumerate(zip(labels, scores))]
    cases = []
    for c in range(20):
        rows = slices[4 * c: 4 * c + 4]
        cases.append({"case_id": f"c{c}", "slices": 4, "positive_slices": sum(r["label"] for r in rows),
                      "volume_label": int(any(r["label"] for r in rows)),
                      "volume_score": max(r["probability"] for r in rows), "dice": 0.5 + 0.02 * c})
    for name, rows in (("slice_predictions.csv", slices), ("per_case.csv", cases)):
        with open(folder / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    metrics = {"metrics": {"slice_auroc": 0.0}, "summary": {"threshold": 0.5, "slices": 80, "volumes": 20}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
