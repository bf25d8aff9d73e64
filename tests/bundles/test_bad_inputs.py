"""Broken inputs (see broken_inputs.py): validation names each file and problem, training refuses a bad datalist
listing every problem, batch inference carries on past bad files and reports them; no traceback anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import pytest

from broken_inputs import copy_case, make_broken_corpus, write_good_case
from conftest import DOWN_CLS, DOWN_SEG, UPSTREAM, run_bundle, run_cli
from smartnet.data import validate_entries

pytestmark = pytest.mark.slow

MASK_CASES = {"non_binary_mask", "shape_mismatch", "affine_mismatch"}  # the mask is the file at fault
TINY_INFER = {"encoder": "resnet18", "stem_stride": 2, "image_size": 32,
              "allow_random_weights": True}  # screening is under test here, not the weights


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[dict, str]]:
    return make_broken_corpus(tmp_path_factory.mktemp("broken"))


def test_validation_names_the_file_and_problem_of_every_broken_input(corpus):
    for name, (entry, phrase) in corpus.items():
        problems = validate_entries([entry], require_label="label" in entry)
        assert problems, f"{name}: not detected"
        named = entry["label"] if name in MASK_CASES else entry["image"]
        assert any(p.startswith(f"{named}: ") and phrase in p for p in problems), f"{name}: {problems}"
        assert not any("Traceback" in p or "\n" in p for p in problems), name


def test_good_inputs_pass_validation(tmp_path):
    entry = write_good_case(tmp_path, "fine")
    assert validate_entries([entry]) == []


def test_cli_validate_lists_every_problem_without_traceback(corpus, tmp_path):
    entries = [entry for entry, _ in corpus.values()]
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"test": entries}))
    result = run_cli("validate", datalist, "--splits", "test")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{len(entries)} problem(s)" in result.stderr
    for entry, phrase in corpus.values():
        assert phrase in result.stderr


def test_training_refuses_a_datalist_with_broken_entries_listing_them_all(corpus, tmp_path):
    picked = ["truncated_gzip", "nan_inf", "non_binary_mask", "dicom_missing_slice", "nonexistent"]
    good = [write_good_case(tmp_path / "good", f"g{i}", seed=i) for i in range(2)]
    broken = [corpus[name][0] for name in picked]
    for entry in broken:
        entry.setdefault("label", good[0]["label"])
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": good + broken[:3], "validation": good[:1] + broken[3:]}))
    result = run_bundle(UPSTREAM, ["train.json"], {"datalist": datalist, "epochs": 1, "num_workers": 0},
                        bundle_root=tmp_path / "root", check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{len(picked)} problem(s)" in result.stderr
    for name in picked:
        assert corpus[name][1] in result.stderr, name
    assert not (tmp_path / "root" / "models").exists()


def test_batch_inference_carries_on_past_bad_files(corpus, tmp_path):
    inputs = tmp_path / "in"
    good = [write_good_case(inputs, f"good{i}", seed=i) for i in range(2)]
    for entry in good:
        Path(entry["label"]).unlink()  # inference inputs: images only
    bad_names = ["truncated_gzip", "random_bytes", "empty_file", "image_2d", "image_4d", "nan_inf", "raw_unsigned",
                 "windowed_0_1", "huge_header", "dicom_missing_slice", "dicom_mixed_series"]
    bad = {name: copy_case(corpus[name][0], inputs) for name in bad_names}
    out = tmp_path / "out"
    result = run_bundle(UPSTREAM, ["inference.json"], {"input": inputs, "output_dir": out, **TINY_INFER},
                        bundle_root=tmp_path / "root", check=False)
    log = result.stdout + result.stderr
    assert result.returncode == 1, log[-3000:]
    assert "Traceback" not in log
    assert f"Inference: 2 of {2 + len(bad)} input(s) done, {len(bad)} failed" in log
    for entry in good:  # every good input has its complete result
        case = Path(entry["image"]).name.replace("_img.nii.gz", "")
        seg = nib.load(out / f"{case}_img_seg.nii.gz")
        assert seg.shape == nib.load(entry["image"]).shape
    assert sorted(p.name for p in out.glob("*_seg.nii.gz")) == ["good0_img_seg.nii.gz", "good1_img_seg.nii.gz"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary or partial file left
    report = json.loads((out / "failures.json").read_text())
    assert report["inputs"] == 2 + len(bad) and report["succeeded"] == 2
    failed = {Path(f["image"]).name: f["problem"] for f in report["failed"]}
    assert set(failed) == {path.name for path in bad.values()}
    for name, path in bad.items():
        assert corpus[name][1] in failed[path.name], (name, failed[path.name])
    cases = {row.split(",")[0] for row in (out / "slice_probabilities.csv").read_text().splitlines()[1:]}
    assert cases == {"good0", "good1"}


def test_inference_on_a_missing_input_is_one_message(tmp_path):
    result = run_bundle(UPSTREAM, ["inference.json"], {"input": tmp_path / "nowhere", "output_dir": tmp_path / "out",
                                                       **TINY_INFER}, bundle_root=tmp_path, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "does not exist" in result.stderr


def test_inference_on_good_inputs_exits_zero_with_an_empty_failure_list(tmp_path):
    inputs = tmp_path / "in"
    entry = write_good_case(inputs, "only")
    Path(entry["label"]).unlink()
    out = tmp_path / "out"
    result = run_bundle(UPSTREAM, ["inference.json"], {"input": inputs, "output_dir": out, **TINY_INFER},
                        bundle_root=tmp_path)
    assert "Inference: 1 of 1 input(s) done, 0 failed" in result.stdout
    assert json.loads((out / "failures.json").read_text())["failed"] == []


@pytest.mark.parametrize("bundle", [UPSTREAM, DOWN_CLS, DOWN_SEG], ids=["upstream", "down_cls", "down_seg"])
def test_inference_without_trained_weights_is_refused(bundle, tmp_path):
    """No model.pt: one message and exit 2 before any input is read, never outputs from random weights."""
    inputs = tmp_path / "in"
    write_good_case(inputs, "only")
    out = tmp_path / "out"
    overrides = {"input": inputs, "output_dir": out, "encoder": "resnet18", "stem_stride": 2, "image_size": 32}
    result = run_bundle(bundle, ["inference.json"], overrides, bundle_root=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "no trained weights at" in result.stderr and str(tmp_path / "models" / "model.pt") in result.stderr
    assert not list(out.glob("*.nii.gz")) and not (out / "slice_probabilities.csv").exists()


@pytest.mark.parametrize("content", ["damaged", "pickled"])
def test_inference_with_unreadable_weights_is_one_message(content, tmp_path):
    import pickle

    import torch

    ckpt = tmp_path / "models" / "model.pt"
    ckpt.parent.mkdir(parents=True)
    if content == "damaged":
        ckpt.write_bytes(b"PK\x03\x04 not really a checkpoint")
    else:
        torch.save({"model": {}, "extra": Path("x")}, ckpt, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    inputs = tmp_path / "in"
    write_good_case(inputs, "only")
    result = run_bundle(UPSTREAM, ["inference.json"], {"input": inputs, "output_dir": tmp_path / "out", **TINY_INFER},
                        bundle_root=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "Cannot use the trained weights" in result.stderr and str(ckpt) in result.stderr
    assert ("not a readable PyTorch checkpoint" if content == "damaged" else "refused") in result.stderr


def test_random_weights_only_when_asked_and_said_loudly(tmp_path):
    inputs = tmp_path / "in"
    write_good_case(inputs, "only")
    result = run_bundle(UPSTREAM, ["inference.json"], {"input": inputs, "output_dir": tmp_path / "out", **TINY_INFER},
                        bundle_root=tmp_path)
    assert "running with RANDOM weights" in result.stderr and "meaningless" in result.stderr
