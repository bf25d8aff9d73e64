"""Keep the process locale across ITK/GDCM calls.

GDCM's DICOM writer sets the C library locale to "C" and leaves it so; in a Python process that is not in UTF-8 mode
every later ``open()`` without an explicit encoding then reads and writes ASCII (torch.compile's own template files
fail to load, for one). ``kept_locale()`` restores whatever locale was set before.
"""

from __future__ import annotations

import locale
from contextlib import contextmanager
from typing import Iterator

__all__ = ["kept_locale"]


@contextmanager
def kept_locale() -> Iterator[None]:
    """Run the block, then put every locale category back as it was."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        try:
            locale.setlocale(locale.LC_ALL, saved)
        except locale.Error:  # pragma: no cover - a locale that cannot be set again: leave it
            pass
