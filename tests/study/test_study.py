"""The ablation-study runner: arms expanded from a study file, run through the bundles, resumed, and tabulated."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import BUNDLE_ENV, TINY_DOWN_OVERRIDES
from imagenet_format import torchvision_resnet_state_dict
from report_checks import png_size
from smartnet.study import StudyError, load_study, summarise, write_results

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, study: dict) -> Path:
    path.write_text(yaml.safe_dump(study))
    return path


def test_demo_and_paper_study_files_expand_to_the_intended_arms():
    demo = load_study(REPO / "studies" / "demo.yaml")
    ids = [a.id for a in demo.arms]
    assert len(ids) == 10 and ids[0] == "up-smartnet-cons-s0"
    assert {"up-smartnet-nocons-s1", "cls-scratch-lstm-s1",
            "cls-upstream-smartnet-nocons-lstm-s0"} <= set(ids)
    arm = next(a for a in demo.arms if a.id == "cls-upstream-smartnet-nocons-lstm-s0")
    assert arm.upstream == "up-smartnet-nocons-s0" and arm.overrides["operator"] == "lstm"
    assert next(a for a in demo.arms if a.id == "up-smartnet-nocons-s0").overrides["consistency"] is False
    paper = load_study(REPO / "studies" / "paper.yaml")
    upstream = [a for a in paper.arms if a.stage == "upstream"]
    # 7 variants; consistency on/off where both cls and seg heads exist (smartnet, dual_cls_seg); 3 seeds
    assert len(upstream) == (2 * 2 + 5) * 3
    single_seg = next(a for a in upstream if a.id == "up-single_seg-nocons-s0")
    assert single_seg.overrides["seg_peak"] is False  # no CLS head for the SEG peak (the demo profile sets it)
    assert "seg_peak" not in next(a for a in upstream if a.id == "up-smartnet-cons-s0").overrides
    assert next(a for a in upstream if a.id == "up-single_cls-nocons-s0").overrides["seg_prior"] is None
    assert "seg_prior" not in single_seg.overrides
    seg_from_cls_only = next(a for a in paper.arms if a.id == "seg-upstream-single_cls-nocons-s0")
    assert seg_from_cls_only.overrides["init"] == "upstream"  # that upstream has no seg decoder to transfer
    assert seg_from_cls_only.overrides["slice_head"] is False  # nor a 2D segmentation head to keep
    assert next(a for a in demo.arms if a.id == "cls-scratch-lstm-s1").overrides["slice_head"] is False
    assert next(a for a in demo.arms if a.id == "cls-scratch-lstm-s1").overrides["seg_evidence"] is False
    cls_from_cls_only = next(a for a in paper.arms if a.id.startswith("cls-upstream-single_cls-nocons-"))
    assert cls_from_cls_only.overrides["seg_evidence"] is False  # no upstream seg decoder to take evidence from
    assert "seg_evidence" not in arm.overrides
    assert "slice_head" not in arm.overrides  # an upstream with both heads: the profile decides
    assert "init" not in next(a for a in paper.arms if a.id == "seg-upstream-smartnet-cons-s0").overrides  # profile's
    assert next(a for a in demo.arms if a.id == "cls-scratch-lstm-s1").overrides["init"] == "scratch"
    assert {a.overrides["imagenet_path"] for a in paper.arms if a.init == "imagenet"} == \
        {os.path.expanduser("~/smartnet_data/imagenet/resnet50.pth")}


@pytest.mark.parametrize("change, message", [
    ({"upstream": {"variants": ["triple"]}}, "upstream.variants: unknown ['triple']"),
    ({"downstream": {"init": ["imagenet"]}}, "set downstream.imagenet_path"),
    ({"downstream": {"init": ["upstream"]}}, "has no 'upstream' section"),
    ({"downstream": {"operators": ["lstm", "cnn"]}}, "downstream.operators: unknown ['cnn']"),
    ({"epochs": 3}, "study: unknown key(s) ['epochs']"),
    ({"common": {"learning_rate": "$__import__('os').system('touch /tmp/x')"}}, "study.common.learning_rate"),
    ({"downstream": {"init": ["scratch"], "overrides": {"encoder": "@encoder_of_upstream"}}}, "config syntax"),
])
def test_bad_study_files_name_the_problem(tmp_path, change, message):
    study = {"name": "x", "dataset_dir": str(tmp_path), "downstream": {"init": ["scratch"]}, **change}
    with pytest.raises(StudyError) as err:
        load_study(_write(tmp_path / "study.yaml", study))
    assert message in str(err.value)


def test_table_is_mean_and_sd_over_seeds(tmp_path):
    study = load_study(_write(tmp_path / "s.yaml", {
        "name": "t", "dataset_dir": str(tmp_path), "seeds": [0, 1],
        "downstream": {"tasks": ["cls", "seg"], "init": ["scratch"], "operators": ["mean"]}}))
    values = {"cls-scratch-mean-s0": {"auroc": 0.7, "sensitivity": 0.5, "specificity": 1.0},
              "cls-scratch-mean-s1": {"auroc": 0.9, "sensitivity": 1.0, "specificity": 0.5},
              "seg-scratch-s0": {"dice_mean": 0.4}}  # seed 1 of seg unfinished: its row has one seed
    for arm_id, metrics in values.items():
        folder = study.output_dir / "arms" / arm_id
        folder.mkdir(parents=True)
        (folder / "done.json").write_text(json.dumps({"metrics": metrics}))
    written = write_results(study)
    rows = {r["arm"]: r for r in csv.DictReader(open(written["csv"]))}
    assert float(rows["cls-scratch-mean"]["volume_auroc_mean"]) == pytest.approx(0.8)
    assert float(rows["cls-scratch-mean"]["volume_auroc_sd"]) == pytest.approx(0.141421, abs=1e-5)
    assert rows["seg-scratch"]["seeds"] == "0" and rows["seg-scratch"]["dice_sd"] == ""
    markdown = written["table"].read_text(encoding="utf-8")
    assert "| cls-scratch-mean | 0 1 | 0.800 ± 0.141 | 0.750 ± 0.354 | 0.750 ± 0.354 |" in markdown
    assert "| seg-scratch | 0 |  |  |  | 0.400 |" in markdown
    assert png_size(written["figure"])[0] == 1000
    assert summarise([])[:1] == []


def _study_process(study_file: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "smartnet.cli", "study", str(study_file)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace", env=BUNDLE_ENV,
                            start_new_session=True)


def test_tiny_study_runs_resumes_after_a_kill_and_tabulates_each_arm(tiny_dataset, tmp_path):
    """2 arms (scratch vs ImageNet init, mean-pooling operator) x 1 seed on the tiny dataset: killed once the first
    arm is finished, run again (the first arm is skipped, the second runs), then once more (nothing runs)."""
    imagenet = tmp_path / "resnet18.pth"
    torch.save(torchvision_resnet_state_dict("resnet18"), imagenet)
    overrides = {**TINY_DOWN_OVERRIDES, "report": False}  # the report's figures are tested elsewhere
    study_file = _write(tmp_path / "tiny.yaml", {
        "name": "tiny", "output_dir": "out", "dataset_dir": str(tiny_dataset), "profile": None, "seeds": [0],
        "common": overrides,
        "downstream": {"tasks": ["cls"], "init": ["scratch", "imagenet"], "operators": ["mean"],
                       "imagenet_path": str(imagenet), "overrides": {"epochs": 1, "val_interval": 1}}})
    arms = tmp_path / "out" / "arms"
    first, second = arms / "cls-scratch-mean-s0", arms / "cls-imagenet-mean-s0"

    process = _study_process(study_file)
    deadline = time.time() + 600
    while not (first / "done.json").is_file() and process.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert (first / "done.json").is_file(), process.communicate()[0][-3000:]
    os.killpg(process.pid, signal.SIGKILL)  # the study and the bundle run it started
    process.wait()
    assert not (second / "done.json").is_file()

    rerun = subprocess.run([sys.executable, "-m", "smartnet.cli", "study", str(study_file)], capture_output=True,
                           text=True, encoding="utf-8", errors="replace", env=BUNDLE_ENV, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "[1/2] cls-scratch-mean-s0: finished earlier, skipped" in rerun.stdout
    assert "[2/2] cls-imagenet-mean-s0: done in" in rerun.stdout
    train_log = (second / "train.log").read_text(encoding="utf-8")
    assert f"loaded 100 tensors (encoder.*) from {imagenet}" in train_log  # ImageNet init through the bundle

    again = subprocess.run([sys.executable, "-m", "smartnet.cli", "study", str(study_file)], capture_output=True,
                           text=True, encoding="utf-8", errors="replace", env=BUNDLE_ENV, timeout=300)
    assert again.returncode == 0 and again.stdout.count("finished earlier, skipped") == 2, again.stdout

    out = tmp_path / "out"
    per_seed = {r["arm"]: r for r in csv.DictReader(open(out / "results_per_seed.csv"))}
    assert set(per_seed) == {"cls-scratch-mean-s0", "cls-imagenet-mean-s0"}
    for arm_id, row in per_seed.items():  # each row = that arm's own evaluation output
        own = json.loads((arms / arm_id / "eval" / "evaluation" / "metrics.json").read_text())["metrics"]
        assert float(row["volume_auroc"]) == own["auroc"] and float(row["sensitivity"]) == own["sensitivity"]
        assert float(row["specificity"]) == own["specificity"]
        assert row["init"] == arm_id.split("-")[1] and row["operator"] == "mean"
    table = (out / "results.md").read_text(encoding="utf-8")
    assert "| cls-scratch-mean | 0 |" in table and "| cls-imagenet-mean | 0 |" in table
    assert png_size(out / "comparison.png")[0] == 1000
    for arm_dir in (first, second):  # any row can be re-run alone
        saved = json.loads((arm_dir / "arm.json").read_text())
        assert "monai.bundle run" in saved["commands"]["train"] and "evaluate.json" in saved["commands"]["evaluate"]
        assert (arm_dir / "rerun.sh").read_text().count("monai.bundle run") == 2
        assert (arm_dir / "train.log").is_file() and (arm_dir / "evaluate.log").is_file()
        config = json.loads((arm_dir / "config.json").read_text())
        assert config["init"] == arm_dir.name.split("-")[1] and config["operator"] == "mean" and config["epochs"] == 1


def test_an_arm_whose_settings_changed_is_not_taken_as_finished(tmp_path):
    from smartnet.bundle_run import REPO_BUNDLES as DEFAULT_BUNDLES
    from smartnet.study.runner import _finished_with, bundle_commands

    spec = {"name": "t", "dataset_dir": str(tmp_path), "downstream": {"init": ["scratch"], "overrides": {"epochs": 2}}}
    study = load_study(_write(tmp_path / "s.yaml", spec))
    arm = study.arms[0]
    folder = tmp_path / "arm"
    folder.mkdir()
    commands = {k: shlex.join(v) for k, v in bundle_commands(study, arm, DEFAULT_BUNDLES).items()}
    (folder / "done.json").write_text(json.dumps({"metrics": {}, "commands": commands}))
    assert _finished_with(folder, study, arm, DEFAULT_BUNDLES)
    changed = load_study(_write(tmp_path / "s.yaml", {**spec, "downstream": {**spec["downstream"],
                                                                             "overrides": {"epochs": 3}}}))
    assert "--epochs 3" in shlex.join(bundle_commands(changed, changed.arms[0], DEFAULT_BUNDLES)["train"])
    assert not _finished_with(folder, changed, changed.arms[0], DEFAULT_BUNDLES)


def test_demo_data_from_another_generator_version_is_refused_not_reused(tmp_path):
    """Demo data written by an older generator (other volumes for the same settings) must not feed a study."""
    from smartnet.data.demo import GENERATOR_VERSION
    from smartnet.study.runner import _prepare_data

    demo_data = {"n_train": 2, "n_valid": 1, "n_test": 1, "size": 32, "seed": 0}
    study = load_study(_write(tmp_path / "s.yaml", {"name": "t", "dataset_dir": str(tmp_path / "data"),
                                                    "demo_data": demo_data, "downstream": {"init": ["scratch"]}}))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "datalist.json").write_text("{}")
    written = {"anatomy": "phantom", "inner_table_band": False, **demo_data}
    (tmp_path / "data" / "generator.json").write_text(json.dumps(written))  # no version: written before it was recorded
    with pytest.raises(StudyError, match="generator_version"):
        _prepare_data(study)
    (tmp_path / "data" / "generator.json").write_text(json.dumps({"generator_version": GENERATOR_VERSION, **written}))
    _prepare_data(study)  # the current generator's data are used as they are


def test_an_arm_finished_on_other_demo_data_is_not_taken_as_finished(tmp_path):
    from smartnet.bundle_run import REPO_BUNDLES as DEFAULT_BUNDLES
    from smartnet.study.runner import _finished_with, bundle_commands

    spec = {"name": "t", "dataset_dir": str(tmp_path), "downstream": {"init": ["scratch"]}}
    study = load_study(_write(tmp_path / "s.yaml", spec))
    arm, folder = study.arms[0], tmp_path / "arm"
    folder.mkdir()
    commands = {k: shlex.join(v) for k, v in bundle_commands(study, arm, DEFAULT_BUNDLES).items()}
    (tmp_path / "generator.json").write_text(json.dumps({"generator_version": 2, "seed": 0}))
    (folder / "done.json").write_text(json.dumps({"metrics": {}, "commands": commands}))  # data not recorded
    assert not _finished_with(folder, study, arm, DEFAULT_BUNDLES)
    (folder / "done.json").write_text(json.dumps({"metrics": {}, "commands": commands,
                                                  "data": {"generator_version": 2, "seed": 0}}))
    assert _finished_with(folder, study, arm, DEFAULT_BUNDLES)
    (tmp_path / "generator.json").write_text(json.dumps({"generator_version": 3, "seed": 0}))  # data written again
    assert not _finished_with(folder, study, arm, DEFAULT_BUNDLES)
