"""Read a CT DICOM series folder as one HU volume with its exact geometry: gantry tilt and uneven slice spacing.

MONAI's ITK reader (GDCM series helper) splits a series whose slices differ in thickness into several "series",
and builds its affine from the slice normal and the distance between the first two slices, which is wrong for a
gantry-tilted acquisition (the slices are stacked along the table, not along their normal) and for uneven spacing.
Here every file is read (ITK/GDCM, rescale slope/intercept applied, so values are HU), the slices are ordered by
their position along the normal, and the affine's slice column is the measured step between slice positions, so a
tilted series gets a sheared affine that puts every voxel at its true position (as dcm2niix or 3D Slicer do).

Uneven spacing cannot be written as one affine. ``uneven_spacing="resample"`` (default) interpolates linearly along
the stacking direction onto a regular grid with the series' finest regular step (the smallest step that occurs at
least twice, so no acquired detail is lost; acquired slices that fall on the grid are kept exactly); ``"keep"`` keeps
the acquired slices and uses their mean step (approximate geometry in between, documented).
A gap that is a whole multiple of both neighbouring steps is a missing slice and an error, as are mixed series.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys

from ..errors import SmartNetError

__all__ = ["DicomSeriesError", "DicomSeries", "read_dicom_series", "is_dicom_file", "is_dicom_dir", "DicomSeriesReader"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
SPACING_TOLERANCE = 0.05  # relative: steps within 5 % are "the same spacing"
_logger = logging.getLogger("smartnet.dicom")


class DicomSeriesError(SmartNetError, ValueError):
    """A DICOM folder that is not one complete, consistent CT series; the message names the folder and the problem."""


@dataclass
class DicomSeries:
    """A series read as a volume.

    Attributes:
        array: ``(X, Y, Z)`` float32 HU; X along the rows of a slice (columns index), Y down the columns, Z the slices.
        affine: 4 x 4 voxel-to-world (RAS, mm) matrix, sheared for a tilted gantry.
        slice_positions: ``(N, 3)`` RAS positions (mm) of the first voxel of each acquired slice, in Z order.
        tilt_degrees: angle between the slice normal and the stacking direction (0 without gantry tilt).
        resampled: True when uneven spacing was resampled onto a regular grid.
        notes: human-readable remarks (uneven spacing, tilt) for logs.
    """

    array: np.ndarray
    affine: np.ndarray
    slice_positions: np.ndarray
    tilt_degrees: float
    resampled: bool = False
    notes: list[str] = field(default_factory=list)


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True for a ``*.dcm`` file or a file with the DICOM preamble (``DICM`` at byte 128)."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_dir(path: str | os.PathLike) -> bool:
    """True for a folder holding at least one DICOM file (see ``is_dicom_file``)."""
    path = Path(path)
    return path.is_dir() and any(is_dicom_file(p) for p in path.iterdir())


def _floats(value: str | None, n: int, tag: str, path: Path) -> np.ndarray:
    try:
        numbers = np.array([float(v) for v in str(value).strip().split("\\")], dtype=float)
    except ValueError:
        numbers = np.array([])
    if numbers.size != n:
        raise DicomSeriesError(f"{path}: tag {tag} should hold {n} numbers, got {value!r}")
    return numbers


def _read_slice(path: Path) -> dict[str, Any]:
    import itk

    try:
        image = itk.imread(str(path), itk.F)  # GDCM applies rescale slope / intercept: HU as float
    except Exception as err:  # noqa: BLE001 - any GDCM failure is a problem of this file
        raise DicomSeriesError(
            f"{path}: not a readable DICOM image ({str(err).strip().splitlines()[-1][:200]})"
        ) from None
    tags = image.GetMetaDataDictionary()

    def tag(key: str) -> str | None:
        return str(tags[key]).strip() if tags.HasKey(key) else None

    pixels = np.asarray(itk.array_from_image(image), dtype=np.float32)
    if pixels.ndim == 3:
        if pixels.shape[0] != 1:
            raise DicomSeriesError(f"{path}: a multi-frame file ({pixels.shape[0]} frames); export single-frame slices")
        pixels = pixels[0]
    for key, name in (("0020|0032", "ImagePositionPatient"), ("0020|0037", "ImageOrientationPatient")):
        if tag(key) is None:
            raise DicomSeriesError(f"{path}: no {name} ({key}); cannot place the slice in space")
    spacing = tag("0028|0030")
    return {
        "path": path,
        "series": tag("0020|000e") or "?",
        "instance": int(float(tag("0020|0013"))) if tag("0020|0013") else None,
        "position": _floats(tag("0020|0032"), 3, "ImagePositionPatient", path),
        "orientation": _floats(tag("0020|0037"), 6, "ImageOrientationPatient", path),
        "spacing": _floats(spacing, 2, "PixelSpacing", path) if spacing else np.array(itk.spacing(image))[:2][::-1],
        "pixels": pixels,  # (rows, columns)
    }


def _check_one_series(slices: list[dict], folder: Path) -> None:
    by_series: dict[str, list[Path]] = {}
    for s in slices:
        by_series.setdefault(s["series"], []).append(s["path"])
    if len(by_series) > 1:
        listed = "; ".join(f"{uid} ({len(paths)} files, e.g. {paths[0].name})" for uid, paths in by_series.items())
        raise DicomSeriesError(
            f"{folder}: mixed series, {len(by_series)} SeriesInstanceUIDs in one folder: {listed}. "
            "Put each series in its own folder."
        )
    first = slices[0]
    for s in slices[1:]:
        if s["pixels"].shape != first["pixels"].shape:
            raise DicomSeriesError(
                f"{folder}: slices differ in size ({first['path'].name} {first['pixels'].shape}, "
                f"{s['path'].name} {s['pixels'].shape})"
            )
        if not np.allclose(s["orientation"], first["orientation"], atol=1e-4):
            raise DicomSeriesError(f"{folder}: slices differ in orientation ({first['path'].name}, {s['path'].name})")
        if not np.allclose(s["spacing"], first["spacing"], rtol=1e-3):
            raise DicomSeriesError(f"{folder}: slices differ in pixel spacing ({first['path'].name}, {s['path'].name})")


def _check_steps(steps: np.ndarray, slices: list[dict], folder: Path) -> None:
    """Errors for duplicate positions and for a gap that is a whole multiple (>= 2) of both neighbouring steps."""
    for i, step in enumerate(steps):
        if step < 1e-3:
            raise DicomSeriesError(
                f"{folder}: two slices at the same position ({slices[i]['path'].name}, {slices[i + 1]['path'].name})"
            )
    for i in range(1, len(steps) - 1):
        before, gap, after = steps[i - 1], steps[i], steps[i + 1]
        ratio = gap / before
        if abs(before - after) <= SPACING_TOLERANCE * before and ratio > 1.5 and abs(ratio - round(ratio)) < 0.1:
            missing = int(round(ratio)) - 1
            a, b = slices[i], slices[i + 1]
            numbers = f", instance numbers {a['instance']} -> {b['instance']}" if a["instance"] is not None else ""
            raise DicomSeriesError(
                f"{folder}: {missing} slice(s) missing between {a['path'].name} and {b['path'].name} "
                f"(gap {gap:.2f} mm where the series steps {before:.2f} mm{numbers})"
            )


def _describe_steps(steps: np.ndarray) -> str:
    runs: list[list[float]] = []
    for step in steps:
        if runs and abs(step - runs[-1][0]) <= SPACING_TOLERANCE * runs[-1][0]:
            runs[-1].append(step)
        else:
            runs.append([step])
    return ", ".join(f"{len(r)} x {np.mean(r):.2f} mm" for r in runs)


def _resample_slices(volume: np.ndarray, offsets: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of ``volume`` (X, Y, N) sampled at ``offsets`` (N, mm, increasing) onto a grid from
    ``offsets[0]`` with ``step``; returns the new volume and the grid offsets."""
    count = int(np.rint((offsets[-1] - offsets[0]) / step)) + 1  # the last point is at most step / 2 past the end
    grid = offsets[0] + step * np.arange(count)
    upper = np.clip(np.searchsorted(offsets, grid, side="right"), 1, len(offsets) - 1)
    lower = upper - 1
    weight = ((grid - offsets[lower]) / (offsets[upper] - offsets[lower])).clip(0.0, 1.0).astype(np.float32)
    exact = np.isclose(grid[:, None], offsets[None, :], atol=1e-3)
    out = volume[:, :, lower] * (1.0 - weight) + volume[:, :, upper] * weight
    for k, j in zip(*np.nonzero(exact)):
        out[:, :, k] = volume[:, :, j]  # acquired slices that lie on the grid are kept exactly
    return out.astype(np.float32), grid


