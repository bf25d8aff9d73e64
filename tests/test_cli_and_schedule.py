"""The `smartnet` command line and the learning-rate schedule."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from smartnet.cli import DEFAULT_DATA_DIR, DEMO_DATA, demo
from smartnet.data.demo import GENERATOR_VERSION
from smartnet.schedules import WarmupLinearDecay
from smartnet.study import load_study


def console_script(*args: str) -> subprocess.CompletedProcess:
    """The real console script in a fresh interpreter (what a user types); other tests use ``run_cli``."""
    return subprocess.run([sys.executable, "-m", "smartnet.cli", *args], capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=600)


def test_demo_data_then_datalist_then_validate(tmp_path):
    out = tmp_path / "demo"
    result = run_cli("demo-data", str(out), "--n_train", "2", "--n_valid", "1", "--n_test", "1", "--size", "32",
                      "--depth", "6")
    assert result.returncode == 0, result.stderr
    datalist = json.loads((out / "datalist.json").read_text())
    assert [len(datalist[k]) for k in ("training", "validation", "test")] == [2, 1, 1]
    assert run_cli("datalist", str(out)).returncode == 0
    result = run_cli("validate", str(out / "datalist.json"))
    assert result.returncode == 0 and "look right" in result.stdout
    written = json.loads((out / "generator.json").read_text())  # what wrote the files, split sizes included
    assert written["anatomy"] == "phantom" and [written[k] for k in ("n_train", "n_valid", "n_test")] == [2, 1, 1]
    assert written["generator_version"] == GENERATOR_VERSION  # data from another generator are written again


def test_demo_data_with_head_anatomy_and_a_bad_anatomy(tmp_path):
    result = run_cli("demo-data", str(tmp_path / "head"), "--n_train", "1", "--n_valid", "1", "--n_test", "1",
                      "--size", "64", "--depth", "8", "--anatomy", "head")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "head" / "generator.json").read_text())["anatomy"] == "head"
    result = run_cli("demo-data", str(tmp_path / "bad"), "--anatomy", "skull")
    assert result.returncode == 1 and "unknown anatomy" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("bleed_ml", ["3", "a,b", "5,1", "0,2"])
def test_real_check_refuses_a_bad_volume_range_before_any_work(tmp_path, bleed_ml):
    result = run_cli("real-check", "--source", tmp_path / "missing.nii.gz", "--output_dir", tmp_path / "out",
                     "--bleed_ml", bleed_ml)
    assert result.returncode == 2 and "bleed_ml" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_datalist_error_is_a_message_not_a_traceback(tmp_path):
    result = console_script("datalist", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_schedule_has_no_epochs_at_zero_lr():
    f = WarmupLinearDecay(total=1000, warmup=10, hold_fraction=0.1, min_factor=0.002)
    assert f(0) == pytest.approx(0.1) and f(1) == pytest.approx(0.2)
    assert f(9) == f(10) == f(99) == 1.0
    assert f(100) == 1.0 and f(550) == pytest.approx(1 - 450 / 899 * 0.998)
    assert f(999) == pytest.approx(0.002)
    assert all(f(e) > 0 for e in range(1000))


def test_schedule_short_runs():
    f = WarmupLinearDecay(total=3, warmup=10)
    assert [round(f(e), 3) for e in range(3)] == [0.333, 0.667, 1.0]
    with pytest.raises(ValueError):
        WarmupLinearDecay(total=0)


def test_bundles_folder_from_the_option_then_the_environment_then_the_checkout(tmp_path, monkeypatch):
    from smartnet.bundle_run import BUNDLES_ENV, REPO_BUNDLES, bundles_dir_or_default

    monkeypatch.delenv(BUNDLES_ENV, raising=False)
    assert bundles_dir_or_default(None) == REPO_BUNDLES
    monkeypatch.setenv(BUNDLES_ENV, str(tmp_path / "site"))
    assert bundles_dir_or_default(None) == tmp_path / "site"
    assert bundles_dir_or_default(str(tmp_path / "given")) == tmp_path / "given"
    # a command without bundles there says where it looked and how to point it elsewhere
    result = run_cli("demo", "--data_dir", str(tmp_path / "data"), "--stages", "upstream")
    assert result.returncode == 1 and str(tmp_path / "site" / "smartnet_upstream") in result.stderr
    assert BUNDLES_ENV in result.stderr and "Traceback" not in result.stderr


def test_the_demo_seeds_study_trains_on_smartnet_demos_data():
    # the README's three-seed numbers stand for `smartnet demo`: the study must write and read the demo's own data
    study = load_study(Path(__file__).resolve().parents[1] / "studies" / "demo_seeds.yaml")
    assert study.dataset_dir == Path(DEFAULT_DATA_DIR).expanduser()
    assert {key: study.demo_data.get(key) for key in DEMO_DATA} == DEMO_DATA
    assert study.demo_data["size"] == inspect.signature(demo).parameters["size"].default
    assert DEMO_DATA["inner_table_band"] is True
