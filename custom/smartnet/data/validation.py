"""Dataset validation: every problem of a datalist at once, each naming its file, before any training starts.

Checks per entry: the files exist and load (corrupt, truncated, empty or absurd-size files and broken DICOM series are
named, never a traceback); the image is 3D, finite and plausibly in HU (air near -1000, not
unsigned 0..4095 raw values, not an already windowed 0..1 image); the mask is binary and has the image's shape and
affine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from .datalist import DatalistError, load_datalist
from .dicom_reader import DicomSeriesError, is_dicom_dir
from .loader import CTImageLoader

__all__ = [
    "check_image",
    "inspect_file",
    "read_problem",
    "validate_entries",
    "validate_datalist",
    "validate_splits",
]

AFFINE_TOLERANCE_MM = 1e-3
MAX_VOXELS = 2**31  # 8 GB as float32: no head CT comes near (512 x 512 x 1000 is 2.6e8)


def _load(path: str):
    """Load with SMART-Net's loader (NIfTI via nibabel, DICOM folders via ``read_dicom_series``): (array, affine)."""
    img = CTImageLoader(image_only=True)(path)
    return np.asarray(img), np.asarray(img.affine)


def _nifti_header_problem(path: Path) -> str | None:
    """A problem visible from a NIfTI header alone (empty, truncated, absurd size), before any voxel is read."""
    import nibabel as nib

    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    try:
        image = nib.load(str(path))
    except Exception as err:  # noqa: BLE001 - nibabel raises many types for a broken file
        return read_problem(err)
    shape = tuple(int(n) for n in image.header.get_data_shape())
    voxels = int(np.prod(shape, dtype=np.float64)) if shape else 0
    if voxels > MAX_VOXELS:
        gigabytes = voxels * 4 / 1e9
        return (
            f"header claims shape {shape} = {voxels:.3g} voxels ({gigabytes:.3g} GB as float32), far more than any "
            "head CT: the header is corrupt"
        )
    if path.name.endswith(".nii"):
        needed = int(image.header["vox_offset"]) + voxels * image.header.get_data_dtype().itemsize
        if size < needed:
            return f"truncated: the header needs {needed} bytes, the file has {size}"
    return None


def read_problem(err: BaseException) -> str:
    """A one-line description of why a file could not be read, without a traceback."""
    import gzip
    import zlib

    if isinstance(err, DicomSeriesError):
        return str(err).split(": ", 1)[-1]
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    if isinstance(err, EOFError) or "end-of-stream" in text or "ended before" in text:
        return "truncated file (the compressed data ends early)"
    if isinstance(err, (gzip.BadGzipFile, zlib.error)) or "gzip" in text.lower():
        return f"not a valid gzip-compressed NIfTI (corrupt file or not an image: {text[:120]})"
    if isinstance(err, MemoryError):
        return "too large to load (the header may be corrupt)"
    return f"cannot be read as an image ({type(err).__name__}: {text[:200]})"


def inspect_file(path: str, role: str = "image") -> tuple[tuple[np.ndarray, np.ndarray] | None, list[str]]:
    """Load one image or mask for checking: ``((array, affine) or None, problems)``; each problem names ``path``.

    Covers a missing path, an empty or folder-without-images input, corrupt, truncated or absurd-size NIfTI files and
    broken DICOM series; the HU plausibility of images is ``check_image``'s job.
    """
    file = Path(path)
    if not file.exists():
        return None, [f"{path}: {role} file does not exist"]
    if file.is_dir() and not is_dicom_dir(file):
        return None, [f"{path}: folder with no DICOM files (*.dcm or files with the DICOM preamble)"]
    if file.is_file() and re.search(r"\.nii(\.gz)?$", file.name):
        problem = _nifti_header_problem(file)
        if problem:
            return None, [f"{path}: {problem}"]
    try:
        return _load(path), []
    except Exception as err:  # noqa: BLE001 - any reader failure is a problem of this file
        return None, [f"{path}: {read_problem(err)}"]


MIN_TISSUE_HU = -200.0  # above this a voxel is tissue, fluid or bone (fat is about -100 HU)
MIN_TISSUE_FRACTION = 1e-3  # a head CT has far more: the head fills a good part of the field of view


