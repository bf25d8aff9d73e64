"""Run a study's arms through the bundles' own workflows, skipping finished arms, then write the results.

Per arm, in ``<output_dir>/arms/<arm id>/`` (the bundle root of its runs):

* ``arm.json``: its settings and the exact commands; ``rerun.sh`` runs that row alone; ``config.json``: the
  training config it ran with (train.json, the profile and its overrides merged);
* ``train.log``, ``evaluate.log``: the bundle runs' output;
* ``models/``, ``eval/evaluation/`` (``metrics.json``, ``report.html`` ...): what the bundles write;
* ``trained.json`` after training, ``done.json`` (the evaluation metrics and the commands) after evaluation: a re-run
  skips what these mark as finished, and resumes an interrupted training from its last checkpoint (``--resume true``);
  an arm whose settings the study file has changed since it finished runs again (its earlier folder is kept as
  ``<arm id>.old``).

A failed arm is recorded in ``failed.json`` and the study goes on with the arms that do not depend on it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from ..bundle_run import STAGE_BUNDLES, bundle_run_command, bundles_dir_or_default
from ..checkpoints import latest_checkpoint
from ..data.demo_dataset import settings_differing, write_demo_dataset
from ..storage import atomic_write_text
from .results import write_results
from .spec import Arm, Study, StudyError, load_study

__all__ = ["arm_overrides", "bundle_commands", "run_arm", "run_study"]



def arm_overrides(study: Study, arm: Arm) -> dict:
    """The config overrides of ``arm``'s bundle runs: data, seed, its settings and its upstream checkpoint."""
    overrides = {"dataset_dir": str(study.dataset_dir), "seed": arm.seed, **arm.overrides}
    if arm.upstream:
        overrides["pretrained_path"] = str(study.output_dir / "arms" / arm.upstream / "models" / "model.pt")
    return overrides


def bundle_commands(study: Study, arm: Arm, bundles_dir: Path) -> dict[str, list[str]]:
    """The ``train`` and ``evaluate`` command lines of ``arm`` (``python -m monai.bundle run ...``)."""
    bundle = bundles_dir / STAGE_BUNDLES[arm.stage]
    root = study.output_dir / "arms" / arm.id
    profile = [f"{study.profile}.json"] if study.profile else []
    overrides = arm_overrides(study, arm)
    return {"train": bundle_run_command(bundle, ["train.json"] + profile, overrides, root),
            "evaluate": bundle_run_command(bundle, ["train.json"] + profile + ["evaluate.json"], overrides, root)}


def _merged_config(study: Study, arm: Arm, bundles_dir: Path) -> dict:
    """The arm's training config as one dict: the bundle's train.json, the profile and the arm's overrides."""
    from monai.bundle import ConfigParser

    bundle = bundles_dir / STAGE_BUNDLES[arm.stage]
    files = [bundle / "configs" / "train.json"] + (
        [bundle / "configs" / f"{study.profile}.json"] if study.profile else []
    )
    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    overrides = arm_overrides(study, arm)
    parser.update(overrides)
    return parser.get()


def _run_logged(cmd: list[str], log: Path) -> int:
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"\n$ {shlex.join(cmd)}\n")
        out.flush()
        env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
        return subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode


def _tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]) if log.is_file() else ""


def run_arm(study: Study, arm: Arm, bundles_dir: Path) -> dict:
    """Train (resuming if interrupted) and evaluate one arm; returns its ``done.json`` content.

    Raises ``RuntimeError`` (with the log's last lines) when a bundle run fails.
    """
    folder = study.output_dir / "arms" / arm.id
    folder.mkdir(parents=True, exist_ok=True)
    commands = bundle_commands(study, arm, bundles_dir)
    atomic_write_text(folder / "arm.json", json.dumps({**arm.as_dict(), "commands": {
        k: shlex.join(v) for k, v in commands.items()}}, indent=4) + "\n")
    atomic_write_text(folder / "config.json", json.dumps(_merged_config(study, arm, bundles_dir), indent=4) + "\n")
    atomic_write_text(folder / "rerun.sh", "#!/bin/sh\n# re-run this arm alone (train, then evaluate)\nset -e\n"
                      + "\n".join(shlex.join(c) for c in commands.values()) + "\n")
    (folder / "failed.json").unlink(missing_ok=True)
    start = time.time()
    if not (folder / "trained.json").is_file():
        train = list(commands["train"])
        if Path(latest_checkpoint(folder / "models")).is_file():
            train += ["--resume", "true"]  # interrupted earlier: go on from its last checkpoint
        code = _run_logged(train, folder / "train.log")
        if code != 0:
            raise RuntimeError(
                f"training exited with {code}; {folder / 'train.log'} ends:\n{_tail(folder / 'train.log')}"
            )
        atomic_write_text(folder / "trained.json", json.dumps({"seconds": time.time() - start}) + "\n")
    code = _run_logged(commands["evaluate"], folder / "evaluate.log")
    if code != 0:
        raise RuntimeError(f"evaluation exited with {code}; {folder / 'evaluate.log'} ends:\n"
                           f"{_tail(folder / 'evaluate.log')}")
    metrics = json.loads((folder / "eval" / "evaluation" / "metrics.json").read_text())["metrics"]
    done = {"arm": arm.as_dict(), "commands": {k: shlex.join(v) for k, v in commands.items()},
            "data": _data_record(study), "metrics": metrics, "seconds": time.time() - start}
    atomic_write_text(folder / "done.json", json.dumps(done, indent=4) + "\n")
    return done


