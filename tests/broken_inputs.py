"""A corpus of broken inputs, generated on the fly: each case is a datalist entry and a phrase its problem must contain.

Nothing here is real data: every image is a small synthetic head CT (``make_volume``) or bytes made up by the test.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import nibabel as nib
import numpy as np

from dicom_series import write_dicom_series
from smartnet.data import make_volume

AFFINE = np.diag([0.9, 0.9, 5.0, 1.0])


def _save(array: np.ndarray, path: Path, affine: np.ndarray = AFFINE, dtype=np.int16) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(array).astype(dtype), affine), str(path))
    return path


def good_volume(seed: int = 0, size: int = 32, depth: int = 6):
    """A small synthetic head CT with a bleed: ``.image`` (HU) and ``.mask``."""
    return make_volume(np.random.default_rng(seed), True, size=size, depth=depth)


def write_good_case(folder: Path, case: str, seed: int = 0) -> dict:
    """A valid ``<case>_img.nii.gz`` / ``<case>_mask.nii.gz`` pair; returns its datalist entry."""
    volume = good_volume(seed)
    folder.mkdir(parents=True, exist_ok=True)
    image = _save(volume.image, folder / f"{case}_img.nii.gz")
    mask = _save(volume.mask, folder / f"{case}_mask.nii.gz", dtype=np.uint8)
    return {"image": str(image), "label": str(mask)}


def make_broken_corpus(folder: Path) -> dict[str, tuple[dict, str]]:
    """Write every broken case under ``folder``; returns ``{name: (entry, expected phrase)}``.

    Entries hold ``image`` and, where the case is about the mask, ``label`` (a good mask otherwise).
    """
    folder.mkdir(parents=True, exist_ok=True)
    volume = good_volume()
    good_mask = _save(volume.mask, folder / "good_mask.nii.gz", dtype=np.uint8)
    good_image = _save(volume.image, folder / "good_img.nii.gz")
    cases: dict[str, tuple[dict, str]] = {}

    def add(name: str, image: Path | str, phrase: str, label: Path | str | None = good_mask) -> None:
        entry = {"image": str(image)}
        if label is not None:
            entry["label"] = str(label)
        cases[name] = (entry, phrase)

    full = good_image.read_bytes()
    truncated = folder / "truncated_img.nii.gz"
    truncated.write_bytes(full[: len(full) // 2])
    add("truncated_gzip", truncated, "truncated")

    random_bytes = folder / "random_img.nii.gz"
    random_bytes.write_bytes(np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    add("random_bytes", random_bytes, "not a valid gzip")

    empty = folder / "empty_img.nii.gz"
    empty.write_bytes(b"")
    add("empty_file", empty, "empty file")

    add("image_2d", _save(volume.image[:, :, 0], folder / "flat_img.nii.gz"), "expected a 3D image")
    add("image_4d", _save(np.stack([volume.image] * 2, -1), folder / "series4d_img.nii.gz"), "expected a 3D image")

    with_nan = volume.image.astype(np.float32)
    with_nan[3, 3, 1], with_nan[4, 4, 2] = np.nan, np.inf
    add("nan_inf", _save(with_nan, folder / "nan_img.nii.gz", dtype=np.float32), "NaN/Inf")

    add("raw_unsigned", _save(volume.image + 1024, folder / "raw_img.nii.gz"), "without the rescale")
    air = np.full(volume.image.shape, -1000, dtype=np.int16)
    air[0, 0, 0] = 30  # a stray voxel is not a head
    add("air_only", _save(air, folder / "air_img.nii.gz"), "no tissue")
    add("windowed_0_1", _save(np.clip(volume.image / 80.0, 0, 1), folder / "win_img.nii.gz", dtype=np.float32),
        "already windowed")

    labels = volume.mask.astype(np.uint8) * 2
    add("non_binary_mask", good_image, "not binary", _save(labels, folder / "twos_mask.nii.gz", dtype=np.uint8))
    add("shape_mismatch", good_image, "differs from image shape",
        _save(volume.mask[:, :, :-1], folder / "short_mask.nii.gz", dtype=np.uint8))
    shifted = AFFINE.copy()
    shifted[:3, 3] = (10.0, 0.0, 0.0)
    add("affine_mismatch", good_image, "affine differs",
        _save(volume.mask, folder / "shifted_mask.nii.gz", shifted, dtype=np.uint8))

    huge = _save(volume.image, folder / "huge_img.nii")  # uncompressed: patch dim[1..3] in the 348-byte header
    with open(huge, "r+b") as handle:
        handle.seek(40)
        handle.write(struct.pack("<8h", 3, 32767, 32767, 32767, 1, 1, 1, 1))
    add("huge_header", huge, "header claims shape")

    missing = folder / "dicom_missing_slice"
    paths = write_dicom_series(volume.image, AFFINE, missing)
    os.remove(paths[len(paths) // 2])
    add("dicom_missing_slice", missing, "missing between", label=None)

    mixed = folder / "dicom_mixed_series"
    write_dicom_series(volume.image, AFFINE, mixed, uid_root="1.2.826.0.1.3680043.8.498.11", file_prefix="a")
    write_dicom_series(volume.image, AFFINE, mixed, uid_root="1.2.826.0.1.3680043.8.498.22", file_prefix="b")
    add("dicom_mixed_series", mixed, "mixed series", label=None)

    add("nonexistent", folder / "no_such_img.nii.gz", "does not exist")

    no_images = folder / "no_images"
    no_images.mkdir()
    (no_images / "notes.txt").write_text("not an image\n")
    add("folder_without_images", no_images, "no DICOM files", label=None)
    return cases


def copy_case(entry: dict, destination: Path) -> Path:
    """Copy a corpus entry's image (file or DICOM folder) into ``destination``; returns the copy's path."""
    source = Path(entry["image"])
    target = destination / source.name
    if source.is_dir():
        shutil.copytree(source, target)
    elif source.exists():
        shutil.copy(source, target)
    return target
