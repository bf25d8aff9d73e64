"""Haemorrhage subtype labels per case: the ``subtypes.csv`` beside a dataset and the datalist's ``subtypes`` field.

``subtypes.csv`` has two columns, ``case_id`` and ``subtypes``: the case's kinds of bleed as short codes separated
by ``;`` (``sdh;ivh``; full names such as ``subdural`` are accepted too), empty for a case without haemorrhage::

    case_id,subtypes
    case0001_hemo,ivh;iph
    case0002_normal,

``smartnet datalist`` copies them into the datalist (``"subtypes": ["iph", "ivh"]``, codes sorted); the volume
classifier's subtype head (``subtypes: true``) trains on them. The codes and their order are those of
``smartnet.vocabulary.SUBTYPE_CODES`` / ``SUBTYPES``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..errors import DatalistError
from ..vocabulary import SUBTYPE_CODES, SUBTYPES

__all__ = ["SUBTYPES_CSV", "subtype_code", "read_subtypes_csv", "write_subtypes_csv", "subtype_vector"]

SUBTYPES_CSV = "subtypes.csv"
_CODE_OF = {**{code: code for code in SUBTYPE_CODES}, **{name: code for code, name in SUBTYPE_CODES.items()}}


def subtype_code(word: str) -> str:
    """The short code (``"sdh"``) of a code or full name (``"SDH"``, ``"subdural"``).

    Raises:
        ValueError: for a word that names no subtype.
    """
    code = _CODE_OF.get(str(word).strip().lower())
    if code is None:
        raise ValueError(f"unknown haemorrhage subtype {word!r}: use one of {sorted(SUBTYPE_CODES)} "
                         f"(or {sorted(SUBTYPE_CODES.values())})")
    return code


def read_subtypes_csv(path: str | os.PathLike) -> dict[str, list[str]]:
    """``{case_id: sorted codes}`` from a ``subtypes.csv`` (see the module docstring).

    Raises:
        DatalistError: listing every problem (missing columns, unknown subtypes, a case twice).
    """
    path = Path(path)
    problems: list[str] = []
    table: dict[str, list[str]] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"case_id", "subtypes"} <= set(reader.fieldnames):
            raise DatalistError(f"{path}: needs the columns case_id and subtypes (has {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            case = (row["case_id"] or "").strip()
            if not case:
                problems.append(f"{path}:{line}: empty case_id")
                continue
            if case in table:
                problems.append(f"{path}:{line}: case {case!r} appears twice")
            codes = set()
            for word in (row["subtypes"] or "").replace(",", ";").split(";"):
                if word.strip():
                    try:
                        codes.add(subtype_code(word))
                    except ValueError as err:
                        problems.append(f"{path}:{line}: {err}")
            table[case] = sorted(codes)
    if problems:
        raise DatalistError(f"{len(problems)} problem(s) in {path}:\n" + "\n".join(f"  - {p}" for p in problems))
    return table


def write_subtypes_csv(path: str | os.PathLike, kinds_of: Mapping[str, Iterable[str]]) -> Path:
    """Write ``subtypes.csv`` for ``{case_id: kinds}`` (codes or full names, repeats allowed); returns the path."""
    path = Path(path)
    lines = ["case_id,subtypes"]
    for case, kinds in kinds_of.items():
        lines.append(f"{case},{';'.join(sorted({subtype_code(k) for k in kinds}))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def subtype_vector(codes: Sequence[str]) -> list[float]:
    """Multi-hot ``[epidural, intraparenchymal, intraventricular, subarachnoid, subdural]`` (``SUBTYPES[1:]``) of a
    case's codes or names; "any" is not part of it (it comes from the mask)."""
    present = {SUBTYPE_CODES[subtype_code(c)] for c in codes}
    return [1.0 if name in present else 0.0 for name in SUBTYPES[1:]]
