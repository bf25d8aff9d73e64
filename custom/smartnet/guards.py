"""The one place where a library error becomes a message and an exit code.

The library raises ``smartnet.errors.SmartNetError`` subclasses and never exits; the bundle configs call it through
these guards (``initialize`` checks, the datalists they load, ``run``), and the ``smartnet`` command line ends
through ``exit_with``. A guarded problem prints ``<heading>: <message>`` on stderr, without a traceback, and exits
with the error's status (2: bad input or settings, found before any work; 1: work that failed). Anything else, a
bug, keeps its traceback.

Config usage::

    "initialize": ["$@smartnet.guards.check_settings(encoder=@encoder, ...)",
                   "$@smartnet.guards.check_datalist(@datalist, ['training', 'validation'])"],
    "run": ["$@smartnet.guards.run(@train#trainer)"]
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NoReturn

from .checkpoints import check_inference_weights as _check_inference_weights
from .data.datalist import load_datalist as _load_datalist
from .data.validation import validate_datalist, validate_splits
from .errors import DatalistError, DatasetProblems, SmartNetError, error_in_chain
from .settings import check_settings as _check_settings
from .storage import check_output_dir as _check_output_dir

__all__ = [
    "exit_with",
    "exits_on_error",
    "library_error_in",
    "call",
    "run",
    "check_settings",
    "check_output_dir",
    "check_inference_weights",
    "check_datalist",
    "load_datalist",
    "check_entries",
]


def exit_with(err: SmartNetError | str, heading: str | None = None, code: int | None = None) -> NoReturn:
    """Print ``<heading>: <message>`` on stderr and exit with ``code`` (default: the error's own ``exit_code``).

    Args:
        err: a library error, or a message (then ``heading`` defaults to "error" and ``code`` to 1).
        heading: replaces the error's ``heading`` (e.g. naming which folder was checked).
        code: replaces the error's ``exit_code`` (the command line exits 1 for every refused command).
    """
    if isinstance(err, SmartNetError):
        heading = heading or err.heading
        code = err.exit_code if code is None else code
    else:
        heading = heading or "error"
        code = 1 if code is None else code
    sys.stdout.flush()
    print(f"{heading}: {err}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def library_error_in(err: BaseException) -> SmartNetError | None:
    """The ``SmartNetError`` that ``err`` is or wraps (MONAI's transforms re-raise a failure as a RuntimeError
    whose cause is the original), else None."""
    return error_in_chain(err, SmartNetError)


@contextmanager
def exits_on_error(heading: str | None = None, code: int | None = None) -> Iterator[None]:
    """Run the block; a ``SmartNetError`` raised (or wrapped) in it ends the process through ``exit_with``."""
    try:
        yield
    except Exception as err:
        found = library_error_in(err)
        if found is None:
            raise
        exit_with(found, heading, code)


def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, guarded: for config expressions such as ``@inputs.screen``."""
    with exits_on_error():
        return function(*args, **kwargs)


def run(engine: Any) -> Any:
    """``engine.run()``, guarded: a handler's error (a full disk, an unsafe checkpoint, weights that do not fit)
    ends the workflow with its message and exit code. Returns the engine's state."""
    with exits_on_error():
        return engine.run()


def check_settings(**values: Any) -> bool:
    """``smartnet.settings.check_settings``: every setting that cannot work, before anything is built (exit 2)."""
    with exits_on_error():
        _check_settings(**values)
    return True


def check_output_dir(path: str | os.PathLike, min_free_mb: float = 100.0, purpose: str = "output") -> bool:
    """``smartnet.storage.check_output_dir`` before any work; ``purpose`` names the folder in the message."""
    with exits_on_error(heading=f"Cannot use the {purpose} folder"):
        _check_output_dir(path, min_free_mb)
    return True


def check_inference_weights(
    path: str | os.PathLike, allow_random_weights: bool = False, settings: Any = None, purpose: str = "inference"
) -> bool:
    """``smartnet.checkpoints.check_inference_weights``: weights that exist, are safe and fit these settings."""
    with exits_on_error():
        return _check_inference_weights(path, allow_random_weights, settings, purpose)


def check_datalist(datalist: str | os.PathLike, keys: Iterable[str] = ("training", "validation")) -> bool:
    """Every file of the datalist's ``keys`` lists, validated before training; all problems at once (exit 2)."""
    problems = validate_datalist(Path(datalist).expanduser(), tuple(keys))
    if problems:
        exit_with(DatasetProblems(problems, str(datalist)))
    return True


def load_datalist(datalist: str | os.PathLike, key: str) -> list[dict]:
    """``smartnet.data.load_datalist`` for configs: a missing or malformed datalist exits 2 with its problem."""
    try:
        return _load_datalist(datalist, key)
    except DatalistError as err:
        exit_with(DatasetProblems([str(err)], str(datalist)))


def check_entries(splits: dict, source: str = "the training data") -> bool:
    """``smartnet.data.validation.validate_splits``: the entries a training will really use (exit 2 on problems)."""
    problems = validate_splits(splits)
    if problems:
        exit_with(DatasetProblems(problems, source))
    return True
