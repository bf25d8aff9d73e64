"""Ignite handler for inference: a DICOM SEG beside each mask whose input was a DICOM series
(``smartnet.dicom_seg``)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from monai.utils import min_version, optional_import

from ..data.dicom_reader import is_dicom_dir
from ..dicom_seg import DicomSegError, dicom_seg_available, write_dicom_seg
from .volume_rows import source_path

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")

__all__ = ["DicomSegWriter"]


class DicomSegWriter:
    """Write ``<output_dir>/<series folder>_seg.dcm`` for every inferred case read from a DICOM series folder.

    Args:
        output_dir: where the SEG objects go (beside the NIfTI masks).
        mask_key: output key of the binary mask in the input's geometry (after ``Invertd`` and thresholding):
            ``pred`` for the segmenter, ``pred_seg`` for the upstream.
        software_version: written into the SEG's algorithm identification and software versions.

    NIfTI inputs get no SEG. Without highdicom (the ``dicom`` extra) it says so once and writes nothing; a series a SEG
    cannot be built over is a warning naming it, and the other cases carry on (their NIfTI masks are written anyway).
    """

    def __init__(self, output_dir: str, mask_key: str = "pred", software_version: str = "") -> None:
        self.output_dir = Path(output_dir)
        self.mask_key = mask_key
        self.software_version = software_version
        self.logger = logging.getLogger("smartnet")
        self._warned = False
        self.written: list[Path] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        for item, output in zip(engine.state.batch, engine.state.output):
            folder = Path(source_path(item))
            if not folder.is_dir() or not is_dicom_dir(folder):
                continue
            if not dicom_seg_available():
                if not self._warned:
                    self.logger.warning("DICOM input: no DICOM SEG written, it needs highdicom (pip install highdicom)")
                    self._warned = True
                return
            mask = torch.as_tensor(output[self.mask_key]).detach().cpu().numpy()
            target = self.output_dir / f"{folder.name}_seg.dcm"
            try:
                self.written.append(write_dicom_seg(mask, folder, target, software_version=self.software_version))
            except DicomSegError as err:
                self.logger.warning(f"no DICOM SEG for {folder}: {err}")
                continue
            self.logger.info(f"DICOM SEG over {folder.name}: {target}")
