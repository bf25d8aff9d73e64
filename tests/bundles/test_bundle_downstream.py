"""The smartnet_down_cls and smartnet_down_seg bundles through `python -m monai.bundle run`: conformance, transfer
from the upstream bundle, frozen-encoder training, resume, evaluation, inference in the input geometry."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import (DOWN_CLS, DOWN_SEG, REPO, TINY_DOWN_OVERRIDES, UPSTREAM, bundle_workflow, run_bundle,
                      write_untrained_checkpoint)
from mask_checks import assert_nothing_in_the_air_at_the_border
from smartnet.networks.transfer import read_state_dict
from report_checks import CURVES, SQUARE, check_report, montage_size

pytestmark = pytest.mark.slow

BUNDLES = {"cls": DOWN_CLS, "seg": DOWN_SEG}


@pytest.mark.parametrize("kind", ["cls", "seg"])
def test_bundle_files_and_metadata(kind):
    bundle = BUNDLES[kind]
    for rel in ["LICENSE", "docs/README.md", "configs/metadata.json", "configs/train.json", "configs/evaluate.json",
                "configs/inference.json", "configs/logging.conf", "configs/demo.json",
                "configs/multi_gpu_train.json", "configs/multi_gpu_evaluate.json"]:
        assert (bundle / rel).is_file(), rel
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    jsonschema.validate(meta, json.loads((REPO / "schemas" / "meta_schema.json").read_text()))
    assert meta["version"] in meta["changelog"]
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 1


@pytest.mark.parametrize("kind", ["cls", "seg"])
@pytest.mark.parametrize(
    "configs, workflow_type",
    [(["train.json"], "train"), (["train.json", "evaluate.json"], "train"), (["inference.json"], "infer")],
)
def test_check_properties_is_empty(kind, configs, workflow_type, tiny_dataset, tmp_path):
    untrained = {"allow_random_weights": True} if workflow_type == "infer" else {}  # the properties, not weights
    if "evaluate.json" in configs:
        write_untrained_checkpoint(BUNDLES[kind], tmp_path, **TINY_DOWN_OVERRIDES)
    if workflow_type == "train":  # the transfer source is checked before any work
        untrained["pretrained_path"] = write_untrained_checkpoint(UPSTREAM, tmp_path / "up", **TINY_DOWN_OVERRIDES)
    workflow = bundle_workflow(BUNDLES[kind], configs, workflow_type, tmp_path, dataset_dir=tiny_dataset,
                               **TINY_DOWN_OVERRIDES, **untrained)
    assert not workflow.check_properties()


@pytest.mark.parametrize("kind", ["cls", "seg"])
def test_validation_postprocessing_turns_half_precision_logits_into_metric_ready_floats(kind):
    """Under AMP on a GPU the validation evaluator's logits are bf16 / fp16; the postprocessing's first step turns them
    into floats the metrics accept (MONAI's ROC AUC converts to numpy, which has no bf16): the classifier's into
    float64 probabilities (its sigmoid in float64 keeps confident logits apart), the segmenter's into float32."""
    from monai.bundle import ConfigParser
    from monai.metrics import ROCAUCMetric

    parser = ConfigParser()
    parser.read_config(str(BUNDLES[kind] / "configs" / "train.json"))
    first = parser.get_parsed_content("validate#postprocessing").transforms[0]
    logits = torch.tensor([[-2.0], [0.5], [3.0]], dtype=torch.bfloat16)
    pred = first({"pred": logits})["pred"]
    assert pred.dtype == (torch.float64 if kind == "cls" else torch.float32)
    probabilities = pred if kind == "cls" else torch.sigmoid(pred)
    assert 0.0 < float(probabilities.min()) and float(probabilities.max()) < 1.0
    metric = ROCAUCMetric()
    metric(probabilities, torch.tensor([[0.0], [1.0], [1.0]]))
    assert metric.aggregate() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def trained(tiny_dataset, tiny_bundles_root) -> dict[str, Path]:
    """Both downstream bundles trained 2 epochs from the tiny upstream checkpoint (logs kept in ``train.log``)."""
    roots = {}
    for kind, bundle in BUNDLES.items():
        root = tiny_bundles_root / bundle.name
        result = run_bundle(bundle, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 2, "val_interval": 1,
                                                     **TINY_DOWN_OVERRIDES}, bundle_root=root)
        (root / "train.log").write_text(result.stdout + result.stderr, encoding="utf-8")
        roots[kind] = root
    return roots