def _data_record(study: Study) -> dict | None:
    """What wrote the study's demo data (their ``generator.json``); None for data of the user's own."""
    written = study.dataset_dir / "generator.json"
    return json.loads(written.read_text()) if written.is_file() else None


def _finished_with(folder: Path, study: Study, arm: Arm, bundles_dir: Path) -> bool:
    """Whether the finished run in ``folder`` used the commands the study file now gives ``arm`` and, for demo data,
    the same data (a run on volumes of an older generator is not a result for the current one)."""
    done = json.loads((folder / "done.json").read_text())
    saved = done.get("commands")
    current = {k: shlex.join(v) for k, v in bundle_commands(study, arm, bundles_dir).items()}
    data = _data_record(study)
    return (saved is None or saved == current) and (data is None or done.get("data") == data)


def _prepare_data(study: Study) -> None:
    if (study.dataset_dir / "datalist.json").is_file():
        differ = settings_differing(study.dataset_dir, **study.demo_data) if study.demo_data else None
        if differ:
            raise StudyError(f"the demo data in {study.dataset_dir} were generated with other settings "
                             f"(written, wanted: {differ}); delete the folder or change dataset_dir")
        return
    if not study.demo_data:
        raise StudyError(f"no datalist.json in {study.dataset_dir}; make one with `smartnet datalist` or add "
                         "demo_data to the study file")
    print(f"writing demo data to {study.dataset_dir} ...", flush=True)
    write_demo_dataset(study.dataset_dir, verbose=False, **study.demo_data)


def run_study(path: str | Path, bundles_dir: Optional[str | Path] = None, only: Optional[str] = None) -> dict:
    """Run every unfinished arm of the study file at ``path`` (``only``: arm ids containing this text), then write
    the tables and figures. Returns ``{"done": [...], "failed": {...}, "skipped": [...]}``."""
    study = load_study(path)
    bundles = bundles_dir_or_default(bundles_dir)
    missing = [b for b in STAGE_BUNDLES.values() if not (bundles / b / "configs" / "train.json").is_file()]
    if missing:
        raise StudyError(f"bundles not found in {bundles}: {missing}; pass --bundles_dir")
    study.output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(study.output_dir / "study.json", json.dumps(
        {"study_file": str(study.path), "name": study.name, "arms": [a.as_dict() for a in study.arms]},
        indent=4) + "\n")
    _prepare_data(study)
    arms = [a for a in study.arms if only is None or only in a.id]
    status: dict = {"done": [], "skipped": [], "failed": {}}
    began = time.time()
    for number, arm in enumerate(arms, start=1):
        label = f"[{number}/{len(arms)}] {arm.id}"
        folder = study.output_dir / "arms" / arm.id
        if (folder / "done.json").is_file():
            if _finished_with(folder, study, arm, bundles):
                print(f"{label}: finished earlier, skipped", flush=True)
                status["skipped"].append(arm.id)
                continue
            old = folder.with_name(folder.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            folder.rename(old)
            print(f"{label}: the study file or its demo data changed since this arm finished; its earlier run is kept "
                  f"in {old} and the arm runs again", flush=True)
        if arm.upstream and arm.upstream in status["failed"]:
            status["failed"][arm.id] = f"its upstream arm {arm.upstream} failed"
            print(f"{label}: not run, its upstream arm {arm.upstream} failed", flush=True)
            continue
        print(f"{label}: running (logs in {folder}) ...", flush=True)
        try:
            done = run_arm(study, arm, bundles)
        except RuntimeError as err:
            status["failed"][arm.id] = str(err)
            atomic_write_text(folder / "failed.json", json.dumps({"arm": arm.id, "error": str(err)}, indent=4) + "\n")
            print(f"{label}: FAILED: {err}", file=sys.stderr, flush=True)
            continue
        shown = ", ".join(f"{k} {v:.3f}" for k, v in done["metrics"].items()
                          if k in ("auroc", "dice_mean", "slice_auroc") and isinstance(v, (int, float)))
        print(f"{label}: done in {done['seconds']:.0f} s ({shown})", flush=True)
        status["done"].append(arm.id)
    outputs = write_results(study)
    print(f"study {study.name!r}: {len(status['done'])} arm(s) run, {len(status['skipped'])} skipped as finished, "
          f"{len(status['failed'])} failed, {time.time() - began:.0f} s")
    for name, path_ in outputs.items():
        print(f"  {name:<12} {path_}")
    if status["failed"]:
        print("failed arms (fix and run the same command again; finished arms are kept):", file=sys.stderr)
        for arm_id, why in status["failed"].items():
            print(f"  {arm_id}: {why.splitlines()[0]}", file=sys.stderr)
    return status
