"""Ignite handler that chooses the classifier's decision threshold on every validation run."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from monai.utils import min_version, optional_import

from ..operating_point import OperatingPoint
from .collector import Collector

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["OperatingPointSelector"]


class OperatingPointSelector(Collector):
    """Collect validation probabilities and labels, then update ``operating_point`` at the end of the run.

    Attach it to the validation evaluator *before* the checkpoint saver, so that ``model.pt`` stores the threshold
    chosen on the same validation run as the weights it is saved with (``save_dict`` holds ``operating_point``).
    The chosen threshold and its validation sensitivity / specificity are also put into the engine's metrics
    (``val_threshold``, ``val_sensitivity_op``, ``val_specificity_op``) for the logs.

    Args:
        operating_point: the ``smartnet.operating_point.OperatingPoint`` to update.
        score_key: output key of the probability, one value per item (``cls_prob`` per slice upstream, ``pred``
            per volume for the volume classifier).
        label_key: output key of the label; any positive value counts as positive (a mask works as a slice label).
        group_key: batch key naming the volume of each item (``case_id``) for a slice model: a second threshold is
            then chosen on the per-volume maxima (``volume_threshold``). ``None``: items are volumes already.
        subtype_key, subtype_label_key: output keys of the subtype probabilities and labels (``(5,)`` per volume,
            ``pred_subtypes`` / ``label_subtypes``); when the outputs have them, a threshold per subtype is chosen
            too (``subtype_thresholds``).
    """

    def __init__(self, operating_point: OperatingPoint, score_key: str = "pred", label_key: str = "label",
                 group_key: str | None = None, subtype_key: str = "pred_subtypes",
                 subtype_label_key: str = "label_subtypes") -> None:
        self.operating_point = operating_point
        self.score_key = score_key
        self.label_key = label_key
        self.group_key = group_key
        self.subtype_key = subtype_key
        self.subtype_label_key = subtype_label_key
        self.scores: list[float] = []
        self.labels: list[int] = []
        self.groups: list[str] = []
        self.subtypes: list[tuple[list[float], list[float]]] = []
        self.logger = logging.getLogger("smartnet")

    def _reset(self, engine: Engine) -> None:
        self.scores, self.labels, self.groups, self.subtypes = [], [], [], []

    def _collect(self, engine: Engine) -> None:
        outputs: Any = engine.state.output
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        batch: Any = engine.state.batch
        batch = batch if isinstance(batch, (list, tuple)) else [batch] * len(outputs)
        for item, source in zip(outputs, batch):
            if self.score_key not in item:  # a model without a classification output: nothing to choose
                continue
            score = torch.as_tensor(item[self.score_key]).double().reshape(-1)
            label = torch.as_tensor(item[self.label_key])
            self.scores.append(float(score.max()))
            self.labels.append(int(label.max() > 0))
            if self.group_key is not None:
                self.groups.append(str(source.get(self.group_key, item.get(self.group_key, "?"))))
            if self.subtype_key in item and self.subtype_label_key in item:
                self.subtypes.append((torch.as_tensor(item[self.subtype_key]).double().reshape(-1).tolist(),
                                      torch.as_tensor(item[self.subtype_label_key]).float().reshape(-1).tolist()))

    def _finish(self, engine: Engine) -> None:
        parts = self._gather((self.scores, self.labels, self.groups, self.subtypes))
        if parts is None:  # not rank 0: rank 0 chooses and saves
            return
        scores = np.concatenate([np.asarray(s, dtype=np.float64) for s, _, _, _ in parts])
        labels = np.concatenate([np.asarray(lab, dtype=np.int64) for _, lab, _, _ in parts])
        groups = [g for _, _, part, _ in parts for g in part]
        subtypes = [pair for _, _, _, part in parts for pair in part]
        if scores.size == 0:
            return
        volume_scores = volume_labels = None
        if self.group_key is not None and len(groups) == len(scores):
            best: dict[str, list[float]] = {}
            for group, score, label in zip(groups, scores, labels):
                entry = best.setdefault(group, [0.0, 0.0])
                entry[0], entry[1] = max(entry[0], score), max(entry[1], label)
            volume_scores = np.array([v[0] for v in best.values()])
            volume_labels = np.array([v[1] for v in best.values()])
        subtype_scores = subtype_labels = None
        if subtypes and len(subtypes) == len(scores):
            subtype_scores = np.array([p for p, _ in subtypes], dtype=np.float64)
            subtype_labels = np.array([lab for _, lab in subtypes], dtype=np.float64) > 0.5
        record = self.operating_point.update(scores, labels, volume_scores, volume_labels, subtype_scores,
                                             subtype_labels)
        engine.state.metrics["val_threshold"] = record["threshold"]
        engine.state.metrics["val_sensitivity_op"] = record["sensitivity"]
        engine.state.metrics["val_specificity_op"] = record["specificity"]
        self.logger.info(
            f"operating point ({record['method']}) on {record['n_positive']} positive / {record['n_negative']} "
            f"negative validation items: threshold {record['threshold']:.4f}, sensitivity "
            f"{record['sensitivity']:.3f}, specificity {record['specificity']:.3f}"
            + (f"; per volume (maximum): threshold {record['volume_threshold']:.4f}, sensitivity "
               f"{record['volume_sensitivity']:.3f}, specificity {record['volume_specificity']:.3f}"
               if "volume_threshold" in record else "")
        )
        if "subtype_thresholds" in record:
            self.logger.info("subtype thresholds: " + ", ".join(
                f"{name} {t:.4f} (sensitivity {record['subtype_rates'][name][0]:.3f}, specificity "
                f"{record['subtype_rates'][name][1]:.3f})" for name, t in record["subtype_thresholds"].items()))
