"""The errors the library raises for problems a user can fix; ``smartnet.guards`` turns them into a message and an
exit code.

Library code (networks, data, storage, checkpoints, handlers) raises one of these and never exits the process; the
bundle configs call the library through ``smartnet.guards``, and the ``smartnet`` command line catches them in one
place too. Each error says what is wrong and how to fix it in its message; ``heading`` names the kind of problem in
the printed line and ``exit_code`` is the process status: 2 for a bad input or setting found before any work, 1 for
work that failed (a write on a full disk, inputs that could not be inferred).

This module imports nothing from the package, so any module may import it.
"""

from __future__ import annotations

__all__ = [
    "error_in_chain",
    "SmartNetError",
    "SettingsError",
    "OutputError",
    "OutputWriteError",
    "CheckpointError",
    "UnsafeCheckpointError",
    "ResumeError",
    "TransferError",
    "DatalistError",
    "InferenceInputError",
    "DatasetProblems",
    "InferenceFailures",
]


class SmartNetError(Exception):
    """Base of the library's errors: a problem with the user's data, settings, files or disk, not a bug."""

    heading = "SMART-Net stopped"
    exit_code = 2


class SettingsError(SmartNetError, ValueError):
    """Bundle settings that cannot work together; the message lists every problem."""

    heading = "Settings that cannot work"


class OutputError(SmartNetError, OSError):
    """An output folder that cannot be used (not writable, not a folder, too little free space)."""

    heading = "Cannot use the output folder"


class OutputWriteError(SmartNetError, OSError):
    """A write that failed part-way (disk full, quota, permissions); the previous file, if any, is kept."""

    heading = "Write failed"
    exit_code = 1


class CheckpointError(SmartNetError, ValueError):
    """Trained weights that are missing, cannot be read, or were trained with other settings."""

    heading = "Cannot use the trained weights"


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that holds pickled Python objects other than tensors and plain containers (it could run code)."""


class ResumeError(CheckpointError):
    """A training state that cannot be resumed from (missing or unsafe ``last.pt``)."""

    heading = "Cannot resume"


class TransferError(SmartNetError, ValueError):
    """Pretrained weights that do not fit the network (the message lists the keys) or cannot be loaded."""

    heading = "Upstream weight transfer failed"


class DatalistError(SmartNetError, ValueError):
    """A dataset folder or datalist that cannot be used; the message lists every problem."""

    heading = "Dataset problem"


class InferenceInputError(DatalistError):
    """An inference source that does not exist or holds no image."""

    heading = "Inference input problem"


class DatasetProblems(SmartNetError):
    """Files of a datalist that fail validation: ``problems`` holds one line per problem, ``source`` names the data.

    Printed as a list, one problem a line, with how to re-check.
    """

    heading = "Dataset check failed"

    def __init__(self, problems: list[str], source: str) -> None:
        self.problems = list(problems)
        self.source = source
        lines = [f"{len(self.problems)} problem(s) in {source}"] + [f"  - {p}" for p in self.problems]
        lines.append("Fix the files (or run `smartnet validate <datalist>` to re-check) and start again.")
        super().__init__("\n".join(lines))


class InferenceFailures(SmartNetError):
    """Some inference inputs could not be read or inferred; the others were, and ``failures.json`` lists both."""

    heading = "Inference incomplete"
    exit_code = 1


def error_in_chain(err: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]):
    """The first exception of type ``kind`` among ``err`` and its causes / contexts, else None (libraries re-raise
    failures wrapped: torch.save's RuntimeError over an OSError, MONAI's transforms' RuntimeError over the original)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
