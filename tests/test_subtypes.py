"""Haemorrhage subtypes: labels from subtypes.csv to the datalist and the transforms, the weighted loss, the
classifier's subtype head and lesion descriptor, and the evaluation and prediction files."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from smartnet.errors import DatalistError
from smartnet.vocabulary import SUBTYPES


def _run_once(handler, items):
    def step(engine, item):
        engine.state.batch = item[0]
        return item[1]

    engine = Engine(step)
    handler.attach(engine)
    engine.run(items, max_epochs=1)


def _dataset(root, rows: str):
    """Two training, one validation and one test case (NIfTI names only: the datalist reads names) and a CSV."""
    for split, case in (("train", "a"), ("train", "b"), ("valid", "c"), ("test", "d")):
        (root / split).mkdir(parents=True, exist_ok=True)
        for role in ("img", "mask"):
            (root / split / f"{case}_{role}.nii.gz").write_bytes(b"")
    (root / "subtypes.csv").write_text(rows)


def test_subtypes_csv_goes_into_the_datalist_as_sorted_codes(tmp_path):
    from smartnet.data import build_datalist

    _dataset(tmp_path, "case_id,subtypes\na,SDH;ivh\nb,\nc,subdural\n")
    datalist = build_datalist(tmp_path)
    by_case = {e["case_id"]: e for split in datalist.values() for e in split}
    assert by_case["a"]["subtypes"] == ["ivh", "sdh"]
    assert by_case["b"]["subtypes"] == []  # listed without subtypes: no haemorrhage of a known kind
    assert by_case["c"]["subtypes"] == ["sdh"]  # full names are read as codes
    assert "subtypes" not in by_case["d"]  # test cases need no row


def test_subtypes_csv_problems_are_listed_together(tmp_path):
    from smartnet.data import build_datalist

    _dataset(tmp_path, "case_id,subtypes\na,sdh;xyz\nzz,ivh\n")
    with pytest.raises(DatalistError) as err:
        build_datalist(tmp_path)
    message = str(err.value)
    assert "'xyz'" in message  # an unknown subtype
    with pytest.raises(DatalistError) as err:
        _dataset(tmp_path, "case_id,subtypes\na,sdh\nzz,ivh\n")
        build_datalist(tmp_path)
    message = str(err.value)
    assert "'zz' has no image" in message and "b_img.nii.gz: no row" in message and "c_img.nii.gz: no row" in message


def test_demo_dataset_writes_subtype_labels_that_match_its_kinds(tmp_path):
    from smartnet.data import write_demo_dataset
    from smartnet.vocabulary import SUBTYPE_CODES

    path = write_demo_dataset(tmp_path, n_train=3, n_valid=1, n_test=1, size=48, depth=8, seed=3, verbose=False)
    kinds = json.loads((tmp_path / "kinds.json").read_text())
    datalist = json.loads(path.read_text())
    for entry in (e for split in datalist.values() for e in split):
        assert sorted(SUBTYPE_CODES[c] for c in entry["subtypes"]) == sorted(set(kinds[entry["case_id"]]))
    assert any(entry["subtypes"] for entry in datalist["training"])


def test_subtype_transforms_label_any_first_and_split_predictions_back():
    from smartnet.transforms import SplitSubtypesd, SubtypeCodesd, SubtypeLabeld

    item = SubtypeCodesd()({"case_id": "a", "subtypes": ["sdh", "ivh"], "volume_label": torch.tensor([1.0])})
    assert item["subtypes"].tolist() == [0, 0, 1, 0, 1]  # SUBTYPES[1:] order
    assert SubtypeCodesd()({"image": 1}) == {"image": 1}  # no labels: nothing to do
    labelled = SubtypeLabeld()(item)
    assert labelled["volume_label"].tolist() == [1, 0, 0, 1, 0, 1]
    # a listed subtype counts as haemorrhage although the mask lost the bleed (smaller than the minimum size)
    tiny = SubtypeLabeld()({"volume_label": torch.tensor([0.0]), "subtypes": torch.tensor([1.0, 0, 0, 0, 0])})
    assert tiny["volume_label"][0] == 1
    assert SubtypeLabeld(enabled=False)(item)["volume_label"].tolist() == [1]
    with pytest.raises(DatalistError, match="subtypes.csv"):
        SubtypeLabeld()({"case_id": "x", "volume_label": torch.tensor([1.0])})
    with pytest.raises(DatalistError, match="'xyz'"):
        SubtypeCodesd()({"case_id": "x", "subtypes": ["xyz"]})
    split = SplitSubtypesd()({"pred": torch.arange(6.0), "label": torch.tensor([1.0])})
    assert split["pred"].tolist() == [0] and split["pred_subtypes"].tolist() == [1, 2, 3, 4, 5]
    assert split["label"].tolist() == [1] and "label_subtypes" not in split  # binary: as it was


def test_subtype_loss_weights_any_double_and_is_plain_bce_for_one_output():
    from smartnet.losses import SubtypeBCELoss

    loss = SubtypeBCELoss()
    logits, target = torch.zeros(2, 6), torch.zeros(2, 6)
    logits[:, 0] = 3.0  # only "any" is wrong
    per_column = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(3.0), torch.tensor(0.0))
    ln2 = math.log(2)
    assert float(loss(logits, target)) == pytest.approx((2 * float(per_column) + 5 * ln2) / 7, rel=1e-5)
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, :1], target[:, :1])
    assert float(loss(logits[:, :1], target[:, :1])) == pytest.approx(float(plain))
    with pytest.raises(ValueError):
        loss(logits, target[:, :3])


def test_lesion_descriptor_tells_a_thin_rim_bleed_from_a_deep_thick_one():
    from smartnet.networks.lesion_descriptor import DEPTH_EDGES, slice_lesion_columns, volume_lesion_descriptor

    image = torch.zeros(2, 1, 64, 64)
    image[:, :, 8:56, 8:56] = 1.0  # the head
    logits = torch.full((2, 1, 64, 64), -8.0)
    logits[0, :, 8:10, 16:48] = 8.0  # a two-pixel crescent against the head's edge
    logits[1, :, 26:38, 26:38] = 8.0  # a 12-pixel blob in the middle
    descriptor = volume_lesion_descriptor(slice_lesion_columns(logits, image)[:, None])
    n_depth = len(DEPTH_EDGES) + 1
    by_depth, by_thickness = descriptor[:, 1 : 1 + n_depth], descriptor[:, 1 + n_depth : -1]
    assert by_depth[0, :2].sum() > 0.99 and by_depth[1, -1] > 0.99  # at the edge / deepest bin
    assert by_thickness[0, 0] > 0.99  # no pixel of the crescent survives an erosion
    assert by_thickness[1, -1] == pytest.approx(36 / 144)  # the 6 x 6 core of the blob survives three
    assert descriptor[0, 0] == pytest.approx(math.log1p(64 * torch.sigmoid(torch.tensor(8.0)).item()), rel=1e-4)
    assert torch.equal(volume_lesion_descriptor(torch.zeros(1, 3, descriptor.shape[1] - 1)),
                       torch.zeros(1, descriptor.shape[1]))  # no lesion: all zeros


def test_running_standardizer_learns_scale_in_training_and_is_fixed_in_eval():
    from smartnet.networks.lesion_descriptor import RunningStandardizer

    norm = RunningStandardizer(2)
    rows = torch.tensor([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0], [6.0, 10.0]])
    norm.train()
    norm(rows[:2])
    norm(rows[2:])  # batches merge into the statistics of all rows
    assert norm.mean.tolist() == pytest.approx([3.0, 10.0])
    norm.eval()
    out = norm(rows)
    assert out[:, 0].tolist() == pytest.approx(((rows[:, 0] - 3) / rows[:, 0].std()).tolist(), rel=1e-5)
    assert out[:, 1].tolist() == [0, 0, 0, 0]  # a constant feature stays finite (the floor)
    assert norm(rows).tolist() == out.tolist() and int(norm.count) == 4  # eval does not update


def test_classifier_subtype_head_keeps_the_any_logit_and_the_reference_size():
    from smartnet.networks import SmartNetVolumeClassifier, parameter_groups

    torch.manual_seed(0)
    kwargs = dict(encoder="resnet18", in_channels=3, stem_stride=2, slice_head=True, seg_peak=True)
    binary = SmartNetVolumeClassifier(**kwargs).eval()
    with_subtypes = SmartNetVolumeClassifier(**kwargs, subtypes=True).eval()
    with_subtypes.load_state_dict(binary.state_dict(), strict=False)
    volume = torch.rand(2, 3, 64, 64, 5)
    depths = torch.tensor([5, 3])
    any_logit = binary(volume, depths)
    out = with_subtypes(volume, depths)
    assert out.shape == (2, len(SUBTYPES)) and with_subtypes.out_channels == 6
    assert torch.allclose(out[:, :1], any_logit, atol=1e-5)  # the subtype head leaves "any" as it was
    groups = parameter_groups(with_subtypes, 1e-3)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(3e-2)]
    assert sum(len(g["params"]) for g in groups) == len(list(with_subtypes.parameters()))
    assert parameter_groups(binary, 1e-3)[0]["lr"] == 1e-3 and len(parameter_groups(binary, 1e-3)) == 1
    # the reference classifier keeps its parameter count without the head
    assert sum(p.numel() for p in SmartNetVolumeClassifier().parameters()) == 40_820_673


def test_evaluation_and_prediction_files_carry_subtypes(tmp_path):
    from smartnet.handlers import VolumeEvaluationReport, VolumePredictionWriter
    from smartnet.reports.statistics import weighted_log_loss

    names = SUBTYPES[1:]
    cases = [  # (any label, subtype labels, any probability, subtype probabilities)
        (1, [1, 0, 0, 0, 0], 0.9, [0.8, 0.1, 0.1, 0.1, 0.2]),
        (1, [0, 0, 0, 0, 1], 0.8, [0.2, 0.1, 0.1, 0.2, 0.7]),
        (0, [0, 0, 0, 0, 0], 0.2, [0.1, 0.1, 0.1, 0.1, 0.1]),
        (0, [0, 0, 0, 0, 0], 0.1, [0.1, 0.1, 0.1, 0.1, 0.1]),
    ]
    items = [([{"case_id": f"c{i}"}], [{"pred": torch.tensor([p]), "label": torch.tensor([float(y)]),
                                        "pred_subtypes": torch.tensor(ps), "label_subtypes": torch.tensor(ys,
                                                                                                         dtype=float)}])
             for i, (y, ys, p, ps) in enumerate(cases)]
    report = VolumeEvaluationReport(str(tmp_path / "eval"), task="cls")
    _run_once(report, items)
    metrics = report.results["metrics"]
    assert metrics["epidural_auroc"] == 1.0 and metrics["subdural_auroc"] == 1.0
    assert metrics["epidural_sensitivity"] == 1.0 and metrics["subdural_specificity"] == 1.0
    assert math.isnan(metrics["subarachnoid_auroc"])  # no positive case
    labels = np.array([[y, *ys] for y, ys, _, _ in cases], dtype=float)
    probs = np.array([[p, *ps] for _, _, p, ps in cases])
    assert metrics["weighted_log_loss"] == pytest.approx(weighted_log_loss(labels, probs, (2, 1, 1, 1, 1, 1)))
    manual = np.mean([(2 * -np.log(0.9) + -np.log(0.8) + 3 * -np.log(0.9) + -np.log(0.8)) / 7,
                      (2 * -np.log(0.8) + -np.log(0.8) + 2 * -np.log(0.9) + -np.log(0.8) + -np.log(0.7)) / 7,
                      (2 * -np.log(0.8) + 5 * -np.log(0.9)) / 7,
                      (2 * -np.log(0.9) + 5 * -np.log(0.9)) / 7])
    assert metrics["weighted_log_loss"] == pytest.approx(manual)
    assert report.results["summary"]["epidural_volumes"] == 1
    with open(tmp_path / "eval" / "per_case.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["p_epidural"]) == pytest.approx(0.8) and row["label_epidural"] == "1"
    # decisions at the subtype thresholds chosen on validation: subdural at 0.75 misses the 0.7 case
    chosen = {"subdural": 0.75}
    report = VolumeEvaluationReport(str(tmp_path / "eval_op"), task="cls", subtype_thresholds=chosen)
    _run_once(report, items)
    assert report.results["metrics"]["subdural_sensitivity"] == 0.0
    assert report.results["metrics"]["epidural_sensitivity"] == 1.0  # not named: 0.5
    assert report.results["summary"]["subtype_thresholds"]["subdural"] == 0.75
    writer = VolumePredictionWriter(str(tmp_path / "pred"), task="cls", subtype_thresholds={"epidural": 0.85})
    _run_once(writer, [([{"case_id": "c0"}], [{"pred": torch.tensor([0.9]),
                                              "pred_subtypes": torch.tensor(cases[0][3])}])])
    body = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    written = body["volumes"][0]
    assert [round(written[f"p_{n}"], 4) for n in names] == [0.8, 0.1, 0.1, 0.1, 0.2]
    assert [written[f"decision_{n}"] for n in names] == [0, 0, 0, 0, 0]  # epidural 0.8 < 0.85
    assert body["subtype_thresholds"]["epidural"] == 0.85 and body["subtype_thresholds"]["subdural"] == 0.5
