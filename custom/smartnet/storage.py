"""Safe output: check a folder is writable (with free space) before work starts, and write files atomically.

Every result file is written to a temporary name in its destination folder and renamed when complete, so a crash
or a full disk never leaves a half-written file under the final name.
"""

from __future__ import annotations

import csv
import errno
import os
import shutil
import tempfile
from pathlib import Path

import torch
from monai.data import NibabelWriter

from .errors import OutputError, OutputWriteError, error_in_chain

__all__ = [
    "OutputError",
    "check_output_dir",
    "describe_os_error",
    "os_error_in",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_torch_save",
    "AtomicNibabelWriter",
]

NO_SPACE = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def _file_mode() -> int:
    """Permissions a plain ``open()`` would give a new file (0666 minus the umask); mkstemp's files are 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def describe_os_error(err: OSError) -> str:
    """One line for a failed write: says "no space left" for a full disk or quota, else the system's reason."""
    if err.errno in NO_SPACE:
        return "no space left on the device (disk full, file size limit or quota)"
    return err.strerror or str(err)


def os_error_in(err: BaseException) -> OSError | None:
    """The ``OSError`` behind ``err`` (itself, or its cause/context chain), e.g. under torch.save's RuntimeError."""
    return error_in_chain(err, OSError)


def check_output_dir(path: str | os.PathLike, min_free_mb: float = 100.0) -> Path:
    """Create ``path`` if needed and prove it is writable with at least ``min_free_mb`` MB free.

    Raises:
        OutputError: naming the folder and the reason.
    """
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write_check_") as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as err:
        raise OutputError(f"{folder}: cannot write here ({describe_os_error(err)})") from None
    free_mb = shutil.disk_usage(folder).free / 2**20
    if free_mb < min_free_mb:
        raise OutputError(
            f"{folder}: only {free_mb:.0f} MB free, at least {min_free_mb:.0f} MB are needed "
            "(free some space or choose another folder)"
        )
    return folder


def _replace_into(path: Path, write) -> None:
    """Run ``write(tmp_path)`` on a temporary file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    try:
        write(Path(tmp))
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, then rename)."""
    _replace_into(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a temporary name in the same folder, then renamed)."""
    _replace_into(Path(path), lambda tmp: tmp.write_bytes(data))


def atomic_write_csv(path: str | os.PathLike, rows: list[dict], columns: list[str] | None = None) -> None:
    """Write ``rows`` (dicts; ``columns`` first, then the others in order of first appearance) as CSV, atomically;
    with no rows the file holds the header of ``columns``."""
    fields: list[str] = list(columns or [])
    for row in rows:
        fields += [k for k in row if k not in fields]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    _replace_into(Path(path), write)


def atomic_torch_save(path: str | os.PathLike, obj: object) -> None:
    """``torch.save(obj, path)`` atomically (temporary file, then rename): a failed write keeps the old file."""
    _replace_into(Path(path), lambda tmp: torch.save(obj, tmp))


class AtomicNibabelWriter(NibabelWriter):
    """``monai.data.NibabelWriter`` that writes to a temporary ``.partial.nii.gz`` beside the target and renames it.

    Use as ``SaveImaged(writer=AtomicNibabelWriter)``. A failed write (full disk) removes the partial file and ends
    the run with one message naming the file (``OutputWriteError``).
    """

    def write(self, filename, verbose: bool = False, **obj_kwargs) -> None:
        target = Path(filename)
        suffix = "".join(target.suffixes[-2:]) if target.name.endswith(".nii.gz") else target.suffix
        parent = super()

        def write(tmp: Path) -> None:
            staged = tmp.with_name(tmp.name + suffix)  # nibabel picks the format from the suffix
            try:
                parent.write(str(staged), verbose=verbose, **obj_kwargs)
                os.replace(staged, tmp)
            finally:
                staged.unlink(missing_ok=True)

        try:
            _replace_into(target, write)
        except OSError as err:
            raise OutputWriteError(f"cannot write {target}: {describe_os_error(err)}") from None