@pytest.mark.parametrize("kind, loaded", [("cls", "encoder.*"), ("seg", "encoder.*, seg_decoder.*")])
def test_training_transfers_upstream_weights_and_checkpoints(kind, loaded, trained):
    root = trained[kind]
    log = (root / "train.log").read_text(encoding="utf-8")
    assert f"({loaded}) from" in log and "smartnet_upstream/models/model.pt" in log
    assert "encoder stages training" in log
    assert (root / "models" / "model.pt").is_file()
    state = torch.load(root / "models" / "last.pt", weights_only=True)
    assert {"model", "optimizer", "lr_scheduler", "trainer"} <= set(state)
    assert state["trainer"]["iteration"] == 2 * state["trainer"]["epoch_length"]


@pytest.mark.parametrize("kind", ["cls", "seg"])
def test_frozen_encoder_is_untouched_batch_norm_included(kind, tiny_dataset, tiny_bundles_root, tmp_path):
    """With an empty unfreeze schedule the encoder stays frozen: every encoder tensor, BN running statistics included,
    equals the upstream checkpoint after training, while the rest of the network trained."""
    root = tmp_path / BUNDLES[kind].name
    pretrained = tiny_bundles_root / "smartnet_upstream" / "models" / "model.pt"
    run_bundle(BUNDLES[kind], ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 2, "val_interval": 1,
                                               "unfreeze_schedule": {}, "pretrained_path": pretrained,
                                               "learning_rate": 1e-3, **TINY_DOWN_OVERRIDES}, bundle_root=root)
    upstream = read_state_dict(pretrained)  # model.pt: the weights under "model", beside the operating point
    trained_state = torch.load(root / "models" / "last.pt", weights_only=True)["model"]
    encoder_keys = [k for k in trained_state if k.startswith("encoder.")]
    assert any("running_mean" in k for k in encoder_keys)
    for key in encoder_keys:
        assert torch.equal(trained_state[key], upstream[key]), key
    # the rest of the network trained: the same run (same seed, so the same initial head) at learning rate 0 keeps
    # the initial head, which training must have moved
    untrained = tmp_path / "lr0"
    run_bundle(BUNDLES[kind], ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 1, "val_interval": 1,
                                               "unfreeze_schedule": {}, "pretrained_path": pretrained,
                                               "learning_rate": 0.0, **TINY_DOWN_OVERRIDES}, bundle_root=untrained)
    initial = torch.load(untrained / "models" / "last.pt", weights_only=True)["model"]
    head = "fc.weight" if kind == "cls" else "volume_head.2.weight"
    assert not torch.equal(initial[head], trained_state[head]), "the head did not train"
    assert all(torch.equal(initial[k], trained_state[k]) for k in encoder_keys)


def test_resume_continues(trained, tiny_dataset, tmp_path):
    root = tmp_path / "resumed"
    shutil.copytree(trained["cls"] / "models", root / "models")
    result = run_bundle(DOWN_CLS, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 3, "val_interval": 1,
                                                   "resume": True, **TINY_DOWN_OVERRIDES}, bundle_root=root)
    assert "Epoch: 1/3" not in result.stdout and "Epoch: 3/3" in result.stdout
    trainer = torch.load(root / "models" / "last.pt", weights_only=True)["trainer"]
    assert trainer["iteration"] == 3 * trainer["epoch_length"]


@pytest.mark.parametrize("kind", ["cls", "seg"])
def test_finetune_starts_from_the_given_checkpoint(kind, trained, tiny_dataset, tmp_path):
    """--finetune true --finetune_model_path X replaces the upstream transfer: at learning rate 0 the weights after
    an epoch are X's (batch-norm statistics aside)."""
    start = trained[kind] / "models" / "model.pt"
    result = run_bundle(BUNDLES[kind], ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 1, "val_interval": 1,
                                                        "finetune": True, "finetune_model_path": start,
                                                        "learning_rate": 0.0, **TINY_DOWN_OVERRIDES},
                        bundle_root=tmp_path)
    log = result.stdout + result.stderr
    assert f"Restored all variables from {start}" in log and "smartnet_upstream/models/model.pt" not in log
    stats = ("running_mean", "running_var", "num_batches_tracked")
    after = torch.load(tmp_path / "models" / "last.pt", weights_only=True)["model"]
    before = read_state_dict(start)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before if not k.endswith(stats))


