"""Shared by the per-volume result handlers (``VolumeEvaluationReport``, ``VolumePredictionWriter``): one row per
volume collected during an engine run and written at its end, gathered across ranks under torch.distributed; voxel
volumes in mL from the image affine (mm)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from monai.utils import min_version, optional_import

from ..vocabulary import DOWNSTREAM_TASKS, SUBTYPES
from .collector import Collector
from .distributed import gather_to_rank0

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["PerVolumeRows", "voxel_volume_ml", "affine_of", "source_path", "crop_depth", "gather_rows",
           "subtype_columns"]


def voxel_volume_ml(affine: Any) -> float:
    """Volume of one voxel in mL (cm^3) from a 4 x 4 affine in mm."""
    matrix = torch.as_tensor(affine, dtype=torch.float64)[:3, :3]
    return float(abs(torch.linalg.det(matrix))) / 1000.0


def affine_of(item: dict, output: dict, first: str = "image") -> Any:
    """The affine of the evaluated ``image`` (evaluation) or of the ``pred`` inverted to the input (inference)."""
    sources = (item.get("image"), output.get("pred")) if first == "image" else (output.get("pred"), item.get("image"))
    for source in sources:
        affine = getattr(source, "affine", None)
        if affine is not None:
            return affine
    raise ValueError("no affine on the prediction or the image: cannot convert voxels to mL")


def source_path(item: dict) -> str:
    meta = getattr(item.get("image"), "meta", None) or {}
    return str(meta.get("filename_or_obj", item.get("image_path", "")))


def crop_depth(x: torch.Tensor, item: dict) -> torch.Tensor:
    depth = item.get("depth")
    return x if depth is None else x[..., : int(torch.as_tensor(depth))]


def subtype_columns(output: dict, key: str, prefix: str) -> dict[str, float]:
    """``{"<prefix><subtype>": value}`` of the five subtype values in ``output[key]`` (``pred_subtypes`` or
    ``label_subtypes``); empty when the output has none (no subtype head)."""
    if key not in output:
        return {}
    values = torch.as_tensor(output[key]).double().flatten().tolist()
    return {f"{prefix}{name}": value for name, value in zip(SUBTYPES[1:], values)}


def gather_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """All ranks' rows on rank 0 (``None`` on other ranks), each case once; the rows as they are without DDP."""
    parts = gather_to_rank0(rows)
    if parts is None:
        return None
    merged, seen = [], set()
    for part in parts:
        for row in part:
            if row["case_id"] not in seen:  # a DistributedSampler may repeat a case to even out the ranks
                seen.add(row["case_id"])
                merged.append(row)
    return merged


def _check_task(task: str) -> str:
    if task not in DOWNSTREAM_TASKS:
        raise ValueError(f"task must be one of {DOWNSTREAM_TASKS}, got {task!r}")
    return task


class PerVolumeRows(Collector):
    """Collects one row per volume during an engine run (``_collect``) and writes them at its end (``_finish``)."""

    def __init__(self, output_dir: str, task: str, threshold: float = 0.5) -> None:
        self.output_dir = Path(output_dir)
        self.task = _check_task(task)
        self.threshold = threshold
        self.logger = logging.getLogger(self.__class__.__name__)
        self.rows: list[dict[str, Any]] = []

    def _reset(self, engine: Engine) -> None:
        self.rows = []

