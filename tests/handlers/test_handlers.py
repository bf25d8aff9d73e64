"""Small ignite handlers tested on plain engines."""

from __future__ import annotations

import pytest
from ignite.engine import Engine

from smartnet.handlers import FinalValidation


@pytest.mark.parametrize("epochs, interval, expected", [(3, 5, [3]), (4, 2, []), (1, 1, [])])
def test_final_validation_runs_only_when_the_last_epoch_was_skipped(epochs, interval, expected):
    validated = []

    class Validator:
        def run(self, epoch):
            validated.append(epoch)

    trainer = Engine(lambda engine, batch: None)
    FinalValidation(Validator(), interval).attach(trainer)
    trainer.run([0, 1], max_epochs=epochs)
    assert validated == expected


def test_final_validation_refuses_a_bad_interval():
    with pytest.raises(ValueError, match="positive"):
        FinalValidation(object(), 0)


def _run_collecting(handler, items):
    """Run ``handler`` on a plain engine over two epochs of ``items`` = [(batch, output), ...], one per iteration."""
    def step(engine, item):
        engine.state.batch = item[0]  # the batch as a MONAI engine leaves it: a list of items
        return item[1]

    engine = Engine(step)
    handler.attach(engine)
    engine.run(items, max_epochs=2)
    return engine


def test_collectors_reset_each_epoch_collect_each_iteration_and_finish_at_its_end(tmp_path):
    """The handlers on the Collector base: rows are not carried over from one run to the next, every item is
    collected once, and the files / metrics are written from the last run."""
    import json

    import torch
    from monai.data import MetaTensor

    from smartnet.handlers import LossTermsLogger, VolumePredictionWriter
    from smartnet.handlers.collector import Collector

    class Loss:
        last_terms = {"cls": 1.0, "seg": 3.0}

    logger = LossTermsLogger(Loss())
    engine = _run_collecting(logger, [([{}], [{}])] * 3)
    assert engine.state.metrics == {"train_loss_cls": 1.0, "train_loss_seg": 3.0} and logger.count == 3

    items = []
    for i, p in enumerate((0.2, 0.9)):
        image = MetaTensor(torch.zeros(1, 4, 4, 2), affine=torch.eye(4), meta={"filename_or_obj": f"/d/c{i}.nii.gz"})
        items.append(([{"case_id": f"c{i}", "image": image}], [{"pred": torch.tensor([p])}]))
    writer = VolumePredictionWriter(str(tmp_path), task="cls", threshold=0.5)
    _run_collecting(writer, items)
    written = json.loads((tmp_path / "predictions.json").read_text())
    assert [(v["case_id"], v["decision"]) for v in written["volumes"]] == [("c0", 0), ("c1", 1)]  # once each
    assert isinstance(writer, Collector) and isinstance(logger, Collector)
    with pytest.raises(NotImplementedError):
        Collector()._collect(engine)


def test_epoch_seeder_makes_every_epoch_repeatable_on_its_own():
    """Epoch k draws the same numbers whether or not epochs before it ran (what an exact resume needs)."""
    import torch

    from smartnet.handlers import EpochSeeder

    def draws(max_epochs, start_epoch=0):
        seen = {}
        engine = Engine(lambda e, b: seen.setdefault(e.state.epoch, torch.rand(3)))
        EpochSeeder(7).attach(engine)
        if start_epoch:  # a resumed run starts from its checkpoint's epoch
            engine.load_state_dict({"epoch": start_epoch, "max_epochs": max_epochs, "epoch_length": 1})
            engine.run([0])
        else:
            engine.run([0], max_epochs=max_epochs)
        return seen

    whole = draws(3)
    resumed = draws(3, start_epoch=2)
    assert set(resumed) == {3} and torch.equal(resumed[3], whole[3])
    assert not torch.equal(whole[1], whole[2])  # each epoch its own seed
    unseeded = {}
    engine = Engine(lambda e, b: unseeded.setdefault(e.state.epoch, torch.rand(3)))
    EpochSeeder(None).attach(engine)  # None: nothing reseeded
    engine.run([0], max_epochs=1)
    assert not torch.equal(unseeded[1], whole[1])


