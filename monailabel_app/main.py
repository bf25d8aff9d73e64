"""MONAI Label app for the SMART-Net downstream bundles (runs in the MONAI Label environment; docs/monai-label.md).

Serves every bundle named in ``--conf models`` from ``<app>/model/<name>``:

* segmentation bundles (``smartnet_down_seg``): MONAI Label's own ``BundleInferTask``, the label volume in the
  input's geometry (NIfTI written with nibabel, which keeps a gantry tilt's sheared affine; MONAI Label's default ITK
  writer orthonormalises it and moves every voxel of a tilted scan), and ``BundleTrainTask`` training that fine-tunes
  from the served ``models/model.pt`` when the request asks for ``pretrained`` (MONAI Label's default) instead of
  restarting from the upstream checkpoint;
* classification bundles (``smartnet_down_cls``: output type "probabilities" in the metadata): a classification
  infer task without MONAI Label's geometry restore (which crashes on a score vector); the answer is
  ``{"prediction": [{"idx": 0, "label": "intracranial_hemorrhage", "score": p}]}`` with ``p`` the ICH probability,
  followed by one entry per haemorrhage subtype (``{"idx": 1, "label": "epidural", "score": ...}``, ...) when the
  weights have the subtype head (``subtypes: true``, set from the weights' settings record).

``--conf smartnet_profile <name>`` layers ``configs/<name>.json`` of each bundle over its configs (e.g. ``demo`` for
weights trained with the demo profile). Without it each bundle's profile is picked from its weights, as ``smartnet
release`` does: the default configs or the ``configs/*.json`` profile whose network loads the weights strictly and
whose settings equal the settings record the weights carry; weights that no profile fits are refused.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import monailabel
from monai.bundle import ConfigParser
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleTrainTask
from monailabel.transform.writer import Writer
from monailabel.utils.others.generic import get_bundle_models, strtobool

logger = logging.getLogger(__name__)


def _with_profile(path: str, config: str, profile: str | None) -> list[str]:
    """The config file, plus ``configs/<profile>.json`` of the bundle when a profile is set."""
    if not profile:
        return [config]
    extra = os.path.join(path, "configs", f"{profile}.json")
    if not os.path.isfile(extra):
        raise FileNotFoundError(f"--conf smartnet_profile {profile}: {extra} does not exist")
    return [config, extra]


def _profile_for(path: str, conf: Dict[str, str]) -> Optional[str]:
    """The profile to serve the bundle at ``path`` with: ``--conf smartnet_profile`` when given, else the one its
    weights need (``smartnet.release.weights_profile``, from the bundle's own copy of the package); ``None`` for the
    default configs or a bundle without weights. Raises the package's ``ReleaseError`` when no profile fits."""
    if conf.get("smartnet_profile"):
        return conf["smartnet_profile"]
    model = Path(path) / "models" / "model.pt"
    if not model.is_file():
        return None
    if path not in sys.path:
        sys.path.insert(0, path)  # a released bundle carries the smartnet package
    from smartnet.release import weights_profile

    profile = weights_profile(Path(path), model)
    chosen = "the default configs" if profile is None else f"configs/{profile}.json"
    logger.info(f"{os.path.basename(path)}: serving the weights with {chosen}")
    return profile


def _recorded_switches(path: str) -> Dict[str, Any]:
    """Settings the weights of the bundle at ``path`` were trained with over any profile (``subtypes``), from their
    settings record (``smartnet.release.recorded_switches``); none without weights."""
    model = Path(path) / "models" / "model.pt"
    if not model.is_file():
        return {}
    if path not in sys.path:
        sys.path.insert(0, path)
    from smartnet.release import recorded_switches

    return recorded_switches(model)


def _parse_with_profile(path: str, config: str, profile: str | None, bundle_root_key: str) -> ConfigParser:
    """The bundle config (with the profile layered over it, and the weights' recorded switches over both) as MONAI
    Label parses it: ``bundle_root`` = ``path``."""
    parser = ConfigParser()
    parser.read_config(_with_profile(path, config, profile))
    parser.config.update({bundle_root_key: path})
    parser.config.update({k: v for k, v in _recorded_switches(path).items() if k in parser.config})
    return parser


def classification_answer(data: Dict[str, Any], label: str = "intracranial_hemorrhage") -> Dict[str, Any]:
    """``{"prediction": [...]}``: the ICH probability of ``data["pred"]`` (idx 0), then each subtype probability of
    ``data["pred_subtypes"]`` (idx 1-5, in ``smartnet.vocabulary.SUBTYPES`` order) when the model has them."""
    from smartnet.vocabulary import SUBTYPES

    answer = [{"idx": 0, "label": label, "score": float(_flat(data["pred"])[0])}]
    if "pred_subtypes" in data:
        answer += [{"idx": i, "label": name, "score": float(score)}
                   for i, (name, score) in enumerate(zip(SUBTYPES[1:], _flat(data["pred_subtypes"])), start=1)]
    return {"prediction": answer}


def _flat(x: Any) -> list:
    return [float(v) for v in (x.detach().cpu().reshape(-1).tolist() if hasattr(x, "detach") else list(x))]


def is_classifier(path: str) -> bool:
    """A bundle whose network output is class probabilities (metadata ``outputs.pred.type``)."""
    with open(os.path.join(path, "configs", "metadata.json"), encoding="utf-8") as f:
        pred = json.load(f)["network_data_format"]["outputs"]["pred"]
    return pred.get("type") == "probabilities"


class SmartNetInferTask(BundleInferTask):
    """``BundleInferTask`` reading the bundle's inference config with an optional profile layered over it."""

    def __init__(self, path: str, conf: Dict[str, str], **kwargs) -> None:
        self.profile = _profile_for(path, conf)
        kwargs.setdefault("load_strict", True)  # a tensor the weights lack (a slice head...) is an error, not random
        super().__init__(path, conf, **kwargs)
        if getattr(self, "bundle_config", None) is not None:
            self._check_recorded_settings()

    def _load_bundle_config(self, path, config):
        return _parse_with_profile(path, config, self.profile, self.const.key_bundle_root())

    def _check_recorded_settings(self) -> None:
        """Refuse to serve weights trained with other settings than the served configs (image size, HU windows,
        CLAHE, orientation...: they change what the weights mean but no tensor shape). Raises the bundle's
        ``CheckpointError`` naming each difference; a checkpoint without a record is served with a warning."""
        model_path = os.path.join(self.bundle_path, "models", self.const.model_pytorch())
        if not os.path.exists(model_path):
            return
        record = self.bundle_config.get_parsed_content("settings_record")  # imports the bundle's smartnet copy
        from smartnet.checkpoints import check_recorded_settings, load_checkpoint

        check_recorded_settings(load_checkpoint(model_path), record, model_path)

    def writer(self, data: Dict[str, Any], extension=None, dtype=None) -> Tuple[Any, Any]:
        """Segmentation labels as MONAI Label writes them, but NIfTI through nibabel: the affine is written as it is,
        shear included (a gantry-tilted scan's label stays on the scan's voxels)."""
        if self.type == InferType.CLASSIFICATION and "pred_subtypes" in data:
            return None, classification_answer(data)
        if self.type != InferType.SEGMENTATION:
            return super().writer(data, extension, dtype)
        if extension is not None:
            data["result_extension"] = extension
        if dtype is not None:
            data["result_dtype"] = dtype
        if self.labels is not None:
            data["labels"] = self.labels
        return Writer(label=self.output_label_key, json=self.output_json_key, nibabel=True)(data)


class SmartNetTrainTask(BundleTrainTask):
    """``BundleTrainTask`` that honours MONAI Label's ``pretrained`` request flag through the bundle's fine-tune
    idiom (``finetune`` + ``finetune_model_path``), and the optional profile (single-process rounds; MONAI Label's
    multi-GPU rounds write their own merged config and use the configs' defaults)."""

    def __init__(self, path: str, conf: Dict[str, str], **kwargs) -> None:
        self.profile = _profile_for(path, conf)
        self._request: dict = {}
        super().__init__(path, conf, **kwargs)

    def _load_bundle_config(self, path, config):
        return _parse_with_profile(path, config, self.profile, self.const.key_bundle_root())

    def __call__(self, request, datastore):
        self._request = request
        return super().__call__(request, datastore)

    def _update_overrides(self, overrides):
        name = self._request.get("model_filename", "model.pt")
        model = os.path.join(self.bundle_path, "models", name if isinstance(name, str) else name[0])
        if strtobool(str(self._request.get("pretrained", True))) and os.path.isfile(model):
            overrides["finetune"] = True
            overrides["finetune_model_path"] = model
            logger.info(f"training {os.path.basename(self.bundle_path)} from its current weights {model}")
        return overrides

    def run_single_gpu(self, request, overrides):
        import monai.bundle

        monai.bundle.run(
            run_id=request.get("run_id", "run"),
            init_id=None,
            final_id=None,
            meta_file=self.bundle_metadata_path,
            config_file=_with_profile(self.bundle_path, self.bundle_config_path, self.profile),
            **overrides,
        )


class SmartNetApp(MONAILabelApp):
    """The SMART-Net downstream bundles as MONAI Label models."""

    def __init__(self, app_dir, studies, conf):
        self.models = get_bundle_models(app_dir, conf)
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name=f"SMART-Net ICH ({monailabel.__version__})",
            description="SMART-Net intracranial haemorrhage volume segmentation and classification bundles",
            version=monailabel.__version__,
        )

    def init_infers(self) -> Dict[str, InferTask]:
        infers: Dict[str, InferTask] = {}
        for name, path in self.models.items():
            if is_classifier(path):
                task = SmartNetInferTask(path, self.conf, type="classification", add_post_restore=False)
            else:
                task = SmartNetInferTask(path, self.conf, type="segmentation")
            if task.is_valid():
                logger.info(f"+++ Adding Inferer:: {name} => {task}")
                infers[name] = task
        return infers

    def init_trainers(self) -> Dict[str, TrainTask]:
        trainers: Dict[str, TrainTask] = {}
        if strtobool(self.conf.get("skip_trainers", "false")):
            return trainers
        for name, path in self.models.items():
            if is_classifier(path):  # MONAI Label's datastore holds label volumes, not volume-level classes
                continue
            task = SmartNetTrainTask(path, self.conf)
            if task.is_valid():
                logger.info(f"+++ Adding Trainer:: {name} => {task}")
                trainers[name] = task
        return trainers

    def init_strategies(self) -> Dict[str, Strategy]:
        return {"random": Random(), "first": First()}
