"""Checkpoint handlers that include the engine they are attached to (for exact resume).

A bundle config cannot put ``@train#trainer`` into the ``save_dict`` / ``load_dict`` of a handler that the trainer
itself lists (a circular reference). These subclasses of MONAI's handlers add the engine under ``engine_key`` when
attached, so the trainer's epoch and iteration are saved and restored with the model, optimiser and scheduler.
"""

from __future__ import annotations

from pathlib import Path

from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.utils import min_version, optional_import

from ..checkpoints import load_checkpoint
from ..errors import OutputWriteError, ResumeError, UnsafeCheckpointError
from ..storage import describe_os_error, os_error_in

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["AtomicCheckpointSaver", "TrainingStateSaver", "TrainingStateLoader"]


class _AtomicDiskSaver(DiskSaver):
    """ignite's ``DiskSaver`` writing atomically (a temporary file in the same folder, renamed over the old one), with
    MONAI's fixed file name (``model.pt``, ``last.pt``), and a failed write (full disk, no permission) raised as an
    ``OutputWriteError``.

    A fixed-name file is never removed: ignite removes the previous item before it saves the next, so a failing save
    retried by the exception handler would otherwise delete the last good checkpoint; the atomic rename replaces it.
    The failed save has already removed its temporary file and kept the previous checkpoint, so the run can be
    resumed once there is space.
    """

    def __init__(self, dirname: str | Path, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, atomic=True, require_empty=False)
        self.filename = filename

    def __call__(self, checkpoint, filename: str, metadata=None) -> None:
        name = self.filename or filename
        try:
            super().__call__(checkpoint, name, metadata)
        except Exception as failure:  # torch.save turns a failed write into a RuntimeError about the zip position
            err = os_error_in(failure)
            if err is None:
                raise
            message = (
                f"cannot write checkpoint {self.dirname}/{name}: {describe_os_error(err)}. The previous "
                "checkpoint is kept; make space and resume with --resume true"
            )
            raise OutputWriteError(message) from None

    def remove(self, filename: str) -> None:
        if self.filename is None:
            super().remove(filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """``monai.handlers.CheckpointSaver`` whose files are written atomically and whose failed writes stop the run with
    one message naming the file (``_AtomicDiskSaver``). MONAI writes in place, so a crash during a save could leave a
    truncated ``model.pt``; here the old file stays. MONAI builds its savers inside ``CheckpointSaver.__init__``;
    each is replaced by an ``_AtomicDiskSaver`` for the same folder and file name."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                saver = checkpoint.save_handler
                checkpoint.save_handler = _AtomicDiskSaver(saver.dirname, getattr(saver, "filename", None))


class TrainingStateSaver(AtomicCheckpointSaver):
    """``monai.handlers.CheckpointSaver`` whose ``save_dict`` also holds the attached engine (``engine_key``)."""

    def __init__(self, save_dir: str, save_dict: dict, engine_key: str = "trainer", **kwargs) -> None:
        self._engine_key = engine_key
        super().__init__(save_dir=save_dir, save_dict=dict(save_dict), **kwargs)

    def attach(self, engine: Engine) -> None:
        self.save_dict[self._engine_key] = engine
        super().attach(engine)


class TrainingStateLoader(CheckpointLoader):
    """``monai.handlers.CheckpointLoader`` whose ``load_dict`` also restores the attached engine (``engine_key``)."""

    def __init__(self, load_path: str, load_dict: dict, engine_key: str = "trainer", **kwargs) -> None:
        self._engine_key = engine_key
        super().__init__(load_path=load_path, load_dict=dict(load_dict), **kwargs)

    def attach(self, engine: Engine) -> None:
        self.load_dict[self._engine_key] = engine
        super().attach(engine)

    def __call__(self, engine: Engine) -> None:
        """Refuse a missing checkpoint or one that carries pickled code (``ResumeError``), then resume."""
        try:
            load_checkpoint(self.load_path)
        except (UnsafeCheckpointError, FileNotFoundError) as err:
            raise ResumeError(str(err)) from None
        super().__call__(engine)
