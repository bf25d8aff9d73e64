"""Test helper: write a volume as a DICOM CT series (one file per axial slice, via ITK/GDCM), so that the tests
exercise the bundles' DICOM-folder inputs without any real patient data. Test code: not part of the package.

GDCM's DICOM writer sets the C library locale to "C" and leaves it so; in a Python process that is not in UTF-8 mode
every later ``open()`` without an explicit encoding then reads and writes ASCII (torch.compile's own template files
fail to load, for one). ``kept_locale()`` restores whatever locale was set before.
"""

from __future__ import annotations

import locale
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["kept_locale", "write_dicom_series"]


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


_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def write_dicom_series(
    image: np.ndarray,
    affine: np.ndarray,
    folder: str | Path,
    uid_root: str = "1.2.826.0.1.3680043.8.498",
    rescale_intercept: float | None = 0.0,
    file_prefix: str = "slice",
) -> list[Path]:
    """Write ``image`` (x, y, z) in HU with its NIfTI-style RAS ``affine`` (4 x 4, mm) as a CT series in ``folder``.

    Each slice ``k`` becomes ``folder/<file_prefix>_<k>.dcm`` (int16 stored values = HU - ``rescale_intercept``, slope
    1; ``rescale_intercept=None`` writes no rescale tags, as raw scanner values without calibration) with the position,
    orientation and pixel spacing taken from the affine. MONAI's ITK reader returns the same voxels in world space (rows
    are flipped where needed so that the series' slice normal, row x column, points along the slice order).
    Returns the written paths.
    """
    import itk

    volume = np.asarray(image)
    if volume.ndim != 3:
        raise ValueError(f"expected a 3D (x, y, z) volume, got shape {volume.shape}")
    lps = _RAS_TO_LPS @ np.asarray(affine, dtype=float)
    if np.dot(np.cross(lps[:3, 0], lps[:3, 1]), lps[:3, 2]) < 0:
        # DICOM readers order slices along row x column; flip the rows so that order is the slice order
        volume = volume[:, ::-1, :]
        lps = lps @ np.array([[1, 0, 0, 0], [0, -1, 0, volume.shape[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    col_step, row_step = lps[:3, 0], lps[:3, 1]  # along x (columns of a slice), along y (rows)
    orientation = np.concatenate([col_step / np.linalg.norm(col_step), row_step / np.linalg.norm(row_step)])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study, series = f"{uid_root}.1", f"{uid_root}.1.2"
    paths = []
    for k in range(volume.shape[2]):
        # GDCM stores (value - intercept) when the rescale tags are set, so the pixels given here are HU
        pixels = np.ascontiguousarray(np.clip(np.rint(volume[:, :, k].T), -32768, 32767).astype(np.int16))
        slice_image = itk.image_from_array(pixels)
        slice_image.SetSpacing([float(np.linalg.norm(col_step)), float(np.linalg.norm(row_step))])
        position = lps @ np.array([0.0, 0.0, k, 1.0])
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0020|000d": study,
            "0020|000e": series,
            "0020|0052": f"{uid_root}.1.3",  # Frame of Reference (a DICOM SEG over the series references it)
            "0008|0018": f"{series}.{k + 1}",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in position[:3]),
            "0020|0037": "\\".join(f"{v:.6f}" for v in orientation),
            "0028|0030": f"{np.linalg.norm(row_step):.6f}\\{np.linalg.norm(col_step):.6f}",
            "0018|0050": f"{np.linalg.norm(lps[:3, 2]):.6f}",
        }
        if rescale_intercept is not None:
            tags["0028|1052"] = f"{rescale_intercept:g}"
            tags["0028|1053"] = "1"
        metadata = slice_image.GetMetaDataDictionary()
        for key, value in tags.items():
            metadata[key] = value
        image_io = itk.GDCMImageIO.New()
        image_io.KeepOriginalUIDOn()
        path = folder / f"{file_prefix}_{k:04d}.dcm"
        writer = itk.ImageFileWriter[type(slice_image)].New(Input=slice_image, FileName=str(path), ImageIO=image_io)
        with kept_locale():  # GDCM's writer leaves the process in the "C" locale
            writer.Update()
        paths.append(path)
    return paths