def test_slice_probability_writer_writes_one_row_per_slice_and_the_volume_maximum(tmp_path):
    import csv
    import json

    import torch
    from monai.data import MetaTensor

    from smartnet.handlers import SliceProbabilityWriter

    probs = torch.zeros(1, 4, 4, 3)  # (C, X, Y, Z), axial slices along Z with an identity affine
    probs[0, 1, 1] = torch.tensor([0.2, 0.9, 0.4])
    item = ([{"case_id": "a"}], [{"pred_cls": MetaTensor(probs, affine=torch.eye(4)), "lesion_ml": 1.5}])
    writer = SliceProbabilityWriter(str(tmp_path), threshold=0.5, volume_threshold=0.8)
    _run_collecting(writer, [item, item])
    rows = list(csv.DictReader(open(tmp_path / "slice_probabilities.csv")))
    assert len(rows) == 6  # two volumes of three slices in the last epoch, none carried over from the first
    assert [(r["slice_index"], float(r["probability"]), r["decision"]) for r in rows[:3]] == [
        ("0", 0.2, "0"), ("1", 0.9, "1"), ("2", 0.4, "0")]
    volumes = json.loads((tmp_path / "volume_scores.json").read_text())
    assert volumes["volume_threshold"] == 0.8 and volumes["volumes"][0] == {
        "case_id": "a", "slices": 3, "volume_score": 0.8999999761581421, "decision": 1, "lesion_ml": 1.5}


def test_segmenter_predictions_come_with_a_finding_per_lesion(tmp_path):
    import csv
    import json

    import torch
    from monai.data import MetaTensor

    from smartnet.handlers import VolumePredictionWriter

    affine = torch.diag(torch.tensor([1.0, 1.0, 5.0, 1.0]))  # RAS, 1 mm pixels, 5 mm slices
    mask = torch.zeros(1, 40, 40, 6)
    mask[0, 30:36, 18:22, 1:4] = 1  # right of the field of view's centre: 72 voxels = 0.36 mL
    mask[0, 4:6, 18:20, 2] = 1  # left: 4 voxels
    empty = torch.zeros(1, 40, 40, 6)
    items = [([{"case_id": case, "image": MetaTensor(m, affine=affine)}], [{"pred": MetaTensor(m, affine=affine)}])
             for case, m in (("bleed", mask), ("normal", empty))]
    _run_collecting(VolumePredictionWriter(str(tmp_path), task="seg"), items)
    predictions = json.loads((tmp_path / "predictions.json").read_text())["volumes"]
    assert [(p["case_id"], p["lesions"], p["lesion_ml"]) for p in predictions] == [
        ("bleed", 2, 0.38), ("normal", 0, 0.0)]
    findings = json.loads((tmp_path / "findings.json").read_text())["cases"]
    assert findings["normal"] == [] and [f["side"] for f in findings["bleed"]] == ["right", "left"]
    first = findings["bleed"][0]
    assert (first["voxels"], first["first_slice"], first["last_slice"]) == (72, 1, 3)
    assert first["volume_ml"] == pytest.approx(0.36) and first["max_axial_diameter_mm"] == pytest.approx(7.2, abs=0.1)
    rows = list(csv.DictReader(open(tmp_path / "findings.csv")))
    assert [(r["case_id"], r["lesion"], r["side"]) for r in rows] == [("bleed", "1", "right"), ("bleed", "2", "left")]
    _run_collecting(VolumePredictionWriter(str(tmp_path), task="seg"), items[1:])  # no lesion anywhere
    assert open(tmp_path / "findings.csv").readline().startswith("case_id,lesion,voxels,volume_ml")


