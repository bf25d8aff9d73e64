"""Checks shared by the report tests: PNG validity and size, and that report.html references only existing files."""

from __future__ import annotations

import re
import struct
from pathlib import Path

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