def read_dicom_series(folder: str | os.PathLike, uneven_spacing: str = "resample") -> DicomSeries:
    """Read the CT series in ``folder`` (one series, single-frame slices) as a HU volume with its true geometry.

    Args:
        folder: a folder of DICOM files (``*.dcm`` or files with the DICOM preamble).
        uneven_spacing: ``"resample"`` (regular grid at the finest regular step) or ``"keep"`` (acquired slices, mean
            step in the affine).

    Raises:
        DicomSeriesError: no DICOM files, unreadable files, mixed series, inconsistent slices, duplicate positions,
            a missing slice.
    """
    if uneven_spacing not in ("resample", "keep"):
        raise ValueError(f"uneven_spacing must be 'resample' or 'keep', got {uneven_spacing!r}")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DicomSeriesError(f"{folder}: DICOM series folder does not exist")
    files = sorted(p for p in folder.iterdir() if is_dicom_file(p))
    if not files:
        raise DicomSeriesError(f"{folder}: no DICOM files (*.dcm or files with the DICOM preamble)")
    slices = [_read_slice(p) for p in files]
    _check_one_series(slices, folder)
    if len(slices) < 2:
        raise DicomSeriesError(f"{folder}: only one slice; a head CT volume needs a series of axial slices")
    row_dir, col_dir = slices[0]["orientation"][:3], slices[0]["orientation"][3:]
    normal = np.cross(row_dir, col_dir)
    slices.sort(key=lambda s: float(np.dot(s["position"], normal)))
    positions = np.stack([s["position"] for s in slices])  # (N, 3) LPS mm
    along = (positions - positions[0]) @ normal  # distance along the slice normal
    steps = np.diff(along)
    _check_steps(steps, slices, folder)
    stack_dir = (positions[-1] - positions[0]) / np.linalg.norm(positions[-1] - positions[0])
    tilt = float(np.degrees(np.arccos(np.clip(abs(np.dot(stack_dir, normal)), -1.0, 1.0))))
    # (X, Y, N): x runs along a row (row_dir, column spacing), y down a column (col_dir, row spacing)
    volume = np.stack([s["pixels"].T for s in slices], axis=-1).astype(np.float32)
    row_spacing, col_spacing = slices[0]["spacing"]
    offsets = np.linalg.norm(positions - positions[0], axis=1)  # distance along the stacking direction
    notes = []
    if tilt > 0.1:
        notes.append(f"gantry tilt {tilt:.1f} degrees (sheared affine, no resampling)")
    uneven = len(steps) > 1 and (steps.max() - steps.min()) > SPACING_TOLERANCE * np.median(steps)
    resampled = False
    if uneven:
        values, counts = np.unique(np.round(np.diff(offsets), 2), return_counts=True)
        repeated = values[counts >= 2]  # a regular part of the series, not a one-off transition gap
        common = float(repeated.min() if repeated.size else np.median(np.diff(offsets)))
        if uneven_spacing == "resample":
            volume, offsets_grid = _resample_slices(volume, offsets, common)
            step_length, resampled = common, True
            notes.append(
                f"uneven slice spacing ({_describe_steps(steps)}); resampled to {volume.shape[-1]} slices every "
                f"{common:.2f} mm along the acquisition"
            )
        else:
            step_length = float(offsets[-1] / (len(offsets) - 1))
            notes.append(
                f"uneven slice spacing ({_describe_steps(steps)}); acquired slices kept, the affine uses the mean step "
                f"{step_length:.2f} mm (positions in between are approximate)"
            )
    else:
        step_length = float(offsets[-1] / (len(offsets) - 1))
    lps = np.eye(4)
    lps[:3, 0] = row_dir * col_spacing
    lps[:3, 1] = col_dir * row_spacing
    lps[:3, 2] = stack_dir * step_length
    lps[:3, 3] = positions[0]
    ras_positions = positions * np.array([-1.0, -1.0, 1.0])
    return DicomSeries(volume, _LPS_TO_RAS @ lps, ras_positions, tilt, resampled, notes)


