"""The smartnet_upstream bundle through `python -m monai.bundle run`: conformance, train, evaluate, infer, resume."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import REPO, TINY_OVERRIDES, UPSTREAM, bundle_workflow, run_bundle, write_untrained_checkpoint
from mask_checks import assert_nothing_in_the_air_at_the_border
from smartnet.networks.transfer import read_state_dict
from report_checks import CURVES, SQUARE, check_report, montage_size

pytestmark = pytest.mark.slow

CONFIGS = UPSTREAM / "configs"


def test_bundle_files_exist():
    for rel in ["LICENSE", "docs/README.md", "configs/metadata.json", "configs/train.json", "configs/evaluate.json",
                "configs/inference.json", "configs/logging.conf", "configs/demo.json", "configs/multi_gpu_train.json",
                "configs/multi_gpu_evaluate.json"]:
        assert (UPSTREAM / rel).is_file(), rel


def test_json_is_pretty_printed_with_4_spaces():
    for path in sorted((REPO / "bundles").rglob("*.json")):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=4) + "\n", path


def test_metadata_against_vendored_schema():
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    schema = json.loads((REPO / "schemas" / "meta_schema.json").read_text())
    jsonschema.validate(meta, schema)
    assert meta["version"] in meta["changelog"]
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 3


def _workflow(configs: list[str], workflow_type: str, dataset: Path, tmp_path: Path):
    untrained = {"allow_random_weights": True} if workflow_type == "infer" else {}  # the properties, not weights
    if "evaluate.json" in configs:
        write_untrained_checkpoint(UPSTREAM, tmp_path, **TINY_OVERRIDES)
    return bundle_workflow(UPSTREAM, configs, workflow_type, tmp_path, dataset_dir=dataset, **TINY_OVERRIDES,
                           **untrained)


@pytest.mark.parametrize(
    "configs, workflow_type",
    [(["train.json"], "train"), (["train.json", "evaluate.json"], "train"), (["inference.json"], "infer")],
)
def test_check_properties_is_empty(configs, workflow_type, tiny_dataset, tmp_path):
    workflow = _workflow(configs, workflow_type, tiny_dataset, tmp_path)
    assert not workflow.check_properties()


@pytest.fixture(scope="module")
def trained_bundle(tiny_dataset, tmp_path_factory) -> Iterator[Path]:
    """A bundle root with 2 epochs of tiny training (models/, eval/)."""
    root = tmp_path_factory.mktemp("upstream_root")
    run_bundle(UPSTREAM, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 2, "val_interval": 1,
                                          **TINY_OVERRIDES}, bundle_root=root)
    yield root
    shutil.rmtree(root, ignore_errors=True)  # checkpoints of a few hundred MB: free the disk for the next modules


def test_train_writes_checkpoints_and_logs(trained_bundle):
    models = trained_bundle / "models"
    assert (models / "model.pt").is_file() and (models / "last.pt").is_file()
    state = torch.load(models / "last.pt", weights_only=True)
    assert {"model", "optimizer", "lr_scheduler", "trainer"} <= set(state)
    assert state["trainer"]["iteration"] == 2 * state["trainer"]["epoch_length"]  # two finished epochs
    best = torch.load(models / "model.pt", weights_only=True)
    assert any(k.startswith("encoder.layer4") for k in best["model"])
    point = best["operating_point"]  # chosen on the validation slices, plain data
    assert 0.0 <= point["threshold"] <= 1.0 and point["method"] in ("youden", "fixed")
    assert 0.0 <= point["volume_threshold"] <= 1.0
    record = best["settings"]  # what the weights mean, plain data, in every checkpoint
    assert record == state["settings"]
    assert {k: record[k] for k in ("encoder", "stem_stride", "image_size", "clahe", "variant")} == {
        "encoder": "resnet18", "stem_stride": 2, "image_size": 32, "clahe": True, "variant": "smartnet"}
    assert record["hu_windows"] == [[0, 80]] and record["orientation"] == "PLS"
    assert list((trained_bundle / "eval").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("configs, change, named", [
    (["inference.json"], {"stem_stride": 1, "image_size": 32}, "stem_stride: 2 in the checkpoint, 1 in this run"),
    (["train.json", "evaluate.json"], {"image_size": 64}, "image_size: 32 in the checkpoint, 64 in this run"),
    (["inference.json"], {"clahe": False}, "clahe: True in the checkpoint, False in this run"),
    (["train.json"], {"finetune": True, "hu_windows": [[0, 80], [-20, 180]], "in_channels": 1},
     "hu_windows: [[0, 80]] in the checkpoint, [[0, 80], [-20, 180]] in this run"),
])
def test_weights_trained_with_other_settings_are_refused(configs, change, named, trained_bundle, tiny_dataset,
                                                         tmp_path):
    """A stem stride, size, window or CLAHE that changes what the weights mean without changing a tensor shape."""
    overrides = {"dataset_dir": tiny_dataset, **TINY_OVERRIDES, "ckpt_dir": trained_bundle / "models",
                 "output_dir": tmp_path / "out", "epochs": 1, **change}
    if change.get("finetune"):
        overrides["finetune_model_path"] = trained_bundle / "models" / "model.pt"
        overrides["ckpt_dir"] = tmp_path / "models"
    result = run_bundle(UPSTREAM, configs, overrides, bundle_root=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and named in result.stderr
    assert "Epoch" not in result.stdout


@pytest.mark.parametrize("change, phrase", [
    ({"image_size": 100, "stem_stride": 1}, "image_size 100 must be a positive multiple of the output stride 16"),
    ({"variant": "dual_cls_rec", "consistency": True}, "consistency ties the CLS and SEG heads"),
    ({"negative_sampling": "random", "encoder": "resnet51"}, "negative_sampling 'random'"),
])
def test_settings_that_cannot_work_are_one_message(change, phrase, tiny_dataset, tmp_path):
    overrides = {"dataset_dir": tiny_dataset, **TINY_OVERRIDES, "epochs": 1, **change}
    result = run_bundle(UPSTREAM, ["train.json"], overrides, bundle_root=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "Settings that cannot work" in result.stderr and phrase in result.stderr


def test_evaluate_without_trained_weights_is_one_message(tiny_dataset, tmp_path):
    result = run_bundle(UPSTREAM, ["train.json", "evaluate.json"], {"dataset_dir": tiny_dataset, **TINY_OVERRIDES},
                        bundle_root=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "no trained weights at" in result.stderr


def test_resume_continues_from_last_checkpoint(trained_bundle, tiny_dataset, tmp_path):
    root = tmp_path / "resumed"
    shutil.copytree(trained_bundle / "models", root / "models")
    result = run_bundle(UPSTREAM, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 3, "val_interval": 1,
                                                   "resume": True, **TINY_OVERRIDES}, bundle_root=root)
    assert "resuming from iteration" in result.stdout + result.stderr
    assert "Epoch: 1/3" not in result.stdout and "Epoch: 3/3" in result.stdout
    trainer = torch.load(root / "models" / "last.pt", weights_only=True)["trainer"]
    assert trainer["iteration"] == 3 * trainer["epoch_length"]


def _learned_tensors(state: dict) -> dict:
    """Parameters only: batch-norm statistics move in any training step, even at learning rate 0."""
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_finetune_starts_from_the_given_checkpoint(trained_bundle, tiny_dataset, tmp_path):
    """--finetune true --finetune_model_path X: at learning rate 0 the weights after an epoch are X's."""
    start = trained_bundle / "models" / "model.pt"
    result = run_bundle(UPSTREAM, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 1, "val_interval": 1,
                                                   "finetune": True, "finetune_model_path": start,
                                                   "learning_rate": 0.0, **TINY_OVERRIDES}, bundle_root=tmp_path)
    assert f"Restored all variables from {start}" in result.stdout + result.stderr
    after = _learned_tensors(torch.load(tmp_path / "models" / "last.pt", weights_only=True)["model"])
    before = _learned_tensors(read_state_dict(start))
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


