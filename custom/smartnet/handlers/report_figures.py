"""Ignite handler that adds the figures needing the network and the images to an evaluation report, then builds it.

While the evaluator runs it keeps, with bounded memory:

* encoder features for t-SNE (upstream: pooled ``encoder.layer4`` output of each slice; volume classifier: the 3D
  operator's output of each volume), at most ``max_points`` of them;
* the ``n_cam`` inputs with the highest ICH probability, for Grad-CAM (MONAI's ``GradCAM`` on ``encoder.layer4``)
  of the upstream classifier head or of the volume classifier (its logit, through every slice of the volume);
* per case the slice with the largest lesion (true, else predicted) with its masks, and the case's Dice, for overlay
  montages of the best, median and worst cases.

At the end of the evaluation it writes those figures into ``<output_dir>/figures/`` with a manifest and calls
``smartnet.reports.build_report`` (curves, confusion matrices, confidence intervals, ``report.html``). It must be
listed after the evaluation report handler, which writes the ``metrics.json`` and ``per_case.csv`` it reads.
Under multi-GPU evaluation only rank 0 draws figures, from the cases it evaluated.
"""

from __future__ import annotations

import heapq
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import min_version, optional_import
from torch import nn

from ..reports import ReportError, build_report, require_report_extra
from ..reports.build import FIGURES_DIR, MANIFEST
from ..reports.figures import plot_activation_maps, plot_overlays, plot_tsne
from ..reports.statistics import mean_with_ci
from ..storage import atomic_write_text
from ..vocabulary import MODEL_LEVELS
from .collector import Collector

Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")

__all__ = ["ReportFigures", "gradcam_maps"]



class _ClassLogit(nn.Module):
    """The ICH logit ``(N, 1)`` of slices ``(N, C, H, W)``: the upstream classifier head, or a volume classifier
    applied to the slices as one volume (its logit repeated per slice, so Grad-CAM gives a map per slice)."""

    def __init__(self, net: nn.Module, volume: bool) -> None:
        super().__init__()
        self.net, self.volume = net, volume

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        if not self.volume:
            return self.net.forward_heads(slices)["cls"]
        logit = self.net(slices.permute(1, 2, 3, 0).unsqueeze(0))[:, :1]  # (1, C, H, W, D); "any" of (1, 6)
        return logit.expand(slices.shape[0], 1)