class DicomSeriesReader(ImageReader):
    """MONAI ``ImageReader`` for a CT series folder with ``read_dicom_series`` (gantry tilt, uneven spacing).

    Use it through ``smartnet.transforms.LoadCTd`` (DICOM folders with this reader, files with MONAI's defaults) or
    ``LoadImage(reader=DicomSeriesReader())``. Metadata: ``affine`` / ``original_affine`` (RAS), ``spatial_shape``,
    ``gantry_tilt_degrees``, ``slices_resampled``.
    """

    def __init__(self, uneven_spacing: str = "resample") -> None:
        super().__init__()
        self.uneven_spacing = uneven_spacing

    def verify_suffix(self, filename: Sequence[os.PathLike] | os.PathLike) -> bool:
        names = filename if isinstance(filename, (list, tuple)) else [filename]
        return len(names) == 1 and is_dicom_dir(names[0])

    def read(self, data: Sequence[os.PathLike] | os.PathLike, **kwargs) -> DicomSeries:
        names = data if isinstance(data, (list, tuple)) else [data]
        if len(names) != 1:
            raise ValueError("DicomSeriesReader reads one series folder at a time")
        series = read_dicom_series(names[0], self.uneven_spacing)
        for note in series.notes:
            _logger.info(f"{names[0]}: {note}")
        return series

    def get_data(self, img: DicomSeries) -> tuple[np.ndarray, dict]:
        meta = {
            MetaKeys.AFFINE: img.affine.copy(),
            MetaKeys.ORIGINAL_AFFINE: img.affine.copy(),
            MetaKeys.SPATIAL_SHAPE: np.asarray(img.array.shape),
            MetaKeys.SPACE: SpaceKeys.RAS,
            MetaKeys.ORIGINAL_CHANNEL_DIM: "no_channel",
            "gantry_tilt_degrees": img.tilt_degrees,
            "slices_resampled": img.resampled,
        }
        return img.array, meta