def check_image(array: np.ndarray, name: str) -> list[str]:
    """Problems of an image array that should hold a 3D head CT in HU (an empty list when it looks right)."""
    problems = []
    if array.ndim != 3:
        problems.append(f"{name}: expected a 3D image, got shape {tuple(array.shape)}")
        return problems
    if not np.isfinite(array).all():
        problems.append(f"{name}: {int((~np.isfinite(array)).sum())} NaN/Inf voxels")
        return problems
    lo, hi = float(np.min(array)), float(np.max(array))
    if hi <= 1.0 and lo >= -1.0:
        problems.append(f"{name}: values in [{lo:.3g}, {hi:.3g}] look already windowed or normalised, not HU")
    elif lo >= 0 and hi > 1000:
        problems.append(
            f"{name}: values in [{lo:.0f}, {hi:.0f}] look like unsigned raw scanner values without the rescale "
            "slope/intercept (air should be near -1000 HU)"
        )
    elif lo > -500:
        problems.append(f"{name}: minimum {lo:.0f} HU; a head CT has air near -1000 HU, so this is not HU")
    if not problems:
        tissue = int(np.count_nonzero(array > MIN_TISSUE_HU))
        if tissue < max(10, MIN_TISSUE_FRACTION * array.size):
            problems.append(f"{name}: no tissue: {tissue} of {array.size} voxels above {MIN_TISSUE_HU:.0f} HU "
                            "(an air-only volume has nothing to assess)")
    return problems


def validate_entries(entries: Iterable[dict], require_label: bool = True) -> list[str]:
    """All problems of datalist entries (``image``, optional ``label``) as ``"<path>: <problem>"`` strings."""
    problems: list[str] = []
    for entry in entries:
        image_path = entry.get("image")
        if not image_path:
            problems.append(f"{entry}: entry has no 'image'")
            continue
        label_path = entry.get("label")
        if require_label and not label_path:
            problems.append(f"{image_path}: no 'label' (mask) given")
        image = label = None
        for path, role in ((image_path, "image"), (label_path, "label")):
            if not path:
                continue
            loaded, file_problems = inspect_file(path, role)
            problems += file_problems
            if loaded is None:
                continue
            if role == "image":
                image_problems = check_image(loaded[0], path)
                problems += image_problems
                image = None if image_problems and loaded[0].ndim != 3 else loaded
            else:
                label = loaded
        if label is not None:
            values = np.unique(label[0])
            if not np.isin(values, (0, 1)).all():
                shown = ", ".join(f"{v:g}" for v in values[:6])
                problems.append(f"{label_path}: mask is not binary (values {shown}{' ...' if len(values) > 6 else ''})")
            if image is not None:
                if image[0].shape != label[0].shape:
                    problems.append(
                        f"{label_path}: mask shape {tuple(label[0].shape)} differs from image shape "
                        f"{tuple(image[0].shape)} ({image_path})"
                    )
                elif not np.allclose(image[1], label[1], atol=AFFINE_TOLERANCE_MM):
                    problems.append(f"{label_path}: mask affine differs from the image affine ({image_path})")
    return problems


def validate_datalist(datalist: str | os.PathLike, keys: tuple[str, ...] = ("training", "validation")) -> list[str]:
    """Problems of the given splits of a datalist JSON; masks are required in each of them."""
    problems: list[str] = []
    for key in keys:
        try:
            entries = load_datalist(datalist, key)
        except DatalistError as err:
            problems.append(str(err))
            continue
        if not entries:
            problems.append(f"{datalist}: the {key!r} list is empty")
        problems += validate_entries(entries, require_label=key != "test")
    return problems


def validate_splits(splits: dict) -> list[str]:
    """Every problem of the entries a training will use, ``{split: [{"image", "label"}, ...]}`` (masks required).

    Unlike ``validate_datalist`` it checks what the config's datasets really hold, so lists injected by other tools
    (MONAI Label's ``train#dataset#data``) are checked too. An empty list is a problem.
    """
    problems: list[str] = []
    for split, entries in splits.items():
        if not entries:
            problems.append(f"the {split!r} list is empty")
        problems += validate_entries(entries or [], require_label=True)
    return problems