def gradcam_maps(network: nn.Module, slices: torch.Tensor, volume: bool = False) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] on ``encoder.layer4`` for ``slices`` ``(N, C, H, W)`` (MONAI GradCAM).

    ``volume=False``: the upstream classifier head of each slice, each map scaled to [0, 1]; ``True``: the logit of
    the volume classifier for the slices taken as one volume, scaled by the largest value over all slices (so maps of
    different slices compare).
    """
    from monai.visualize import GradCAM

    was_training = network.training
    # the hook on layer4 keeps the activations of the last encoder call only: a volume model that encodes its slices
    # in chunks would give the maps of the last chunk (or fail on their count), so encode all slices in one call
    chunk_size = getattr(network, "chunk_size", None)
    network.eval()
    try:
        if volume and chunk_size is not None:
            network.chunk_size = 0
        wrapper = _ClassLogit(network, volume)
        cam = GradCAM(nn_module=wrapper, target_layers="net.encoder.layer4", postprocessing=lambda m: m)
        with torch.enable_grad():
            maps = cam(x=slices.detach().clone().requires_grad_(True), class_idx=0)[:, 0].detach().cpu().numpy()
    finally:
        network.train(was_training)
        if chunk_size is not None:
            network.chunk_size = chunk_size
    maps = np.maximum(maps, 0.0)
    low = maps.min(axis=(1, 2), keepdims=True) if not volume else maps.min()
    scale = (maps.max(axis=(1, 2), keepdims=True) if not volume else maps.max()) - low
    flat = scale < 1e-8  # a constant map (e.g. a 1 x 1 last stage) carries no location: shown as zeros
    return np.where(flat, 0.0, (maps - low) / np.where(flat, 1.0, scale)).astype(np.float32)


class ReportFigures(Collector):
    """Collect what the report figures need during evaluation and write the report when it ends.

    Args:
        output_dir: the evaluation folder (``metrics.json`` etc. are there).
        network: the evaluated network (``SmartNet2D`` or a volume model), for features and Grad-CAM.
        task: ``"slice"`` (upstream), ``"volume_cls"`` or ``"volume_seg"``.
        prefix: file-name prefix of the evaluation files.
        n_cam: inputs shown with activation maps (highest ICH probability first).
        max_points: most points in the t-SNE plot.
        n_boot: bootstrap resamples for the confidence intervals.
    """

    def __init__(
        self,
        output_dir: str,
        network: nn.Module,
        task: str,
        prefix: str = "",
        n_cam: int = 4,
        max_points: int = 2000,
        n_boot: int = 1000,
    ) -> None:
        if task not in MODEL_LEVELS:
            raise ValueError(f"task must be one of {MODEL_LEVELS}, got {task!r}")
        self.output_dir = Path(output_dir)
        self.network, self.task, self.prefix = network, task, prefix
        self.n_cam, self.max_points, self.n_boot = n_cam, max_points, n_boot
        self.logger = logging.getLogger(self.__class__.__name__)
        self._hook = None
        self._reset(None)

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        engine.add_event_handler(Events.EPOCH_STARTED, self._add_hook)

    @property
    def _net(self) -> nn.Module:
        """The network itself, also when multi-GPU evaluation wrapped it in DistributedDataParallel."""
        return getattr(self.network, "module", self.network)

    # -------------------------------------------------------------------------------------------- collection
    def _reset(self, engine: Engine | None) -> None:
        self.features: list[np.ndarray] = []
        self.feature_labels: list[int] = []
        self._pending: list[np.ndarray] = []
        self.cam_inputs: list[tuple[float, int, dict]] = []  # min-heap of (probability, counter, item)
        self.cases: dict[str, dict[str, Any]] = {}
        self._counter = 0

    def _add_hook(self, engine: Engine) -> None:
        if self._hook is not None or self.task == "volume_seg":
            return
        module = self._net.operator if self.task == "volume_cls" else self._net.encoder.layer4

        def keep(_module, _inputs, output) -> None:
            out = output.detach().float()
            pooled = out.mean(dim=(-2, -1)) if out.dim() == 4 else out
            self._pending.append(pooled.cpu().numpy())

        self._hook = module.register_forward_hook(keep)

    def _collect(self, engine: Engine) -> None:
        pending, self._pending = self._pending, []
        features = np.concatenate(pending) if pending else None
        for i, (item, output) in enumerate(zip(engine.state.batch, engine.state.output)):
            label = self._label(item, output)
            if features is not None and i < len(features) and len(self.features) < self.max_points:
                self.features.append(features[i])
                self.feature_labels.append(label)
            probability = self._probability(output)
            if probability is not None and self.task != "volume_seg":
                entry = (probability, self._counter, {"image": torch.as_tensor(item["image"]).detach().cpu(),
                                                      "depth": item.get("depth"), "case": str(item.get("case_id")),
                                                      "slice": item.get("slice_index"), "label": label})
                self._counter += 1
                if len(self.cam_inputs) < self.n_cam:
                    heapq.heappush(self.cam_inputs, entry)
                elif probability > self.cam_inputs[0][0]:
                    heapq.heapreplace(self.cam_inputs, entry)
            if self.task in ("slice", "volume_seg"):
                self._keep_overlay(item, output)

    @staticmethod
    def _label(item: dict, output: dict) -> int:
        label = output.get("label", item.get("label"))
        return int(torch.as_tensor(label).max() > 0.5) if label is not None else 0

    def _probability(self, output: dict) -> float | None:
        key = "cls_prob" if self.task == "slice" else "pred"
        if key not in output:
            return None
        return float(torch.as_tensor(output[key]).double().flatten()[0])

    def _keep_overlay(self, item: dict, output: dict) -> None:
        pred_key = "seg" if self.task == "slice" else "pred"
        if pred_key not in output or output.get("label", item.get("label")) is None:
            return
        image = torch.as_tensor(item["image"]).detach().float().cpu()[0]  # first channel: (H, W[, D])
        truth = torch.as_tensor(output.get("label", item.get("label"))).detach().cpu()[0] > 0.5
        pred = torch.as_tensor(output[pred_key]).detach().cpu()[0] > 0.5
        depth = item.get("depth")
        if image.dim() == 3 and depth is not None:
            d = int(torch.as_tensor(depth))
            image, truth, pred = image[..., :d], truth[..., :d], pred[..., :d]
        case = self.cases.setdefault(str(item.get("case_id", "?")),
                                     {"n_inter": 0, "n_pred": 0, "n_truth": 0, "area": -1})
        case["n_inter"] += int((truth & pred).sum())
        case["n_pred"] += int(pred.sum())
        case["n_truth"] += int(truth.sum())
        planes = [(image, truth, pred)] if image.dim() == 2 else [
            (image[..., z], truth[..., z], pred[..., z]) for z in range(image.shape[-1])]
        for plane, t, p in planes:
            area = int(t.sum()) * 10**6 + int(p.sum())  # largest true lesion first, else largest prediction
            if area > case["area"]:
                case.update(area=area, image=plane.numpy(), truth=t.numpy(), pred=p.numpy())

    # ------------------------------------------------------------------------------------------------ output
    def _finish(self, engine: Engine) -> None:
        from torch import distributed as dist

        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if dist.is_available() and dist.is_initialized() and dist.get_rank() > 0:
            return
        try:
            require_report_extra()
        except ReportError as err:
            self.logger.warning(f"no report figures: {err}; metrics.json and per_case.csv are written")
            return
        figures = self.output_dir / FIGURES_DIR
        manifest: list[dict[str, str]] = []
        name = {"slice": "upstream classifier head", "volume_cls": "volume classifier", "volume_seg": "segmenter"}
        if self.cam_inputs:
            items = self._cam_items()
            path = plot_activation_maps(items, figures / f"{self.prefix}activation_maps.png",
                                        f"Grad-CAM on encoder.layer4, {name[self.task]}")
            manifest.append({"file": path.name, "caption": f"Activation maps (Grad-CAM, encoder's last stage) of the "
                             f"{name[self.task]} on its {len(items)} most probable ICH inputs"})
        if len(self.features) >= 4 and len(set(self.feature_labels)) > 1:
            level = "slices" if self.task == "slice" else "volumes"
            path = plot_tsne(np.stack(self.features), np.array(self.feature_labels),
                             figures / f"{self.prefix}tsne.png", f"t-SNE of {level} ({name[self.task]} features)")
            manifest.append({"file": path.name, "caption": f"t-SNE of the encoder features of {len(self.features)} "
                             f"{level}, coloured by label"})
        ranked = sorted(((c["n_inter"] * 2 / (c["n_pred"] + c["n_truth"]), case) for case, c in self.cases.items()
                         if c["n_truth"] > 0 and "image" in c), reverse=True)
        if ranked:
            picks = {"best": ranked[0], "median": ranked[len(ranked) // 2], "worst": ranked[-1]}
            tiles = [{"title": f"{which}: {case}\nDice {dice:.2f}", **{k: self.cases[case][k] for k in
                      ("image", "truth", "pred")}} for which, (dice, case) in picks.items()]
            dice = mean_with_ci(np.array([d for d, _ in ranked]), n_boot=self.n_boot)
            heading = (f"Best, median and worst of {len(ranked)} cases by Dice; mean Dice {dice['value']:.3f} "
                       f"(95% CI {dice['ci_low']:.3f}-{dice['ci_high']:.3f})")
            path = plot_overlays(tiles, figures / f"{self.prefix}overlays.png", heading)
            manifest.append({"file": path.name, "caption": "CT slice with the largest lesion of the best, median and "
                             "worst case by Dice: true contour green, predicted contour red"})
        figures.mkdir(parents=True, exist_ok=True)
        atomic_write_text(figures / MANIFEST, json.dumps(manifest, indent=4) + "\n")
        build_report(self.output_dir, prefix=self.prefix, n_boot=self.n_boot)

    def _cam_items(self) -> list[dict]:
        device = next(self._net.parameters()).device
        items = []
        for probability, _, entry in sorted(self.cam_inputs, reverse=True):
            image = entry["image"].to(device)
            if self.task == "slice":
                cam = gradcam_maps(self._net, image[None])[0]
                shown, where = image[0].cpu().numpy(), f"slice {entry['slice']}"
            else:
                depth = int(torch.as_tensor(entry["depth"])) if entry["depth"] is not None else image.shape[-1]
                slices = image[..., :depth].permute(3, 0, 1, 2)  # (D, C, H, W)
                maps = gradcam_maps(self._net, slices, volume=True)
                z = int(np.argmax(maps.reshape(len(maps), -1).sum(axis=1)))  # the slice the decision rests on most
                cam, shown, where = maps[z], slices[z, 0].cpu().numpy(), f"slice {z} of {depth}"
            items.append({"title": f"{entry['case']}\n{where}: p={probability:.2f}, label {entry['label']}",
                          "image": shown, "cam": cam})
        return items
