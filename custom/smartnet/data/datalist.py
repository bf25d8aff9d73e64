"""MONAI datalists (``training`` / ``validation`` / ``test``) from a dataset folder.

Two layouts are understood, per split folder ``<root>/{train,valid,test}/``:

* NIfTI pairs (the original SMART-Net layout): ``<case>_img.nii[.gz]`` with ``<case>_mask.nii[.gz]``, paired by the
  case stem (never by sorting two lists). The mask is optional for the test split (inference needs none).
* DICOM series: one sub-folder per case holding ``*.dcm`` files or files with the DICOM preamble (read by
  ``smartnet.data.read_dicom_series``); an optional
  ``<case>_mask.nii[.gz]`` beside the folder gives its mask.

Paths in the datalist are relative to ``root``, so a dataset folder can be moved as a whole. A ``subtypes.csv`` in
``root`` (``smartnet.data.subtypes``) adds each case's haemorrhage subtypes (``"subtypes": ["ivh", "sdh"]``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import DatalistError
from .dicom_reader import is_dicom_dir
from .subtypes import SUBTYPES_CSV, read_subtypes_csv

__all__ = ["SPLITS", "DatalistError", "build_datalist", "write_datalist", "load_datalist", "case_id_of", "find_images"]

SPLITS = {"train": "training", "valid": "validation", "test": "test"}
_NIFTI = re.compile(r"^(?P<case>.+)_(?P<role>img|mask)\.nii(\.gz)?$")


def build_datalist(root: str | os.PathLike, require_masks: tuple[str, ...] = ("train", "valid")) -> dict:
    """Scan ``root/{train,valid,test}`` and return ``{"training": [...], "validation": [...], "test": [...]}``.

    Each entry is ``{"image": rel_path, "label": rel_path (if any), "case_id": case}``, plus ``"subtypes"`` (sorted
    codes) when ``root/subtypes.csv`` exists: then every case of the splits in ``require_masks`` needs a row (a
    missing row would silently read as "no subtype"), and every row a case.

    Raises:
        DatalistError: listing all problems at once (missing split folders, images without masks in splits that
            need them, masks without images, the same case twice, subtype rows without a case or cases without one).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatalistError(f"dataset folder does not exist: {root}")
    subtypes = read_subtypes_csv(root / SUBTYPES_CSV) if (root / SUBTYPES_CSV).is_file() else None
    problems: list[str] = []
    datalist: dict[str, list[dict]] = {}
    for split, key in SPLITS.items():
        folder = root / split
        if not folder.is_dir():
            problems.append(f"{folder}: missing split folder (expected {'/'.join(SPLITS)} under {root})")
            continue
        images: dict[str, Path] = {}
        masks: dict[str, Path] = {}
        for path in sorted(folder.iterdir()):
            match = _NIFTI.match(path.name)
            if match and path.is_file():
                table = images if match["role"] == "img" else masks
                if match["case"] in table:
                    problems.append(f"{path}: case {match['case']!r} appears twice ({table[match['case']].name})")
                table[match["case"]] = path
            elif is_dicom_dir(path):
                if path.name in images:
                    problems.append(f"{path}: case {path.name!r} appears twice")
                images[path.name] = path
        for case in sorted(set(masks) - set(images)):
            problems.append(f"{masks[case]}: mask without an image (expected {case}_img.nii.gz or a DICOM folder)")
        entries = []
        for case in sorted(images):
            entry = {"image": str(images[case].relative_to(root)), "case_id": case}
            if case in masks:
                entry["label"] = str(masks[case].relative_to(root))
            elif split in require_masks:
                problems.append(f"{images[case]}: no mask {case}_mask.nii.gz (required in {split}/)")
            if subtypes is not None and case in subtypes:
                entry["subtypes"] = subtypes[case]
            elif subtypes is not None and split in require_masks:
                problems.append(f"{images[case]}: no row in {root / SUBTYPES_CSV} (every {split}/ case needs one)")
            entries.append(entry)
        if not entries:
            problems.append(f"{folder}: no images (*_img.nii[.gz] or DICOM series folders)")
        datalist[key] = entries
    listed = {entry["case_id"] for entries in datalist.values() for entry in entries}
    for case in sorted(set(subtypes or {}) - listed):
        problems.append(f"{root / SUBTYPES_CSV}: case {case!r} has no image in {'/'.join(SPLITS)}")
    if problems:
        raise DatalistError(f"{len(problems)} problem(s) in {root}:\n" + "\n".join(f"  - {p}" for p in problems))
    return datalist


def write_datalist(root: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Build the datalist of ``root`` and write it as JSON (default ``root/datalist.json``); returns the path."""
    datalist = build_datalist(root)
    out = Path(output) if output else Path(root).expanduser() / "datalist.json"
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(datalist, indent=4) + "\n")
    os.replace(tmp, out)
    return out


def load_datalist(datalist_path: str | os.PathLike, key: str, base_dir: str | os.PathLike | None = None) -> list[dict]:
    """Entries of one split with absolute paths (relative ones are resolved against ``base_dir`` or the JSON's folder).

    Raises:
        DatalistError: when the file is missing, is not a datalist, or lacks the split.
    """
    path = Path(datalist_path).expanduser()
    if not path.is_file():
        raise DatalistError(
            f"datalist not found: {path}. Create one with `smartnet datalist <dataset_dir>` "
            "or the demo data with `smartnet demo-data <dataset_dir>`."
        )
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatalistError(f"{path}: not valid JSON ({err})") from None
    if key not in content:
        raise DatalistError(f"{path}: no {key!r} list (has {sorted(content)})")
    base = Path(base_dir).expanduser() if base_dir else path.parent
    entries = []
    for item in content[key]:
        entry = dict(item)
        for field in ("image", "label"):
            if field in entry and not os.path.isabs(entry[field]):
                entry[field] = str(base / entry[field])
        entry.setdefault("case_id", case_id_of(entry["image"]))
        entries.append(entry)
    return entries


def case_id_of(image_path: str) -> str:
    """Case identifier of an image path: the file name without ``_img`` and ``.nii[.gz]``, or the DICOM folder name."""
    name = Path(image_path.rstrip("/")).name
    name = re.sub(r"\.nii(\.gz)?$", "", name)
    return re.sub(r"_img$", "", name)


def find_images(source: str | os.PathLike, split_key: str = "test") -> list[dict]:
    """Inference inputs from ``source``: a NIfTI file, a DICOM series folder, a folder of them, or a datalist JSON.

    In a folder, ``*_mask.nii[.gz]`` files are ignored. Returns ``[{"image": abs_path, "case_id": ...}, ...]``.

    Raises:
        DatalistError: when the source does not exist or holds no image.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DatalistError(f"inference input does not exist: {path}")
    if path.is_file() and path.suffix == ".json":
        return [{"image": e["image"], "case_id": e["case_id"]} for e in load_datalist(path, split_key)]
    if path.is_file() or is_dicom_dir(path):
        return [{"image": str(path.resolve()), "case_id": case_id_of(str(path))}]
    found = []
    for item in sorted(path.iterdir()):
        is_nifti = item.is_file() and re.search(r"\.nii(\.gz)?$", item.name) and not _NIFTI_MASK.search(item.name)
        if is_nifti or is_dicom_dir(item):
            found.append({"image": str(item.resolve()), "case_id": case_id_of(str(item))})
    if not found:
        raise DatalistError(f"{path}: no NIfTI image (*.nii, *.nii.gz) or DICOM series folder found")
    return found


_NIFTI_MASK = re.compile(r"_mask\.nii(\.gz)?$")
