"""Prediction writers of the inference workflows (no masks known).

``SliceProbabilityWriter`` (upstream) writes per-slice ICH probabilities of inferred volumes to CSV and JSON. It
reads ``pred_cls`` from each output: the slice-probability channel already brought back to the input's geometry
(``Invertd``), constant over each axial plane. The axial axis is the one whose affine column points most along
superior-inferior, so slice indices are those of the input file as stored.

``VolumePredictionWriter`` (downstream bundles) writes ``predictions.csv`` and ``predictions.json``: per case the
probability and decision (classifier; with the subtype head also ``p_<subtype>`` and ``decision_<subtype>``, the
probability of each subtype and the decision at its threshold) or the lesion volume in mL of the written mask
(segmenter, measured in the original image geometry), and for the segmenter ``findings.json`` / ``findings.csv``: each
connected lesion of the mask with its volume (mL), ABC/2, largest axial diameter (mm), slice range, key slice and side
(``smartnet.findings``; parts under ``min_finding_ml`` are not listed, their volume per case is ``unlisted_ml`` in the
predictions), and ``findings.html`` with each lesion's key image (``findings/<case>_lesion<k>.png``,
``smartnet.reports.finding_images``; the image is read again from the input, so that it shows the input's own pixels in
HU). Given the volume classifier's ``predictions.json`` of the same inputs (``classifier_predictions``), the findings
carry each scan's haemorrhage and subtype probabilities from it (scan-level: the classifier decides per scan, not per
lesion).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import min_version, optional_import

from ..errors import SettingsError
from ..findings import axial_axis, label_lesions
from ..operating_point import subtype_thresholds_or_default
from ..reports.finding_images import write_findings_html, write_key_images
from ..storage import atomic_write_csv, atomic_write_text
from ..vocabulary import SUBTYPES
from ..transforms.io import LoadCTd
from .collector import Collector
from .volume_rows import PerVolumeRows, affine_of, source_path, subtype_columns, voxel_volume_ml

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["SliceProbabilityWriter", "VolumePredictionWriter", "axial_axis", "read_classifier_predictions"]

FINDING_COLUMNS = ["case_id", "lesion", "voxels", "volume_ml", "abc2_ml", "max_axial_diameter_mm", "first_slice",
                   "last_slice", "largest_slice", "side", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]


class SliceProbabilityWriter(Collector):
    """Write ``slice_probabilities.csv`` (case_id, slice_index, probability, decision) and ``volume_scores.json``.

    Args:
        output_dir: destination folder (created).
        threshold: decision threshold on the slice probability.
        volume_threshold: decision threshold on the volume score, the maximum over slices (default: ``threshold``).
    """

    def __init__(self, output_dir: str, threshold: float = 0.5, volume_threshold: float | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.threshold = threshold
        self.volume_threshold = threshold if volume_threshold is None else volume_threshold
        self.logger = logging.getLogger(self.__class__.__name__)
        self.rows: list[dict[str, Any]] = []
        self.volumes: list[dict[str, Any]] = []

    def _reset(self, engine: Engine) -> None:
        self.rows, self.volumes = [], []

    def _collect(self, engine: Engine) -> None:
        for b, o in zip(engine.state.batch, engine.state.output):
            prob_map = o["pred_cls"]
            affine = prob_map.affine if hasattr(prob_map, "affine") else np.eye(4)
            axis = axial_axis(np.asarray(affine))
            volume = torch.as_tensor(prob_map)[0]  # (X, Y, Z) in the input's array order
            other = tuple(a for a in range(3) if a != axis)
            probs = volume.double().amax(dim=other).cpu().numpy()
            case = str(b.get("case_id", "?"))
            for z, p in enumerate(probs):
                self.rows.append(
                    {"case_id": case, "slice_index": z, "probability": round(float(p), 6),
                     "decision": int(p >= self.threshold)}
                )
            score = float(probs.max()) if len(probs) else float("nan")
            entry = {"case_id": case, "slices": len(probs), "volume_score": score,
                     "decision": int(score >= self.volume_threshold)}
            if "lesion_ml" in o:
                entry["lesion_ml"] = float(o["lesion_ml"])
            self.volumes.append(entry)
            self.logger.info(f"{case}: max slice probability {score:.3f} over {len(probs)} slices")

    def _finish(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_csv(self.output_dir / "slice_probabilities.csv", self.rows)
        body = {"threshold": self.threshold, "volume_threshold": self.volume_threshold, "volumes": self.volumes}
        atomic_write_text(self.output_dir / "volume_scores.json", json.dumps(body, indent=4) + "\n")
        self.logger.info(f"wrote slice probabilities of {len(self.volumes)} volume(s) to {self.output_dir}")


def read_classifier_predictions(path: str | Path) -> dict[str, Any]:
    """``{"source", "threshold", "cases": {case_id: {"probability", "decision", "p_<subtype>"...}}}`` from a volume
    classifier's ``predictions.json`` (``path`` the file or its folder).

    Raises:
        SettingsError: no such file, or a file without a classifier's per-volume probabilities.
    """
    source = Path(path).expanduser()
    if source.is_dir():
        source = source / "predictions.json"
    try:
        body = json.loads(source.read_text())
        rows = body["volumes"]
        cases = {str(r["case_id"]): {k: v for k, v in r.items() if k in ("probability", "decision")
                                     or k.startswith(("p_", "decision_"))} for r in rows}
        if any("probability" not in c for c in cases.values()):
            raise KeyError("probability")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SettingsError(f"classifier_predictions {source}: not a volume classifier's predictions.json "
                         f"(smartnet_down_cls inference output): {err!r}") from err
    return {"source": str(source), "threshold": body.get("threshold"), "cases": cases}


class VolumePredictionWriter(PerVolumeRows):
    """Per-volume inference results (``predictions.csv`` / ``.json``); see the module docstring.

    Args:
        output_dir: folder for the files (created).
        task: "cls" (probability, decision) or "seg" (lesion volume in mL of the binary ``pred`` mask, which should
            already be in the original image geometry, e.g. after ``Invertd``).
        threshold: decision threshold on the volume probability (classifier).
        key_images: segmenter: write ``findings.html`` with a key image per lesion.
        min_finding_ml: segmenter: connected parts of the mask smaller than this (mL) are not listed as findings
            (the voxel-sized fragments at a resampled mask's edge); the mask keeps them.
        classifier_predictions: segmenter: the volume classifier's ``predictions.json`` (or the folder holding it)
            of the same inputs, or ``""``; its probabilities per scan go into ``findings.json`` / ``findings.html``.
        subtype_thresholds: classifier: ``{subtype: threshold}`` of the subtype decisions (a subtype not named: 0.5).

    Raises:
        SettingsError: a negative ``min_finding_ml``, or a ``classifier_predictions`` that is not a classifier's
            predictions file.
        uneven_spacing: how the inference read its inputs (``uneven_slice_spacing``), to read them again the same way
            for the key images.
    """

    def __init__(self, output_dir: str, task: str, threshold: float = 0.5, key_images: bool = True,
                 uneven_spacing: str = "resample", min_finding_ml: float = 0.0,
                 classifier_predictions: str = "", subtype_thresholds: dict[str, float] | None = None) -> None:
        super().__init__(output_dir, task, threshold)
        self.subtype_thresholds = subtype_thresholds_or_default(subtype_thresholds)
        if not min_finding_ml >= 0.0:
            raise SettingsError(f"min_finding_ml is a volume in mL, 0 or more, got {min_finding_ml}")
        self.classifier = read_classifier_predictions(classifier_predictions) if classifier_predictions else None
        self.key_images = key_images
        self.min_finding_ml = float(min_finding_ml)
        # re-reads inputs for the key images: the segmenter with key images only
        self.loader = LoadCTd(keys="image", uneven_spacing=uneven_spacing) if task == "seg" and key_images else None
        self.findings: list[dict[str, Any]] = []
        self.images: dict[tuple[str, int], str] = {}

    def _reset(self, engine: Engine) -> None:
        super()._reset(engine)
        self.findings, self.images = [], {}

    def _write_key_images(self, item: dict, case: str, labels: np.ndarray, lesions: list, affine: np.ndarray) -> None:
        """Key images of ``lesions`` over the input read again in HU; a warning (no images) when that fails."""
        source = source_path(item)
        try:
            image = torch.as_tensor(self.loader({"image": source})["image"])[0].float().cpu().numpy()
            written = write_key_images(self.output_dir, case, image, labels, lesions, affine, axial_axis(affine))
        except (OSError, RuntimeError, ValueError) as err:
            self.logger.warning(f"{case}: no key images of its findings ({err})")
            return
        self.images.update({(case, lesion): name for lesion, name in written.items()})

    def _collect(self, engine: Engine) -> None:
        for item, output in zip(engine.state.batch, engine.state.output):
            row: dict[str, Any] = {"case_id": str(item.get("case_id", "?")), "image": source_path(item)}
            if self.task == "cls":
                prob = float(torch.as_tensor(output["pred"]).double().flatten()[0])
                row.update(probability=prob, decision=int(prob >= self.threshold))
                probabilities = subtype_columns(output, "pred_subtypes", "")
                row.update({f"p_{name}": p for name, p in probabilities.items()})
                row.update({f"decision_{name}": int(p >= self.subtype_thresholds[name])
                            for name, p in probabilities.items()})
            else:
                pred = torch.as_tensor(output["pred"]) > 0.5
                voxels = int(pred.sum())
                affine = affine_of(item, output, first="pred")
                world = np.asarray(torch.as_tensor(affine, dtype=torch.float64))
                voxel_ml = voxel_volume_ml(affine)
                min_voxels = max(1, math.ceil(self.min_finding_ml / voxel_ml - 1e-9))
                labels, lesions = label_lesions(pred.cpu().numpy(), world, min_voxels=min_voxels)
                unlisted = voxels - sum(f.voxels for f in lesions)
                row.update(lesion_voxels=voxels, lesion_ml=voxels * voxel_ml, decision=int(voxels > 0),
                           lesions=len(lesions), unlisted_ml=unlisted * voxel_ml)
                self.findings.extend({"case_id": row["case_id"], **f.as_dict()} for f in lesions)
                if self.key_images and lesions:
                    self._write_key_images(item, row["case_id"], labels, lesions, world)
            self.rows.append(row)
            self.logger.info(", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))

    def _finish(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_csv(self.output_dir / "predictions.csv", self.rows)
        payload: dict[str, Any] = {"threshold": self.threshold, "volumes": self.rows}
        if self.task == "cls" and any(f"p_{SUBTYPES[1]}" in row for row in self.rows):
            payload = {"threshold": self.threshold, "subtype_thresholds": self.subtype_thresholds, "volumes": self.rows}
        atomic_write_text(self.output_dir / "predictions.json", json.dumps(payload, indent=4) + "\n")
        if self.task == "seg":
            by_case: dict[str, list] = {row["case_id"]: [] for row in self.rows}
            for finding in self.findings:
                by_case[finding["case_id"]].append({k: v for k, v in finding.items() if k != "case_id"})
            payload = {"cases": by_case}
            if self.classifier is not None:
                payload["classifier"] = {"source": self.classifier["source"], "threshold": self.classifier["threshold"],
                                         "cases": {case: self.classifier["cases"][case] for case in by_case
                                                   if case in self.classifier["cases"]}}
            atomic_write_text(self.output_dir / "findings.json", json.dumps(payload, indent=4) + "\n")
            flat = [{**{k: v for k, v in f.items() if k != "centroid_mm"},
                     **dict(zip(("centroid_x_mm", "centroid_y_mm", "centroid_z_mm"), f["centroid_mm"]))}
                    for f in self.findings]
            atomic_write_csv(self.output_dir / "findings.csv", flat, columns=FINDING_COLUMNS)
            if self.key_images:
                unlisted = {row["case_id"]: row["unlisted_ml"] for row in self.rows}
                write_findings_html(self.output_dir / "findings.html", by_case, self.images, unlisted,
                                    payload.get("classifier", {}).get("cases"),
                                    notes=[f"{len(self.rows)} scan(s), {len(self.findings)} lesion(s) of "
                                           f"{self.min_finding_ml:g} mL or more."])
        self.logger.info(f"{len(self.rows)} volume result(s) written to {self.output_dir}")
