"""Batch inference inputs: find them, screen each one, carry on past bad files and account for every input.

A bad input (unreadable, not 3D, not HU, a broken DICOM series) is logged with its problem and left out; the good
ones are inferred. ``finish`` writes ``<output_dir>/failures.json`` (machine-readable: inputs, succeeded, failed with
case, path and problem), prints the summary and raises ``InferenceFailures`` when anything failed (exit 1 through
``smartnet.guards``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from ..errors import DatalistError, InferenceFailures, InferenceInputError
from ..storage import atomic_write_text
from .datalist import find_images
from .validation import check_image, inspect_file

__all__ = ["InferenceInputs", "FAILURES_FILE"]

FAILURES_FILE = "failures.json"


class InferenceInputs:
    """The inputs of one batch-inference run.

    Args:
        source: a NIfTI file, a DICOM series folder, a folder of them, or a datalist JSON (``split_key`` list).
        output_dir: where ``failures.json`` is written.
        split_key: the datalist list to read when ``source`` is a JSON file.
    """

    def __init__(self, source: str | os.PathLike, output_dir: str | os.PathLike, split_key: str = "test") -> None:
        self.source = source
        self.output_dir = Path(output_dir).expanduser()
        self.split_key = split_key
        self.found: list[dict] = []
        self.good: list[dict] = []
        self.failed: list[dict] = []
        self.logger = logging.getLogger("smartnet.inputs")

    def screen(self) -> list[dict]:
        """The inputs that load and look like head CT in HU; the others are recorded as failures.

        Raises:
            InferenceInputError: the source is missing or holds no image.
            InferenceFailures: no input is usable (after writing ``failures.json``).
        """
        try:
            self.found = find_images(self.source, self.split_key)
        except DatalistError as err:
            raise InferenceInputError(str(err)) from None
        self.good, self.failed = [], []
        for number, entry in enumerate(self.found, start=1):
            loaded, problems = inspect_file(entry["image"], "image")
            if loaded is not None:
                problems += check_image(loaded[0], entry["image"])
            if problems:
                problem = "; ".join(p.split(": ", 1)[-1] if p.startswith(entry["image"]) else p for p in problems)
                self.failed.append({"case_id": entry["case_id"], "image": entry["image"], "problem": problem})
                self.logger.error(f"[{number}/{len(self.found)}] skipped {entry['image']}: {problem}")
            else:
                self.good.append(entry)
                self.logger.info(f"[{number}/{len(self.found)}] ok {entry['case_id']}")
        if not self.good:
            self.finish()
        return self.good

    def summary(self) -> dict:
        """Counts and failures as written to ``failures.json``."""
        return {
            "source": str(self.source),
            "inputs": len(self.found),
            "succeeded": len(self.good),
            "failed": self.failed,
        }

    def finish(self) -> bool:
        """Write ``failures.json`` and print the summary; True when every input was inferred.

        Raises:
            InferenceFailures: some input failed (the good ones are inferred; ``failures.json`` lists both).
        """
        atomic_write_text(self.output_dir / FAILURES_FILE, json.dumps(self.summary(), indent=4) + "\n")
        line = f"Inference: {len(self.good)} of {len(self.found)} input(s) done, {len(self.failed)} failed"
        print(line, file=sys.stderr if self.failed else sys.stdout)
        for failure in self.failed:
            print(f"  - {failure['image']}: {failure['problem']}", file=sys.stderr)
        if self.failed:
            raise InferenceFailures(f"{len(self.failed)} input(s) failed, listed in {self.output_dir / FAILURES_FILE}")
        return True
