"""Write a demo dataset folder: ``<root>/{train,valid,test}/<case>_{img,mask}.nii.gz`` plus ``datalist.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import nibabel as nib
import numpy as np

from .datalist import write_datalist
from .demo import ANATOMIES, GENERATOR_VERSION, HEMORRHAGE_KINDS, make_volume
from .subtypes import SUBTYPES_CSV, write_subtypes_csv

__all__ = ["DATASET_ANATOMIES", "settings_differing", "write_demo_dataset", "save_nifti"]

# a dataset's anatomy: one of make_volume's, or "mixed" (phantom and head volumes alternating within each class)
DATASET_ANATOMIES = ANATOMIES + ("mixed",)


def save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write a NIfTI atomically (temporary name, then rename), with the affine as both qform and sform (code 1)."""
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    tmp = path.with_name(".tmp_" + path.name)
    nib.save(img, tmp)
    os.replace(tmp, path)


def settings_differing(root: str | os.PathLike, **wanted: Any) -> dict[str, tuple[Any, Any]] | None:
    """``{setting: (written, wanted)}`` for each of ``wanted`` that the demo data in ``root`` were not written with,
    against their ``generator.json``; this generator's version and the defaults of ``write_demo_dataset``'s switches
    are always among the wanted. None when ``root`` holds no ``generator.json`` (data of the user's own)."""
    written = Path(root).expanduser() / "generator.json"
    if not written.is_file():
        return None
    settings = json.loads(written.read_text())
    wanted = {"generator_version": GENERATOR_VERSION, "anatomy": "phantom", "inner_table_band": False, **wanted}
    return {k: (settings.get(k), v) for k, v in wanted.items() if settings.get(k) != v}


def write_demo_dataset(
    root: str | os.PathLike,
    n_train: int = 16,
    n_valid: int = 6,
    n_test: int = 6,
    size: int = 512,
    depth: int | None = None,
    seed: int = 0,
    hemorrhage_fraction: float = 0.5,
    kinds: Sequence[str] = HEMORRHAGE_KINDS,
    verbose: bool = True,
    anatomy: str = "phantom",
    inner_table_band: bool = False,
) -> Path:
    """Generate synthetic head CT volumes (see ``smartnet.data.demo``) and their datalist; returns the datalist path.

    Half of each split (rounded up) has haemorrhage by default. ``kinds.json`` beside the datalist names the kinds of
    bleed drawn in each case (for Dice per kind) and ``subtypes.csv`` the same as subtype labels (the datalist's
    ``subtypes``), ``generator.json`` the settings that wrote the files. Case names
    are ``case0001_hemo`` / ``case0002_normal``. ``kinds`` restricts the haemorrhage kinds drawn; ``anatomy`` is
    ``phantom`` or ``head`` (see ``make_volume``), or ``mixed``: phantoms and heads alternating within the haemorrhage
    and the lesion-free cases of every split; ``inner_table_band`` draws the scanner's bright band along the inner
    table (see ``make_volume``). The same arguments always write the same files.
    """
    if anatomy not in DATASET_ANATOMIES:
        raise ValueError(f"anatomy must be one of {DATASET_ANATOMIES}, got {anatomy!r}")
    root = Path(root).expanduser()
    rng = np.random.default_rng(seed)
    index = 0
    kinds_of: dict[str, list[str]] = {}
    for split, count in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        n_hemo = int(np.ceil(count * hemorrhage_fraction))
        for i in range(count):
            index += 1
            hemo = i < n_hemo
            drawn_anatomy = anatomy if anatomy != "mixed" else ANATOMIES[(i if hemo else i - n_hemo) % 2]
            vol = make_volume(rng, hemo, size=size, depth=depth, kinds=kinds, anatomy=drawn_anatomy,
                              inner_table_band=inner_table_band)
            case = f"case{index:04d}_{'hemo' if hemo else 'normal'}"
            save_nifti(vol.image, vol.affine, folder / f"{case}_img.nii.gz")
            save_nifti(vol.mask, vol.affine, folder / f"{case}_mask.nii.gz")
            kinds_of[case] = list(vol.kinds)
            if verbose:
                drawn = ", ".join(vol.kinds) or "no haemorrhage"
                print(f"  {split}/{case}: {vol.image.shape}, {int(vol.mask.sum())} lesion voxels ({drawn})", flush=True)
    (root / "kinds.json").write_text(json.dumps(kinds_of, indent=4) + "\n")  # kinds of bleed per case
    write_subtypes_csv(root / SUBTYPES_CSV, kinds_of)  # the same as subtype labels for the datalist
    settings = {"generator_version": GENERATOR_VERSION, "anatomy": anatomy, "size": size, "depth": depth, "seed": seed,
                "inner_table_band": bool(inner_table_band), "kinds": list(kinds), "n_train": n_train,
                "n_valid": n_valid, "n_test": n_test, "hemorrhage_fraction": hemorrhage_fraction}
    (root / "generator.json").write_text(json.dumps(settings, indent=4) + "\n")  # what wrote these files
    return write_datalist(root)