def test_findings_carry_the_classifiers_probabilities_of_each_scan(tmp_path):
    """The classifier's predictions.json, as its writer leaves it, joined to the segmenter's findings by case; a file
    that is not one is a settings error naming it."""
    import json

    import torch
    from monai.data import MetaTensor

    from smartnet.errors import SettingsError
    from smartnet.handlers import VolumePredictionWriter

    cls_items = [([{"case_id": case}], [{"pred": torch.tensor([p]), "pred_subtypes": torch.tensor([0.1, 0.2, 0.3,
                                                                                                   0.4, p])}])
                 for case, p in (("bleed", 0.9), ("normal", 0.2))]
    _run_collecting(VolumePredictionWriter(str(tmp_path / "cls"), task="cls"), cls_items)
    mask = torch.zeros(1, 20, 20, 4)
    mask[0, 5:9, 5:9, 1:3] = 1
    affine = torch.diag(torch.tensor([1.0, 1.0, 5.0, 1.0]))
    seg_items = [([{"case_id": case, "image": MetaTensor(m, affine=affine)}], [{"pred": MetaTensor(m, affine=affine)}])
                 for case, m in (("bleed", mask), ("unseen", mask))]
    writer = VolumePredictionWriter(str(tmp_path / "seg"), task="seg", classifier_predictions=str(tmp_path / "cls"))
    _run_collecting(writer, seg_items)
    classifier = json.loads((tmp_path / "seg" / "findings.json").read_text())["classifier"]
    assert classifier["cases"] == {"bleed": {"probability": pytest.approx(0.9), "decision": 1,
                                             "p_epidural": pytest.approx(0.1), "p_intraparenchymal": pytest.approx(0.2),
                                             "p_intraventricular": pytest.approx(0.3),
                                             "p_subarachnoid": pytest.approx(0.4), "p_subdural": pytest.approx(0.9),
                                             "decision_epidural": 0, "decision_intraparenchymal": 0,
                                             "decision_intraventricular": 0, "decision_subarachnoid": 0,
                                             "decision_subdural": 1}}
    page = (tmp_path / "seg" / "findings.html").read_text()
    assert "Volume classifier (this scan): haemorrhage 0.90, epidural 0.10" in page
    assert page.count("Volume classifier") == 1  # the case the classifier did not see has no line
    for bad in (tmp_path / "nowhere", tmp_path / "seg" / "findings.json"):
        with pytest.raises(SettingsError, match="not a volume classifier's predictions.json"):
            VolumePredictionWriter(str(tmp_path / "x"), task="seg", classifier_predictions=str(bad))
    with pytest.raises(SettingsError, match="min_finding_ml"):
        VolumePredictionWriter(str(tmp_path / "x"), task="seg", min_finding_ml=-1)


def test_volume_evaluation_report_of_the_segmenter_on_known_masks(tmp_path):
    """Dice per haemorrhage volume, false-positive mL per volume and over the lesion-free ones, padded slices left
    out (``depth``), from masks whose answers are known."""
    import json

    import torch
    from monai.data import MetaTensor

    from smartnet.handlers import VolumeEvaluationReport

    affine = torch.diag(torch.tensor([1.0, 1.0, 10.0, 1.0]))  # 10 mm^3 voxels: 100 voxels = 1 mL
    truth = torch.zeros(1, 10, 10, 4)
    truth[0, :5, :4, 1] = 1  # 20 voxels
    pred = torch.zeros(1, 10, 10, 4)
    pred[0, :5, :2, 1] = 1  # 10 of them
    pred[0, 9, 9, 3] = 1  # one false voxel, on a padded slice (depth 3): left out
    normal_pred = torch.zeros(1, 10, 10, 4)
    normal_pred[0, 0, :5, 0] = 1  # 5 false voxels = 0.05 mL
    items = [
        ([{"case_id": "bleed", "image": MetaTensor(truth, affine=affine), "depth": 3}],
         [{"pred": pred, "label": truth}]),
        ([{"case_id": "normal", "image": MetaTensor(truth, affine=affine)}],
         [{"pred": normal_pred, "label": torch.zeros_like(truth)}]),
    ]
    report = VolumeEvaluationReport(str(tmp_path), task="seg")
    _run_collecting(report, items)
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert metrics["dice_mean"] == pytest.approx(2 * 10 / 30)
    assert metrics["false_positive_ml_mean_normal"] == pytest.approx(0.05)
    assert metrics["false_positive_ml_mean"] == pytest.approx(0.025)  # the bleed's padded false voxel not counted
    assert report.results["summary"] == {"volumes": 2, "haemorrhage_volumes": 1, "threshold": 0.5}
