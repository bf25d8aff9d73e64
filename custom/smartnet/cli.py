"""The ``smartnet`` command line (built on ``fire``) for the jobs that are not bundle workflows.

Typical usage::

    smartnet demo                                   # demo data -> upstream, down_cls, down_seg: train, evaluate, infer
    smartnet demo-data ~/smartnet_data/demo         # write the synthetic demo dataset and its datalist
    smartnet datalist /data/ich                     # datalist.json from <root>/{train,valid,test}/
    smartnet validate /data/ich/datalist.json       # check every file; all problems at once, exit 1 on any
    smartnet release --out_dir dist                 # <name>_v<version>.zip per bundle, for monai.bundle download
    smartnet report bundles/smartnet_upstream/eval/evaluation   # figures, CIs and report.html from saved results
    smartnet real-check                             # synthetic bleeds on a real head CT; evaluate the trained bundles
    smartnet operating-point bundles/smartnet_down_cls --dataset_dir /data/ich   # threshold chosen on your scans
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import fire

from .bundle_run import (BUNDLE_NAMES, BUNDLES_ENV, REPO_BUNDLES, STAGE_BUNDLES, bundle_run_command,
                         bundles_dir_or_default)
from .data.datalist import write_datalist
from .data.demo_dataset import DATASET_ANATOMIES, settings_differing, write_demo_dataset
from .data.real_anatomy import volume_range, write_real_anatomy_set
from .data.validation import validate_datalist
from .errors import DatasetProblems
from .guards import exit_with, exits_on_error
from .operating_point import METHODS, choose_threshold
from .recalibration import SCORE_SOURCES, evaluation_scores, rechoose_operating_point
from .release import build_release
from .reports import build_report
from .study import run_study

__all__ = ["main", "demo", "demo_data", "datalist", "validate", "release", "report", "real_check", "operating_point"]

DEFAULT_DATA_DIR = "~/smartnet_data/demo"
# the demo's data: 16 validation volumes for the operating points and the best checkpoint, 16 test volumes; the
# scanner's bright band along the inner table drawn (docs/training-at-small-scale.md: the models then mark less of a
# real inner table)
DEMO_DATA = {"n_train": 40, "n_valid": 16, "n_test": 16, "inner_table_band": True}
DEFAULT_REAL_SOURCE = "shared/data/head_ct_ge/ge_head_ct_axial_256.nii.gz"  # beside the repository, never inside


def _fail(message: str, code: int = 1) -> None:
    """A refused command: ``error: <message>`` on stderr, exit ``code``."""
    exit_with(message, code=code)


def _flag(value: object, name: str) -> bool:
    """A boolean option as typed on the command line: fire passes ``--x false`` as the string "false"."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    _fail(f"--{name} takes true or false, got {value!r}")
    return False


def demo_data(
    output_dir: str = DEFAULT_DATA_DIR,
    n_train: int = 16,
    n_valid: int = 6,
    n_test: int = 6,
    size: int = 512,
    depth: int | None = None,
    seed: int = 0,
    anatomy: str = "phantom",
    inner_table_band: bool = False,
) -> str:
    """Write the synthetic demo dataset (``{train,valid,test}/<case>_{img,mask}.nii.gz`` + ``datalist.json``).

    Args:
        output_dir: destination folder (the bundles' default ``dataset_dir``).
        n_train, n_valid, n_test: volumes per split; half of each (rounded up) has haemorrhage.
        size: in-plane matrix (512 = realistic ~0.45 mm pixels; smaller is faster).
        depth: slices per volume (random 28-40 when not given).
        seed: random seed; the same arguments always give the same files.
        anatomy: ``phantom`` (ellipsoid phantom, quick to learn), ``head`` (realistic head with the normal
            structures that mimic blood; see docs/training-at-small-scale.md) or ``mixed`` (both, alternating).
        inner_table_band: also draw the bright band a scanner makes along the inner table (measured on a real head
            CT; the same volumes otherwise). ``smartnet demo`` and ``studies/demo_seeds.yaml`` draw it; off here by
            default, since at 64 px and a few epochs it is not learned (docs/training-at-small-scale.md).

    Returns the datalist path.
    """
    if anatomy not in DATASET_ANATOMIES:
        _fail(f"unknown anatomy {anatomy!r}; choose from {', '.join(DATASET_ANATOMIES)}")
    band = _flag(inner_table_band, "inner_table_band")
    print(f"writing {n_train + n_valid + n_test} synthetic head CT volumes ({size}x{size}) to {output_dir}", flush=True)
    path = write_demo_dataset(output_dir, n_train, n_valid, n_test, size=size, depth=depth, seed=seed, anatomy=anatomy,
                              inner_table_band=band)
    print(f"datalist: {path}")
    return str(path)


