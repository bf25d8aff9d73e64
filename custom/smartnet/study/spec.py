"""A study file (YAML or JSON) and the arms it expands to.

    name: demo
    output_dir: runs/demo          # relative to the study file's folder unless absolute
    dataset_dir: ~/smartnet_data/demo
    demo_data: {n_train: 32, n_valid: 8, n_test: 16, size: 64, depth: 16}   # optional: written if missing
    profile: demo                  # configs/<profile>.json after train.json in every run (null: none)
    seeds: [0, 1]
    common: {image_size: 64}       # overrides for every bundle run
    upstream:                      # needed when a downstream arm starts from upstream weights
      variants: [smartnet, dual_cls_seg, single_cls]
      consistency: [true, false]   # only for variants with both cls and seg heads; the others run without
      overrides: {epochs: 4}
    downstream:
      tasks: [cls, seg]
      init: [upstream, imagenet, scratch]
      operators: [lstm, gru, transformer, mean]   # the classifier's 3D operator; the segmenter has one
      imagenet_path: ~/smartnet_data/imagenet/resnet18.pth
      overrides: {epochs: 8}       # both tasks; cls_overrides / seg_overrides for one of them

Every arm is one bundle run (train, then evaluate on the test split) in its own folder ``arms/<arm id>``; the arm
id names its settings and ends with ``-s<seed>``; arms that differ only by seed form a group (one table row).

Values are plain data: a string starting with ``$``, ``@`` or ``%`` (MONAI config syntax: an expression run with
``eval``, a reference, a macro) is refused, so that a study file cannot run code; expressions belong in a profile
(``configs/<profile>.json``) of the bundle, which is code the user reviews as such.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..errors import SmartNetError
from ..vocabulary import DOWNSTREAM_TASKS
from ..networks.multitask_2d import VARIANTS
from ..networks.volume_operators import OPERATORS

__all__ = ["StudyError", "Arm", "Study", "load_study"]

_TOP_KEYS = {"name", "output_dir", "dataset_dir", "demo_data", "profile", "seeds", "common", "upstream", "downstream"}
_UP_KEYS = {"variants", "consistency", "overrides"}
# where a study's downstream arms take their encoder from (``upstream``: the profile's own init, upstream or
# upstream_with_decoder); a subset of the bundles' ``smartnet.vocabulary.INITS``
STUDY_INITS: tuple[str, ...] = ("upstream", "imagenet", "scratch")
_DOWN_KEYS = {"tasks", "init", "operators", "imagenet_path", "overrides", "cls_overrides", "seg_overrides"}


class StudyError(SmartNetError, ValueError):
    """The study file is not usable (the message names the key)."""


@dataclass
class Arm:
    """One bundle run: ``stage`` "upstream", "cls" or "seg" with its settings; ``upstream`` is the arm it starts
    from."""

    id: str
    stage: str
    seed: int
    variant: Optional[str] = None
    consistency: Optional[bool] = None
    init: Optional[str] = None
    operator: Optional[str] = None
    upstream: Optional[str] = None
    overrides: dict = field(default_factory=dict)

    @property
    def group(self) -> str:
        """The id without its seed: arms of one group are averaged in the table."""
        return self.id.rsplit("-s", 1)[0]

    def as_dict(self) -> dict:
        return {**asdict(self), "group": self.group}


@dataclass
class Study:
    """A loaded, checked study file (see the module docstring) and its arms in run order (upstream first)."""

    path: Path
    name: str
    output_dir: Path
    dataset_dir: Path
    demo_data: Optional[dict]
    profile: Optional[str]
    seeds: list
    arms: list


def _as_list(value: Any, key: str) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise StudyError(f"{key}: empty list")
    return values


def _choices(values: list, allowed, key: str) -> list:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise StudyError(f"{key}: unknown {unknown}; choose from {list(allowed)}")
    return values


def _unknown_keys(section: dict, allowed: set, where: str) -> None:
    extra = sorted(set(section) - allowed)
    if extra:
        raise StudyError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def _cons_tag(consistency: bool) -> str:
    return "cons" if consistency else "nocons"


def _refuse_config_syntax(value: Any, where: str) -> None:
    """Raise ``StudyError`` for any string value (at any depth) that MONAI would evaluate, resolve or import."""
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_config_syntax(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _refuse_config_syntax(item, f"{where}[{index}]")
    elif isinstance(value, str) and value[:1] in ("$", "@", "%"):
        raise StudyError(f"{where}: {value!r} is MONAI config syntax ({value[0]}...), which a study file may not "
                         "carry (a '$' value would run as Python); put it in a bundle profile, configs/<name>.json")


def load_study(path: str | Path) -> Study:
    """Read and check the study file at ``path``; raises ``StudyError`` naming the problem."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise StudyError(f"study file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise StudyError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}") from None
    if not isinstance(raw, dict):
        raise StudyError(f"{path}: expected a mapping at the top level")
    _refuse_config_syntax(raw, "study")
    _unknown_keys(raw, _TOP_KEYS, "study")
    for key in ("name", "dataset_dir", "downstream"):
        if key not in raw:
            raise StudyError(f"study: missing {key!r}")
    out = Path(str(raw.get("output_dir", f"runs/{raw['name']}"))).expanduser()
    seeds = [int(s) for s in _as_list(raw.get("seeds", [0]), "seeds")]
    common = dict(raw.get("common") or {})
    down = raw["downstream"]
    _unknown_keys(down, _DOWN_KEYS, "downstream")
    tasks = _choices(_as_list(down.get("tasks", ["cls"]), "downstream.tasks"), DOWNSTREAM_TASKS, "downstream.tasks")
    inits = _choices(_as_list(down.get("init", ["upstream"]), "downstream.init"), STUDY_INITS, "downstream.init")
    operators = _choices(_as_list(down.get("operators", ["lstm"]), "downstream.operators"), OPERATORS,
                         "downstream.operators")
    up = raw.get("upstream")
    if "upstream" in inits and not up:
        raise StudyError("downstream.init has 'upstream' but the study has no 'upstream' section")
    if "imagenet" in inits and not down.get("imagenet_path"):
        raise StudyError("downstream.init has 'imagenet': set downstream.imagenet_path to a torchvision ResNet file")

    arms: list[Arm] = []
    upstream_arms: dict[tuple, str] = {}
    if up:
        _unknown_keys(up, _UP_KEYS, "upstream")
        variants = _choices(_as_list(up.get("variants", ["smartnet"]), "upstream.variants"), VARIANTS,
                            "upstream.variants")
        consistency = [bool(c) for c in _as_list(up.get("consistency", [True]), "upstream.consistency")]
        for variant, seed in itertools.product(variants, seeds):
            both = {"cls", "seg"} <= set(VARIANTS[variant])
            for cons in (consistency if both else [False]):
                if not both and (variant, cons, seed) in upstream_arms:
                    continue
                arm_id = f"up-{variant}-{_cons_tag(cons)}-s{seed}"
                upstream_arms[(variant, cons, seed)] = arm_id
                overrides = {**common, **(up.get("overrides") or {}), "variant": variant, "consistency": cons}
                if not both:
                    overrides["seg_peak"] = False  # no CLS and SEG heads to tie (a profile may switch it on)
                if "seg" not in VARIANTS[variant]:
                    overrides["seg_prior"] = None  # no SEG head to start at a prior (a profile may set one)
                arms.append(Arm(arm_id, "upstream", seed, variant=variant, consistency=cons, overrides=overrides))
    imagenet_path = str(Path(str(down.get("imagenet_path", ""))).expanduser()) if "imagenet" in inits else None
    for task, init, seed in itertools.product(tasks, inits, seeds):
        sources = [None] if init != "upstream" else [k for k in upstream_arms if k[2] == seed]
        ops = operators if task == "cls" else [None]
        for source, operator in itertools.product(sources, ops):
            parts = [task, init]
            # 'upstream' keeps the bundle profile's own init (upstream or upstream_with_decoder)
            knobs: dict = {} if init == "upstream" else {"init": init}
            if source is not None:
                parts += [source[0], _cons_tag(source[1])]
                if "seg" not in VARIANTS[source[0]]:  # no upstream seg decoder or head to transfer
                    knobs["init"] = "upstream"
                    knobs.update({"slice_head": False} if task == "seg" else {"seg_evidence": False, "seg_peak": False})
                if task == "cls" and "cls" not in VARIANTS[source[0]]:
                    knobs.update(slice_head=False, seg_peak=False)  # no upstream slice head (seg_peak is part of it)
            else:
                knobs["slice_head"] = False  # a slice head comes from an upstream model only
                if task == "cls":
                    knobs.update(seg_evidence=False, seg_peak=False)
            if operator is not None:
                parts.append(operator)
                knobs["operator"] = operator
            if init == "imagenet":
                knobs["imagenet_path"] = imagenet_path
            overrides = {**common, **(down.get("overrides") or {}), **(down.get(f"{task}_overrides") or {}), **knobs}
            arms.append(Arm("-".join(parts) + f"-s{seed}", task, seed, variant=source[0] if source else None,
                            consistency=source[1] if source else None, init=init, operator=operator,
                            upstream=upstream_arms[source] if source else None, overrides=overrides))
    ids = [a.id for a in arms]
    if len(set(ids)) != len(ids):
        raise StudyError("study: two arms with the same id")
    return Study(path=path, name=str(raw["name"]), output_dir=out if out.is_absolute() else path.parent / out,
                 dataset_dir=Path(str(raw["dataset_dir"])).expanduser(), demo_data=raw.get("demo_data"),
                 profile=raw.get("profile"), seeds=seeds, arms=arms)