def _test_cases(dataset: Path) -> dict[str, Path]:
    return {p.name.replace("_img.nii.gz", ""): p for p in sorted((dataset / "test").glob("*_img.nii.gz"))}


def test_evaluate_scores_every_slice(trained_bundle, tiny_dataset):
    run_bundle(UPSTREAM, ["train.json", "evaluate.json"], {"dataset_dir": tiny_dataset, **TINY_OVERRIDES},
               bundle_root=trained_bundle)
    out = trained_bundle / "eval" / "evaluation"
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    for key in ["slice_auroc", "slice_f1", "slice_accuracy", "slice_sensitivity", "slice_specificity", "dice",
                "rec_mae", "volume_auroc"]:
        assert key in metrics
    cases = _test_cases(tiny_dataset)
    per_case = list(csv.DictReader(open(out / "per_case.csv")))
    assert sorted(r["case_id"] for r in per_case) == sorted(cases)
    slices = list(csv.DictReader(open(out / "slice_predictions.csv")))
    # every slice of every test volume, not a GT-chosen subset (no empty-slice crop either)
    assert len(slices) == sum(nib.load(p).shape[2] for p in cases.values())
    for row in per_case:
        probs = [float(s["probability"]) for s in slices if s["case_id"] == row["case_id"]]
        assert float(row["volume_score"]) == pytest.approx(max(probs))
        truth = np.asarray(nib.load(tiny_dataset / "test" / f"{row['case_id']}_mask.nii.gz").dataobj)
        assert int(row["volume_label"]) == int(truth.any())
    # the report: curves, confusion matrices, Grad-CAM of the classifier head, t-SNE of slices, overlays, CIs
    html = check_report(out, {"roc_pr_slice.png": CURVES, "roc_pr_volume.png": CURVES, "confusion_slice.png": SQUARE,
                              "confusion_volume.png": SQUARE, "activation_maps.png": montage_size(4),
                              "tsne.png": SQUARE, "overlays.png": montage_size(3)})
    intervals = json.loads((out / "metrics.json").read_text())["confidence_intervals"]
    labels = np.array([int(s["label"]) for s in slices])
    scores = np.array([float(s["probability"]) for s in slices])
    pos, neg = scores[labels == 1], scores[labels == 0]
    by_hand = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert intervals["slice_auroc"]["value"] == pytest.approx(by_hand)
    assert intervals["slice_auroc"]["ci_low"] <= by_hand <= intervals["slice_auroc"]["ci_high"]
    assert "Grad-CAM" in html or "Activation maps" in html