def test_training_checks_the_entries_it_will_use(tiny_dataset, tiny_bundles_root, tmp_path):
    """The check runs on train#dataset#data / validate#dataset#data (what MONAI Label injects), every problem at
    once; a missing datalist is one clear line. Both exit 2 without a traceback and before any checkpoint."""
    data = tmp_path / "bad"
    shutil.copytree(tiny_dataset, data)
    broken = sorted((data / "train").glob("*_img.nii.gz"))[0]
    broken.write_bytes(b"not an image")
    missing_mask = sorted((data / "valid").glob("*_mask.nii.gz"))[0]
    missing_mask.unlink()
    root = tiny_bundles_root / "smartnet_down_seg_bad"
    result = run_bundle(DOWN_SEG, ["train.json"], {"dataset_dir": data, **TINY_DOWN_OVERRIDES}, bundle_root=root,
                        check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "2 problem(s)" in result.stderr
    assert broken.name in result.stderr and missing_mask.name in result.stderr
    (data / "datalist.json").unlink()
    result = run_bundle(DOWN_SEG, ["train.json"], {"dataset_dir": data, **TINY_DOWN_OVERRIDES}, bundle_root=root,
                        check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "datalist not found" in result.stderr
    assert not (root / "models").exists()


def _test_cases(dataset: Path) -> dict[str, Path]:
    return {p.name.replace("_img.nii.gz", ""): p for p in sorted((dataset / "test").glob("*_img.nii.gz"))}


def test_classifier_evaluate_and_infer(trained, tiny_dataset):
    root = trained["cls"]
    run_bundle(DOWN_CLS, ["train.json", "evaluate.json"], {"dataset_dir": tiny_dataset, **TINY_DOWN_OVERRIDES},
               bundle_root=root)
    results = json.loads((root / "eval" / "evaluation" / "metrics.json").read_text())
    assert {"auroc", "f1", "accuracy", "sensitivity", "specificity"} <= set(results["metrics"])
    cases = _test_cases(tiny_dataset)
    rows = list(csv.DictReader(open(root / "eval" / "evaluation" / "per_case.csv")))
    assert sorted(r["case_id"] for r in rows) == sorted(cases)
    for row in rows:
        truth = np.asarray(nib.load(tiny_dataset / "test" / f"{row['case_id']}_mask.nii.gz").dataobj)
        assert int(row["label"]) == int(truth.any())
    evaluated = {r["case_id"]: float(r["probability"]) for r in rows}
    check_report(root / "eval" / "evaluation", {"roc_pr_volume.png": CURVES, "confusion_volume.png": SQUARE,
                                                 "activation_maps.png": montage_size(len(cases))})

    run_bundle(DOWN_CLS, ["inference.json"], {"dataset_dir": tiny_dataset, **TINY_DOWN_OVERRIDES}, bundle_root=root)
    out = root / "eval" / "inference"
    written = json.loads((out / "predictions.json").read_text())
    predictions = written["volumes"]
    stored = torch.load(root / "models" / "model.pt", weights_only=True)["operating_point"]["threshold"]
    assert written["threshold"] == pytest.approx(stored)  # the operating point chosen on validation data
    assert results["summary"]["threshold"] == pytest.approx(stored)
    assert sorted(p["case_id"] for p in predictions) == sorted(cases)
    for p in predictions:  # no masks needed, same probabilities as the evaluation
        assert p["probability"] == pytest.approx(evaluated[p["case_id"]], abs=1e-4)
        assert p["decision"] == int(p["probability"] >= stored)
    assert len(list(csv.DictReader(open(out / "predictions.csv")))) == len(cases)


def test_classifier_report_shows_volume_tsne_and_activation_maps(trained, tiny_dataset, tmp_path):
    """On the 4 training volumes (both labels): t-SNE of the operator's volume features, Grad-CAM through the
    volume logit, and the report's CIs around the AUROC computed here by counting pairs."""
    root = trained["cls"]
    out = tmp_path / "report"
    run_bundle(DOWN_CLS, ["train.json", "evaluate.json"], {"dataset_dir": tiny_dataset, "eval_split": "training",
                                                           "eval_dir": out, **TINY_DOWN_OVERRIDES}, bundle_root=root)
    check_report(out, {"tsne.png": SQUARE, "activation_maps.png": montage_size(4), "roc_pr_volume.png": CURVES})
    rows = list(csv.DictReader(open(out / "per_case.csv")))
    labels = np.array([int(r["label"]) for r in rows])
    scores = np.array([float(r["probability"]) for r in rows])
    pos, neg = scores[labels == 1], scores[labels == 0]
    by_hand = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    auroc = json.loads((out / "metrics.json").read_text())["confidence_intervals"]["volume_auroc"]
    assert auroc["value"] == pytest.approx(by_hand) and auroc["ci_low"] <= by_hand <= auroc["ci_high"]


def test_segmenter_evaluate_and_infer_in_input_geometry(trained, tiny_dataset):
    root = trained["seg"]
    run_bundle(DOWN_SEG, ["train.json", "evaluate.json"], {"dataset_dir": tiny_dataset, **TINY_DOWN_OVERRIDES},
               bundle_root=root)
    results = json.loads((root / "eval" / "evaluation" / "metrics.json").read_text())
    assert {"dice_mean", "false_positive_ml_mean", "false_positive_ml_mean_normal"} <= set(results["metrics"])
    rows = list(csv.DictReader(open(root / "eval" / "evaluation" / "per_case.csv")))
    for row in rows:
        truth = nib.load(tiny_dataset / "test" / f"{row['case_id']}_mask.nii.gz")
        voxel_ml = abs(np.linalg.det(truth.affine[:3, :3])) / 1000
        # the evaluated image is resized in-plane, so the true lesion volume in mL is preserved only approximately
        assert float(row["true_ml"]) == pytest.approx(np.asarray(truth.dataobj).sum() * voxel_ml, rel=0.35, abs=0.5)
        assert float(row["false_positive_ml"]) <= float(row["predicted_ml"]) + 1e-9
    check_report(root / "eval" / "evaluation", {"overlays.png": montage_size(3), "lesion_volume.png": SQUARE,
                                                 "confusion_detection.png": SQUARE})
    intervals = json.loads((root / "eval" / "evaluation" / "metrics.json").read_text())["confidence_intervals"]
    assert intervals["dice"]["value"] == pytest.approx(results["metrics"]["dice_mean"])

    run_bundle(DOWN_SEG, ["inference.json"], {"dataset_dir": tiny_dataset, **TINY_DOWN_OVERRIDES}, bundle_root=root)
    out = root / "eval" / "inference"
    predictions = {p["case_id"]: p for p in json.loads((out / "predictions.json").read_text())["volumes"]}
    findings = json.loads((out / "findings.json").read_text())["cases"]
    for case, image_path in _test_cases(tiny_dataset).items():
        source = nib.load(image_path)
        seg = nib.load(out / f"{case}_img_seg.nii.gz")
        assert seg.shape == source.shape
        assert np.allclose(seg.affine, source.affine, atol=1e-4)
        mask = np.asarray(seg.dataobj)
        assert set(np.unique(mask)) <= {0, 1}
        assert_nothing_in_the_air_at_the_border(mask, np.asarray(source.dataobj))
        voxel_ml = abs(np.linalg.det(source.affine[:3, :3])) / 1000
        assert predictions[case]["lesion_ml"] == pytest.approx(mask.sum() * voxel_ml, rel=1e-6)
        # the findings of a case and its parts too small to list (under min_finding_ml) add up to its mask
        case_findings = findings[predictions[case]["case_id"]]
        assert len(case_findings) == predictions[case]["lesions"]
        assert sum(f["volume_ml"] for f in case_findings) + predictions[case]["unlisted_ml"] == pytest.approx(
            mask.sum() * voxel_ml, rel=1e-6, abs=1e-9)
        for f in case_findings:  # each listed lesion is at least 0.05 mL and has its key image
            assert f["volume_ml"] >= 0.05 - 1e-9
            assert (out / "findings" / f"{predictions[case]['case_id']}_lesion{f['lesion']}.png").is_file()
            assert f["first_slice"] <= f["largest_slice"] <= f["last_slice"]
    page = (out / "findings.html").read_text()
    assert all(f"<h2>{case_id}:" in page for case_id in findings)


def test_missing_upstream_checkpoint_is_a_clear_error(tiny_dataset, tmp_path):
    result = run_bundle(DOWN_SEG, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 1,
                                                   "pretrained_path": tmp_path / "nope.pt", **TINY_DOWN_OVERRIDES},
                        bundle_root=tmp_path / "root", check=False)
    assert result.returncode == 2
    assert "pretrained checkpoint not found" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_mismatched_upstream_checkpoint_lists_keys(tiny_dataset, tiny_bundles_root, tmp_path):
    """A checkpoint without a settings record (older versions, other tools): the shapes are compared key by key."""
    pretrained = tmp_path / "plain_state_dict.pt"
    torch.save(read_state_dict(tiny_bundles_root / "smartnet_upstream" / "models" / "model.pt"), pretrained)
    result = run_bundle(DOWN_CLS, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 1,
                                                   "pretrained_path": pretrained,
                                                   **{**TINY_DOWN_OVERRIDES, "encoder": "resnet34"}},
                        bundle_root=tmp_path / "root", check=False)
    assert result.returncode == 2
    assert "does not fit the network" in result.stdout + result.stderr
    assert "encoder.layer1.2.conv1.weight: not in the checkpoint" in result.stdout + result.stderr
    assert "carries no settings record" in result.stderr