def datalist(root: str, output: str | None = None) -> str:
    """Build ``datalist.json`` from ``<root>/{train,valid,test}/`` (NIfTI pairs by case stem, or DICOM folders).

    Exits with status 1 and the list of problems when the folder does not fit the layout.
    """
    path = write_datalist(root, output)
    counts = {k: len(v) for k, v in json.loads(Path(path).read_text()).items()}
    print(f"wrote {path}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return str(path)


def validate(datalist_path: str, splits: str | tuple = ("training", "validation", "test")) -> None:
    """Check every image and mask of a datalist; prints all problems at once and exits 1 if there is any.

    Args:
        datalist_path: a datalist JSON (as written by ``smartnet datalist``).
        splits: comma-separated split keys to check (masks are required except in ``test``).
    """
    keys = tuple(s.strip() for s in splits.split(",")) if isinstance(splits, str) else tuple(splits)
    problems = validate_datalist(datalist_path, keys)
    if problems:
        exit_with(DatasetProblems(problems, str(datalist_path)), code=1)
    print(f"{datalist_path}: all files of {', '.join(keys)} look right")


def _bundle_run(bundle: Path, configs: list[str], overrides: dict) -> None:
    """Run ``python -m monai.bundle run`` on ``bundle`` (the command is printed, copyable), streaming its output."""
    cmd = bundle_run_command(bundle, configs, overrides)
    print("\n$ " + shlex.join(["python"] + cmd[1:]), flush=True)
    result = subprocess.run(cmd, cwd=bundle)
    if result.returncode != 0:
        _fail(f"bundle run failed with exit code {result.returncode} (see the log above)", result.returncode)


STAGES = tuple(STAGE_BUNDLES)

_SHOWN = {
    "upstream": ["threshold", "slice_auroc", "slice_sensitivity", "slice_specificity", "slice_sensitivity_at_0.5",
                 "slice_specificity_at_0.5", "dice", "dice_mean", "rec_mae", "volume_auroc", "volume_sensitivity",
                 "volume_specificity"],
    "cls": ["threshold", "auroc", "sensitivity", "specificity", "sensitivity_at_0.5", "specificity_at_0.5", "accuracy",
            "f1"],
    "seg": ["dice_mean", "dice_median", "false_positive_ml_mean_normal"],
}
_TITLE = {"upstream": "upstream (slices)", "cls": "down_cls (volumes)", "seg": "down_seg (volumes)"}


def _run_stage(bundle: Path, data: Path, epochs: int | None) -> dict:
    """Train (demo profile), evaluate on the test split and infer on the test images with one bundle."""
    overrides: dict = {"dataset_dir": str(data)}
    train = dict(overrides, **({"epochs": epochs} if epochs is not None else {}))
    _bundle_run(bundle, ["train.json", "demo.json"], train)
    _bundle_run(bundle, ["train.json", "demo.json", "evaluate.json"], overrides)
    _bundle_run(bundle, ["inference.json", "demo.json"], overrides)
    return _stage_metrics(bundle / "eval" / "evaluation", data / "kinds.json")


def _stage_metrics(eval_dir: Path, kinds_json: Path) -> dict:
    """An evaluation's metrics, the decision threshold it used and, for the segmenter, the Dice per kind of bleed."""
    saved = json.loads((eval_dir / "metrics.json").read_text())
    metrics = dict(saved["metrics"], threshold=saved.get("summary", {}).get("threshold"))
    if kinds_json.is_file() and (eval_dir / "per_case.csv").is_file() and "dice_mean" in metrics:
        metrics.update({f"dice_{k}": v for k, v in _dice_by_kind(eval_dir / "per_case.csv", kinds_json).items()})
    return metrics


def _print_metrics(results: dict, timings: dict | None = None) -> None:
    """The shown metrics of each stage, then the Dice per kind of bleed where there is one."""
    for stage, metrics in results.items():
        print(f"  {_TITLE[stage]}" + (f" ({timings[stage]:.0f} s)" if timings else ""))
        for key in _SHOWN[stage] + sorted(k for k in metrics if k.startswith("dice_") and k not in _SHOWN[stage]):
            if key in metrics and isinstance(metrics[key], (int, float)):
                print(f"    {key:<30} {metrics[key]:.3f}")


def demo(
    data_dir: str = DEFAULT_DATA_DIR,
    bundles_dir: str | None = None,
    stages: str | tuple = STAGES,
    size: int = 256,
    epochs: int | None = None,
    regenerate: bool = False,
    anatomy: str = "phantom",
) -> dict:
    """The main job on built-in demo data: the whole SMART-Net chain, ending with the test metrics and output paths.

    Writes 72 synthetic volumes (``DEMO_DATA``: 40 train / 16 valid / 16 test, with the inner-table band) unless
    they exist, then for each stage trains with the bundle's CPU demo profile (``configs/demo.json``: ResNet-18,
    stride-2 stem, 128 px, a few epochs; the upstream without its reconstruction head), evaluates on the held-out
    test split and runs inference on its images: the upstream multi-task model, then the volume classifier and the
    volume segmenter, both starting from the upstream weights just trained.

    Args:
        data_dir: where the demo data is (generated there unless it exists already).
        bundles_dir: the folder holding the three bundles (default:
            ``$SMARTNET_BUNDLES``, else this repository's ``bundles/``).
        stages: comma-separated subset of ``upstream,cls,seg`` (the downstream stages need an upstream
            ``models/model.pt``).
        size: in-plane matrix of generated volumes (256 keeps generation quick; 512 is the realistic default of
            ``smartnet demo-data``).
        epochs: override every demo profile's number of epochs.
        regenerate: write the demo data again even if it exists.
        anatomy: ``phantom`` (ellipsoid phantom, the default), ``head`` (realistic head anatomy with the normal
            structures that mimic blood; much harder at demo scale, see docs/training-at-small-scale.md) or ``mixed``
            (both, alternating).
    """
    start = time.time()
    chosen = [s.strip() for s in stages.split(",")] if isinstance(stages, str) else list(stages)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown or not chosen:
        _fail(f"unknown stage(s) {unknown}; choose from {','.join(STAGES)}")
    root = bundles_dir_or_default(bundles_dir)
    bundles = {stage: root / STAGE_BUNDLES[stage] for stage in chosen}
    missing = [str(b) for b in bundles.values() if not (b / "configs" / "train.json").is_file()]
    if missing:
        _fail(f"no bundle at {', '.join(missing)}; pass --bundles_dir <folder holding the smartnet_* bundles> or set "
              f"{BUNDLES_ENV}")
    upstream_weights = root / STAGE_BUNDLES["upstream"] / "models" / "model.pt"
    if "upstream" not in chosen and not upstream_weights.is_file():
        _fail(f"{upstream_weights} does not exist: run the upstream stage first (--stages upstream,cls,seg)")
    data = Path(data_dir).expanduser()
    stale = settings_differing(data, anatomy=anatomy, size=size, **DEMO_DATA)  # against their generator.json
    if stale:
        print(f"the demo data in {data} were generated with other settings (written, wanted: {stale}): writing them "
              "again")
    if _flag(regenerate, "regenerate") or stale or not (data / "datalist.json").is_file():
        demo_data(str(data), size=size, anatomy=anatomy, **DEMO_DATA)
    else:
        print(f"using the demo data in {data} (pass --regenerate to write it again)")

    results, timings = {}, {}
    for stage in STAGES:
        if stage in chosen:
            began = time.time()
            results[stage] = _run_stage(bundles[stage], data, epochs)
            timings[stage] = time.time() - began

    print(f"\nSMART-Net demo finished in {time.time() - start:.0f} s. Held-out synthetic test set:")
    _print_metrics(results, timings)
    print("Outputs (per bundle: models/model.pt best weights, models/last.pt training state):")
    for stage, bundle in bundles.items():
        print(f"  {_TITLE[stage]:<20} {bundle / 'eval' / 'evaluation'}  |  {bundle / 'eval' / 'inference'}")
    reports = [bundle / "eval" / "evaluation" / "report.html" for bundle in bundles.values()]
    for report in (r for r in reports if r.is_file()):
        print(f"  report               {report}")
    print(f"  TensorBoard          tensorboard --logdir {root}")
    print(f"Pack the trained bundles into release archives: smartnet release --bundles_dir {root} --out_dir dist")
    return {stage: {k: metrics[k] for k in _SHOWN[stage] if k in metrics} for stage, metrics in results.items()}


def _dice_by_kind(per_case_csv: Path, kinds_json: Path) -> dict[str, float]:
    """Mean Dice of the haemorrhage cases containing each kind of bleed (a case with two kinds counts for both)."""
    kinds = json.loads(kinds_json.read_text())
    by_kind: dict[str, list[float]] = {}
    with open(per_case_csv, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("dice") in (None, "", "nan"):
                continue
            for kind in set(kinds.get(row["case_id"], [])):
                by_kind.setdefault(kind, []).append(float(row["dice"]))
    return {kind: sum(v) / len(v) for kind, v in sorted(by_kind.items())}


def _volume_range(value: str | tuple | None) -> tuple[float, float] | None:
    """``--bleed_ml`` as typed (fire gives ``0.5,10`` as a tuple, a quoted ``"0.5, 10"`` as a string) -> two floats,
    checked by ``smartnet.data.real_anatomy.volume_range`` (exit 2 before any work)."""
    if value is None:
        return None
    parts = str(value).strip("()[] ").split(",") if isinstance(value, (str, int, float)) else value
    with exits_on_error(code=2):
        return volume_range(parts)


def real_check(
    source: str | None = None,
    output_dir: str = "~/smartnet_data/real_anatomy",
    bundles_dir: str | None = None,
    n_hemorrhage: int = 10,
    n_normal: int = 10,
    seed: int = 0,
    profile: str = "demo",
    evaluate: bool = True,
    bleed_ml: str | tuple | None = None,
) -> dict:
    """Real-anatomy check: synthetic bleeds of the five kinds painted into a real, lesion-free head CT, then the
    trained bundles evaluated on them (the demo data are drawn phantoms; this shows whether a model also works on
    real skulls, sulci and ventricles).

    Args:
        source: a lesion-free head CT in HU (NIfTI); the default is the BSD-licensed GE scan beside the repository
            (``../shared/data/head_ct_ge/ge_head_ct_axial_256.nii.gz`` from the repository root, wherever it runs).
        output_dir: where the cases are written (never inside the project: they derive from a real scan).
        bundles_dir: the folder holding the trained bundles (default:
            ``$SMARTNET_BUNDLES``, else this repository's ``bundles/``).
        n_hemorrhage, n_normal: cases of each class.
        seed: random seed of the bleeds, shifts and flips.
        profile: the config profile the bundles were trained with (``demo``; ``""`` for the reference configs).
        evaluate: also evaluate every bundle that has ``models/model.pt`` (results in ``eval/real_anatomy``).
        bleed_ml: ``low,high`` in mL: each haemorrhage case's blood is cut to a volume drawn in that range (for
            example ``0.5,10`` for the small bleeds a triage model must not miss); default: the size the anatomy
            gives each bleed (about 3-35 mL a case).
    """
    evaluate = _flag(evaluate, "evaluate")  # before any work: a bad value is refused at once
    sizes = _volume_range(bleed_ml)
    src = Path(source).expanduser() if source else REPO_BUNDLES.parents[1] / DEFAULT_REAL_SOURCE
    if not src.is_file():
        _fail(f"no head CT at {src}; pass --source <lesion-free head CT in HU, NIfTI>")
    print(f"painting bleeds into {src} -> {output_dir}", flush=True)
    with exits_on_error(code=2):
        datalist_path = write_real_anatomy_set(src, output_dir, n_hemorrhage, n_normal, seed=seed, bleed_ml=sizes)
    if not evaluate:
        return {}
    root = bundles_dir_or_default(bundles_dir)
    configs = ["train.json"] + ([f"{profile}.json"] if profile else []) + ["evaluate.json"]
    results: dict = {}
    for stage in STAGES:
        bundle = root / STAGE_BUNDLES[stage]
        if not (bundle / "models" / "model.pt").is_file():
            print(f"skipping {stage}: {bundle / 'models' / 'model.pt'} does not exist")
            continue
        eval_dir = bundle / "eval" / "real_anatomy"
        _bundle_run(bundle, configs, {"dataset_dir": str(datalist_path.parent), "eval_dir": str(eval_dir)})
        results[stage] = _stage_metrics(eval_dir, datalist_path.parent / "kinds.json")
    blood = f" of {sizes[0]:g}-{sizes[1]:g} mL" if sizes else ""
    print(f"\nReal-anatomy check ({n_hemorrhage} haemorrhage{blood} + {n_normal} lesion-free cases from {src.name}):")
    _print_metrics(results)
    return results


def operating_point(
    bundle_dir: str,
    dataset_dir: str,
    split: str = "validation",
    method: str = "youden",
    target_sensitivity: float = 0.95,
    profile: str = "demo",
    dry_run: bool = False,
    **overrides,
) -> dict:
    """Choose a trained bundle's decision threshold again on labelled scans of your own, without retraining.

    A threshold chosen on one site's validation scans does not carry to another scanner or population (the demo
    models' classifier calls every real head CT positive while ranking them well; docs/training-at-small-scale.md).
    This evaluates the bundle on ``split`` of ``dataset_dir``'s datalist, picks the threshold there with the rule
    training uses and stores it in ``models/model.pt`` (with the one it replaces and the data it was chosen on), where
    evaluation, inference, reports and the MONAI Label app read it. The volume classifier gets its volume threshold,
    the upstream its slice and volume thresholds; the segmenter has no decision threshold to choose.

    Args:
        bundle_dir: a trained ``smartnet_down_cls`` or ``smartnet_upstream`` bundle (``models/model.pt``).
        dataset_dir: a folder with ``datalist.json`` holding haemorrhage and lesion-free cases in ``split``.
        split: the datalist split to choose on (never the split you report results on).
        method: ``youden`` (balanced errors) or ``sensitivity`` (the highest threshold reaching
            ``target_sensitivity``, for triage).
        profile: the config profile the bundle was trained with (``demo``; ``""`` for the reference configs).
        dry_run: print the new threshold without storing it.
        overrides: further config ids for the evaluation run, as the bundle was trained with them (e.g.
            ``--image_size 128``); the checkpoint's settings record refuses a mismatch.
    """
    if method not in METHODS or method == "fixed":
        _fail(f"unknown method {method!r}; choose youden or sensitivity")
    if not 0.0 < float(target_sensitivity) <= 1.0:
        _fail(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    dry_run = _flag(dry_run, "dry_run")
    bundle = Path(bundle_dir).expanduser()
    checkpoint = bundle / "models" / "model.pt"
    if not (bundle / "configs" / "evaluate.json").is_file():
        _fail(f"no bundle at {bundle} (configs/evaluate.json missing)")
    if not checkpoint.is_file():
        _fail(f"{checkpoint} does not exist: train the bundle first")
    network = json.loads((bundle / "configs" / "train.json").read_text()).get("network_def", {}).get("_target_", "")
    if network.endswith("VolumeSegmenter"):
        _fail(f"{bundle.name} has no decision threshold to choose (the segmenter's voxel threshold, 0.5, is fixed)")
    datalist_path = Path(dataset_dir).expanduser() / "datalist.json"
    if not datalist_path.is_file():
        _fail(f"no datalist at {datalist_path} (write one with: smartnet datalist {dataset_dir})")
    # the record names the data by folder, not full path: released weights carry no personal paths
    eval_dir = bundle / "eval" / f"operating_point_{split}"
    configs = ["train.json"] + ([f"{profile}.json"] if profile else []) + ["evaluate.json"]
    _bundle_run(bundle, configs, {**overrides, "dataset_dir": str(datalist_path.parent), "eval_split": split,
                                  "eval_dir": str(eval_dir), "report": False})
    kind = "upstream" if (eval_dir / "slice_predictions.csv").is_file() else "volume_cls"
    scores = evaluation_scores(eval_dir, kind)
    result = rechoose_operating_point(checkpoint, scores, method, float(target_sensitivity),
                                      chosen_on=f"{datalist_path.parent.name}/datalist.json split {split}",
                                      write=not dry_run)
    previous, record = result["previous"], result["record"]
    print(f"\nOperating point of {bundle.name} ({method}) on {split} of {datalist_path}:")
    for key in SCORE_SOURCES[kind]:
        prefix = key[: -len("threshold")]
        values, labels = scores[key]
        old = previous.get(key)
        print(f"  {key.replace('_', ' ')} ({int(labels.sum())} positive, {int((~labels).sum())} negative):")
        if old is not None:
            sens, spec = _rates_at(values, labels, float(old))
            print(f"    stored   {float(old):.6g}: sensitivity {sens:.3f}, specificity {spec:.3f}")
        print(f"    chosen   {record[key]:.6g}: sensitivity {record[prefix + 'sensitivity']:.3f}, "
              f"specificity {record[prefix + 'specificity']:.3f}")
    print("not stored (--dry_run)" if dry_run else f"stored in {checkpoint} (the replaced value is kept as 'previous')")
    return record


def _rates_at(scores, labels, threshold: float) -> tuple[float, float]:
    """``(sensitivity, specificity)`` of ``scores`` against ``labels`` at ``threshold``."""
    fixed = choose_threshold(scores, labels, "fixed", fixed=threshold)
    return fixed["sensitivity"], fixed["specificity"]


def release(
    out_dir: str = "dist",
    bundles_dir: str | None = None,
    names: str | tuple = BUNDLE_NAMES,
    weights: str = "auto",
    weights_url: str | None = None,
    archive_url: str | None = None,
) -> list[str]:
    """Build ``<name>_v<version>.zip`` for each bundle, self-contained (a copy of this package inside), for
    ``python -m monai.bundle download --url``; plus ``model_info.json`` (sha1 and source of each archive).

    Args:
        out_dir: where the archives are written.
        bundles_dir: the folder holding the bundles (default:
            ``$SMARTNET_BUNDLES``, else this repository's ``bundles/``).
        names: comma-separated bundle folder names.
        weights: ``auto`` (pack ``models/model.pt`` where it exists), ``include`` (it must exist) or ``none``.
        weights_url: base URL the weights will be uploaded to: the weights are then written beside the archives
            and named, with their SHA-256, in each archive's ``large_files.yml`` instead of being packed.
        archive_url: base URL the archives will be uploaded to (for ``model_info.json``; default file:// paths).
    """
    chosen = tuple(n.strip() for n in names.split(",")) if isinstance(names, str) else tuple(names)
    root = bundles_dir_or_default(bundles_dir)
    artifacts = build_release(root, out_dir, chosen, weights, weights_url, archive_url)
    for artifact in artifacts:
        print(artifact.summary())
        for extra in artifact.extra_files:
            print(f"  upload {extra} to {weights_url}")
    first = artifacts[0]
    print(f"index: {Path(out_dir).expanduser().resolve() / 'model_info.json'}\nDownload one with:\n"
          f"  python -m monai.bundle download --name {first.name} --version {first.version} "
          f"--url {first.archive.as_uri()} --bundle_dir <folder>")
    return [str(a.archive) for a in artifacts]


def report(eval_dir: str, prefix: str = "", n_boot: int = 1000) -> None:
    """Build the report of an evaluation folder from its saved results: ROC / PR curves, confusion matrices, lesion
    volume scatter, 95 % bootstrap confidence intervals (added to ``metrics.json``) and ``report.html``. Figures the
    evaluate workflow drew from the network (activation maps, t-SNE, overlays) are included when present."""
    path = build_report(eval_dir, prefix=prefix, n_boot=int(n_boot))
    print(f"report written to {path}")


def study(study_file: str, bundles_dir: str | None = None, only: str | None = None) -> None:
    """Run an ablation study: every unfinished arm of the study file (YAML or JSON; see ``studies/demo.yaml``)
    through the bundles' own workflows, then the comparison tables (``results.md`` / ``.csv``) and figures in its
    output folder. Run the same command again after an interruption: finished arms are skipped, an interrupted
    training resumes from its last checkpoint. Exit status 1 when an arm failed (the others are kept).

    Args:
        study_file: the study file.
        bundles_dir: the folder holding the three bundles (default:
            ``$SMARTNET_BUNDLES``, else this repository's ``bundles/``).
        only: run only the arms whose id contains this text (the tables still cover every finished arm).
    """
    with exits_on_error(code=2):
        status = run_study(study_file, bundles_dir=bundles_dir, only=only)
    if status["failed"]:
        _fail(f"{len(status['failed'])} arm(s) failed: {', '.join(status['failed'])} (the others are kept)")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``smartnet`` console script; ``argv`` (the arguments after ``smartnet``) defaults to the
    command line. Ends with ``SystemExit`` on a refused command (its message on stderr, exit 1)."""
    os.environ.setdefault("PAGER", "cat")  # fire's help must not block in scripts
    commands = {
        "demo": demo,
        "demo-data": demo_data,
        "datalist": datalist,
        "validate": validate,
        "release": release,
        "report": report,
        "study": study,
        "real-check": real_check,
        "operating-point": operating_point,
    }
    with exits_on_error(code=1):  # a refused command: its message, exit 1, no traceback
        fire.Fire(commands, command=argv, serialize=lambda result: None)  # the commands print their own results


if __name__ == "__main__":
    main()