def test_inference_writes_masks_in_input_geometry(trained_bundle, tiny_dataset):
    out = trained_bundle / "eval" / "inference"
    run_bundle(UPSTREAM, ["inference.json"], {"dataset_dir": tiny_dataset, "encoder": "resnet18", "stem_stride": 2,
                                              "image_size": 32}, bundle_root=trained_bundle)
    rows = list(csv.DictReader(open(out / "slice_probabilities.csv")))
    for case, image_path in _test_cases(tiny_dataset).items():
        source = nib.load(image_path)
        seg = nib.load(out / f"{case}_img_seg.nii.gz")
        assert seg.shape == source.shape
        assert np.allclose(seg.affine, source.affine, atol=1e-4)
        assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1}
        assert_nothing_in_the_air_at_the_border(np.asarray(seg.dataobj), np.asarray(source.dataobj))
        probs = [float(r["probability"]) for r in rows if r["case_id"] == case]
        assert len(probs) == source.shape[2] and all(0.0 <= p <= 1.0 for p in probs)
    volumes = json.loads((out / "volume_scores.json").read_text())["volumes"]
    assert len(volumes) == len(_test_cases(tiny_dataset))


def test_inference_matches_evaluation_probabilities(trained_bundle, tiny_dataset):
    """Volume inference (SliceInferer) and slice evaluation give the same slice probabilities."""
    evaluation = trained_bundle / "eval" / "evaluation" / "slice_predictions.csv"
    inference = trained_bundle / "eval" / "inference" / "slice_probabilities.csv"
    if not (evaluation.is_file() and inference.is_file()):
        test_evaluate_scores_every_slice(trained_bundle, tiny_dataset)
        test_inference_writes_masks_in_input_geometry(trained_bundle, tiny_dataset)
    ev = {(r["case_id"], int(r["slice_index"])): float(r["probability"]) for r in csv.DictReader(open(evaluation))}
    inf = {(r["case_id"], int(r["slice_index"])): float(r["probability"]) for r in csv.DictReader(open(inference))}
    assert ev.keys() == inf.keys()
    assert max(abs(ev[k] - inf[k]) for k in ev) < 1e-3