def test_upstream_of_another_encoder_is_named_by_its_record(tiny_dataset, tiny_bundles_root, tmp_path):
    pretrained = tiny_bundles_root / "smartnet_upstream" / "models" / "model.pt"
    result = run_bundle(DOWN_CLS, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 1,
                                                   "pretrained_path": pretrained,
                                                   **{**TINY_DOWN_OVERRIDES, "encoder": "resnet34"}},
                        bundle_root=tmp_path / "root", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "encoder: 'resnet18' in the checkpoint, 'resnet34' in this run" in result.stderr


def test_transfer_from_an_upstream_trained_at_another_size_is_refused(tiny_dataset, tiny_bundles_root, tmp_path):
    """The upstream encoder learned 32 px slices: a classifier at 64 px would load it (same shapes) and be wrong."""
    result = run_bundle(DOWN_CLS, ["train.json"], {"dataset_dir": tiny_dataset, **TINY_DOWN_OVERRIDES,
                                                   "image_size": 64, "epochs": 1},
                        bundle_root=tiny_bundles_root / "smartnet_down_cls_64", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "image_size: 32 in the checkpoint, 64 in this run" in result.stderr


def test_an_init_that_cannot_feed_the_heads_is_refused(tiny_dataset, tmp_path):
    """One ``init`` choice: a segmenter keeping the upstream's 2D seg head needs its seg decoder too, and
    ``finetune`` true (model-zoo's spelling of init ``checkpoint``) cannot be combined with another init."""
    result = run_bundle(DOWN_SEG, ["train.json"], {"dataset_dir": tiny_dataset, **TINY_DOWN_OVERRIDES,
                                                   "init": "upstream", "slice_head": True, "finetune": True,
                                                   "epochs": 1}, bundle_root=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "set init 'upstream_with_decoder', or slice_head false" in result.stderr
    assert "finetune true starts from finetune_model_path (init 'checkpoint'), but init is 'upstream'" in result.stderr


@pytest.mark.parametrize("kind", ["cls", "seg"])
def test_torchscript_export(kind, trained, tmp_path):
    configs = BUNDLES[kind] / "configs"
    target = tmp_path / "model.ts"
    cmd = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(target),
           "--ckpt_file", str(trained[kind] / "models" / "model.pt"), "--meta_file", str(configs / "metadata.json"),
           "--config_file", str(configs / "inference.json"), "--bundle_root", str(trained[kind])]
    cmd += ["--key_in_ckpt", "model"]  # model.pt: the weights under "model", beside the settings record
    for key, value in TINY_DOWN_OVERRIDES.items():
        if key in ("encoder", "stem_stride"):
            cmd += [f"--{key}", str(value)]
    result = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    scripted = torch.jit.load(str(target))
    with torch.no_grad():
        out = scripted(torch.rand(1, 1, 32, 32, 5))
    assert out.shape == ((1, 1) if kind == "cls" else (1, 1, 32, 32, 5))
