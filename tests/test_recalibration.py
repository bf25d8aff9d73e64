"""Choosing a trained model's operating point again on other labelled scans (``smartnet operating-point``)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_OVERRIDES, UPSTREAM, run_cli
from smartnet.operating_point import stored_threshold
from smartnet.recalibration import OperatingPointError, evaluation_scores, rechoose_operating_point


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _checkpoint(path: Path, threshold: float = 0.15) -> dict:
    state = {"model": torch.nn.Linear(2, 1).state_dict(), "settings": {"encoder": "resnet18"},
             "operating_point": {"method": "youden", "threshold": threshold, "sensitivity": 1.0, "specificity": 1.0}}
    torch.save(state, path)
    return state


def test_classifier_threshold_is_chosen_on_the_new_scans_and_stored_with_the_old_one(tmp_path):
    # a shifted population: every case above the stored 0.15, the classes still ordered (positives from 0.9999)
    probabilities = [0.99, 0.995, 0.998, 0.9990, 0.99990, 0.99995, 0.99998, 0.99999]
    _write_csv(tmp_path / "per_case.csv", [{"case_id": f"c{i}", "label": int(i >= 4), "probability": p}
                                           for i, p in enumerate(probabilities)])
    before = _checkpoint(tmp_path / "model.pt")
    scores = evaluation_scores(tmp_path, "volume_cls")
    result = rechoose_operating_point(tmp_path / "model.pt", scores, chosen_on="site B validation")
    state = torch.load(tmp_path / "model.pt", weights_only=True)  # still plain data
    record = state["operating_point"]
    assert 0.9990 < record["threshold"] < 0.99990  # between the classes, not the stored 0.15
    assert record["sensitivity"] == 1.0 and record["specificity"] == 1.0
    assert record["previous"] == {"threshold": 0.15} and record["chosen_on"] == "site B validation"
    assert result["previous"]["threshold"] == 0.15
    assert torch.equal(state["model"]["weight"], before["model"]["weight"]) and state["settings"] == before["settings"]
    assert stored_threshold(tmp_path / "model.pt") == pytest.approx(record["threshold"])  # what the workflows read


def test_subtype_thresholds_are_chosen_again_where_the_scans_hold_both_classes_and_kept_elsewhere(tmp_path):
    """A subtype classifier: each subtype the new scans hold with and without gets a new threshold, the others keep
    theirs (nothing stored is dropped)."""
    from smartnet.operating_point import stored_subtype_thresholds
    from smartnet.vocabulary import SUBTYPES

    rows = []
    for i in range(8):
        row = {"case_id": f"c{i}", "label": int(i >= 4), "probability": 0.1 + 0.1 * i}
        for name in SUBTYPES[1:]:
            row[f"p_{name}"], row[f"label_{name}"] = 0.2, 0
        row["p_subdural"], row["label_subdural"] = (0.6 + 0.01 * i, 1) if i >= 6 else (0.3, 0)
        rows.append(row)
    _write_csv(tmp_path / "per_case.csv", rows)
    state = _checkpoint(tmp_path / "model.pt")
    stored = {name: 0.4 for name in SUBTYPES[1:]}
    state["operating_point"]["subtype_thresholds"] = stored
    torch.save(state, tmp_path / "model.pt")
    scores = evaluation_scores(tmp_path, "volume_cls")
    assert {f"subtype:{name}" for name in SUBTYPES[1:]} <= scores.keys()
    record = rechoose_operating_point(tmp_path / "model.pt", scores)["record"]
    assert 0.3 < record["subtype_thresholds"]["subdural"] < 0.6  # chosen on the new scans
    assert record["subtype_thresholds"]["epidural"] == 0.4  # no epidural case there: kept
    assert record["previous"]["subtype_thresholds"] == stored
    assert stored_subtype_thresholds(tmp_path / "model.pt") == pytest.approx(record["subtype_thresholds"])


def test_upstream_gets_slice_and_volume_thresholds(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.3
    _write_csv(tmp_path / "slice_predictions.csv",
               [{"case_id": "c", "slice_index": i, "probability": 0.6 + 0.3 * y + 0.05 * rng.random(), "label": int(y)}
                for i, y in enumerate(labels)])
    _write_csv(tmp_path / "per_case.csv",
               [{"case_id": f"c{i}", "volume_label": int(i % 2), "volume_score": 0.7 + 0.2 * (i % 2)}
                for i in range(6)])
    _checkpoint(tmp_path / "model.pt", threshold=0.01)
    record = rechoose_operating_point(tmp_path / "model.pt", evaluation_scores(tmp_path, "upstream"))["record"]
    assert 0.65 < record["threshold"] < 0.9 and record["sensitivity"] == 1.0 and record["specificity"] == 1.0
    assert 0.7 < record["volume_threshold"] < 0.9 and record["volume_specificity"] == 1.0
    assert record["previous"] == {"threshold": 0.01}


def test_one_class_missing_files_and_dry_runs(tmp_path):
    _write_csv(tmp_path / "per_case.csv", [{"case_id": f"c{i}", "label": 1, "probability": 0.9} for i in range(3)])
    _checkpoint(tmp_path / "model.pt")
    original = (tmp_path / "model.pt").read_bytes()
    with pytest.raises(OperatingPointError, match="3 positive and 0 negative"):
        rechoose_operating_point(tmp_path / "model.pt", evaluation_scores(tmp_path, "volume_cls"))
    with pytest.raises(OperatingPointError, match="slice_predictions.csv does not exist"):
        evaluation_scores(tmp_path, "upstream")
    with pytest.raises(OperatingPointError, match="no operating point"):
        evaluation_scores(tmp_path, "volume_seg")
    _write_csv(tmp_path / "per_case.csv",
               [{"case_id": f"c{i}", "label": i % 2, "probability": 0.1 * i} for i in range(4)])
    rechoose_operating_point(tmp_path / "model.pt", evaluation_scores(tmp_path, "volume_cls"), write=False)
    assert (tmp_path / "model.pt").read_bytes() == original  # nothing written, nothing half-written


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smartnet.cli", "operating-point", *map(str, args)],
                          capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)


@pytest.mark.slow
def test_cli_evaluates_the_bundle_and_stores_the_threshold(tiny_dataset, tiny_bundles_root, tmp_path):
    bundle = tmp_path / "smartnet_upstream"
    shutil.copytree(UPSTREAM / "configs", bundle / "configs")
    shutil.copytree(tiny_bundles_root / "smartnet_upstream" / "models", bundle / "models")
    before = torch.load(bundle / "models" / "model.pt", weights_only=True)["operating_point"]
    options = [x for k, v in TINY_OVERRIDES.items() for x in (f"--{k}", v)]
    dry = _cli(bundle, "--dataset_dir", tiny_dataset, "--split", "validation", "--profile", "", "--dry_run", "true",
               *options)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "not stored (--dry_run)" in dry.stdout and "volume threshold" in dry.stdout
    assert torch.load(bundle / "models" / "model.pt", weights_only=True)["operating_point"] == before
    done = _cli(bundle, "--dataset_dir", tiny_dataset, "--split", "validation", "--profile", "", *options)
    assert done.returncode == 0, done.stderr[-3000:]
    record = torch.load(bundle / "models" / "model.pt", weights_only=True)["operating_point"]
    assert record["previous"]["threshold"] == pytest.approx(before["threshold"])
    assert "validation" in record["chosen_on"] and {"threshold", "volume_threshold"} <= record.keys()
    assert (bundle / "eval" / "operating_point_validation" / "slice_predictions.csv").is_file()


def test_cli_refuses_the_segmenter_and_bad_settings_with_one_line(tiny_dataset, tmp_path):
    seg = tmp_path / "smartnet_down_seg"
    shutil.copytree(UPSTREAM.parent / "smartnet_down_seg" / "configs", seg / "configs")
    (seg / "models").mkdir()
    (seg / "models" / "model.pt").write_bytes(b"")
    result = run_cli("operating-point", seg, "--dataset_dir", tiny_dataset)
    assert result.returncode == 1 and "no decision threshold to choose" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("operating-point", seg, "--dataset_dir", tiny_dataset, "--method", "best")
    assert result.returncode == 1 and "unknown method 'best'" in result.stderr
    result = run_cli("operating-point", seg, "--dataset_dir", tiny_dataset, "--dry_run", "maybe")
    assert result.returncode == 1 and "--dry_run takes true or false" in result.stderr