def test_inference_reads_a_dicom_series_folder(trained_bundle, tiny_dataset, tmp_path):
    """A DICOM folder in, the mask out in the geometry MONAI reads from that series, the same probabilities as NIfTI."""
    from monai.transforms import LoadImage
    from dicom_series import write_dicom_series

    case, nifti = next(iter(_test_cases(tiny_dataset).items()))
    source = nib.load(nifti)
    series = tmp_path / "dicom_in" / f"{case}_dicom"
    write_dicom_series(np.asarray(source.dataobj), source.affine, series)
    out = tmp_path / "dicom_out"
    run_bundle(UPSTREAM, ["inference.json"], {"input": series, "output_dir": out, "encoder": "resnet18",
                                              "stem_stride": 2, "image_size": 32}, bundle_root=trained_bundle)
    written = list(out.glob("*_seg.nii.gz"))
    assert [p.name for p in written] == [f"{case}_dicom_seg.nii.gz"]
    seg, read = nib.load(written[0]), LoadImage(image_only=True, reader="ITKReader")(str(series))
    assert seg.shape == tuple(read.shape)
    assert np.allclose(seg.affine, np.asarray(read.affine), atol=1e-4)
    rows = list(csv.DictReader(open(out / "slice_probabilities.csv")))
    assert len(rows) == source.shape[2]
    # and a DICOM SEG of that mask over the series, for the hospital's viewer
    import pydicom

    dicom_seg = pydicom.dcmread(out / f"{case}_dicom_seg.dcm")
    assert dicom_seg.Modality == "SEG" and int(dicom_seg.NumberOfFrames) == source.shape[2]
    assert dicom_seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(
        next(series.iterdir())).SeriesInstanceUID
    frames = dicom_seg.pixel_array.reshape(source.shape[2], *read.shape[:2][::-1])
    assert frames.sum() == np.asarray(seg.dataobj).sum()  # the same lesion voxels as the NIfTI mask
    nifti_out = tmp_path / "nifti_out"
    run_bundle(UPSTREAM, ["inference.json"], {"input": nifti, "output_dir": nifti_out, "encoder": "resnet18",
                                              "stem_stride": 2, "image_size": 32}, bundle_root=trained_bundle)
    reference = list(csv.DictReader(open(nifti_out / "slice_probabilities.csv")))
    assert [float(r["probability"]) for r in rows] == pytest.approx([float(r["probability"]) for r in reference],
                                                                    abs=1e-4)


def test_training_refuses_a_bad_datalist(tiny_dataset, tmp_path):
    data = tmp_path / "bad"
    shutil.copytree(tiny_dataset, data)
    first = sorted((data / "train").glob("*_img.nii.gz"))[0]
    first.write_bytes(b"not an image")
    mask = sorted((data / "valid").glob("*_mask.nii.gz"))[0]
    img = nib.load(mask)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) * 3, img.affine), mask)
    result = run_bundle(UPSTREAM, ["train.json"], {"dataset_dir": data, **TINY_OVERRIDES}, bundle_root=tmp_path,
                        check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "2 problem(s)" in result.stderr
    assert first.name in result.stderr and mask.name in result.stderr
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    "overrides, key_metric",
    [({"variant": "dual_seg_rec"}, "dice"), ({"variant": "single_rec"}, "rec_mae"),
     ({"variant": "dual_cls_seg", "consistency": True, "hu_windows": "[[0,80],[-20,180]]"}, "slice_auroc_dice"),
     ({"variant": "single_cls"}, "slice_auroc")],
)
def test_variants_train(overrides, key_metric, tiny_dataset, tmp_path):
    result = run_bundle(UPSTREAM, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 1, "val_interval": 1,
                                                   **TINY_OVERRIDES, **overrides}, bundle_root=tmp_path)
    assert f"Key metric: {key_metric}" in result.stdout
    assert (tmp_path / "models" / "model.pt").is_file()
    if overrides.get("consistency"):
        assert "train_loss_consistency" in result.stdout
