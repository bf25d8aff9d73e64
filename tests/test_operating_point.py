"""The decision threshold chosen on validation data: the rule, the handler, and the checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from smartnet.handlers import OperatingPointSelector
from smartnet.operating_point import OperatingPoint, choose_threshold, stored_threshold


def test_youden_separates_an_uncalibrated_but_perfect_classifier():
    # every probability is below 0.5: at 0.5 nothing is called positive, yet the ranking is perfect
    scores = np.array([0.01, 0.02, 0.03, 0.04, 0.20, 0.25, 0.30])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    record = choose_threshold(scores, labels, "youden")
    assert 0.04 < record["threshold"] < 0.20
    assert record["sensitivity"] == 1.0 and record["specificity"] == 1.0
    assert (record["n_positive"], record["n_negative"]) == (3, 4)


def test_between_classes_that_spread_alike_the_threshold_lies_midway_on_the_logit_scale():
    # the network's output is linear in logits: midway between 0.01 and 0.4 there is 0.076, not 0.205
    low, high = np.log(0.01 / 0.99), np.log(0.4 / 0.6)
    logits = np.array([low - 0.5, low, high, high + 0.5])
    record = choose_threshold(1 / (1 + np.exp(-logits)), np.array([0, 0, 1, 1]), "youden")
    logit = np.log(record["threshold"] / (1 - record["threshold"]))
    assert logit == pytest.approx((low + high) / 2, abs=1e-6)
    assert record["threshold"] == pytest.approx(0.0758, abs=1e-3)


def test_a_gap_tie_goes_nearer_the_class_that_spreads_less():
    # lesion-free heads cluster, bleeds of every size spread: the threshold sits nearer the negatives, and still
    # a tenth of the gap away from the highest of them
    negatives = np.array([-10.0, -9.5, -9.0, -8.5, -8.0])
    positives = np.array([0.0, 4.0, 8.0, 12.0, 16.0])
    scores = 1 / (1 + np.exp(-np.concatenate([negatives, positives])))
    record = choose_threshold(scores, np.array([0] * 5 + [1] * 5), "youden")
    logit = np.log(record["threshold"] / (1 - record["threshold"]))
    assert record["sensitivity"] == 1.0 and record["specificity"] == 1.0
    assert -8.0 + 0.8 - 1e-9 <= logit < -4.0  # nearer -8 than the gap's middle (-4)
    swapped = choose_threshold(1 - scores, np.array([1] * 5 + [0] * 5), "youden")  # the mirror image
    assert np.log(swapped["threshold"] / (1 - swapped["threshold"])) == pytest.approx(-logit, abs=1e-6)


def test_a_tie_over_two_gaps_keeps_the_largest_j():
    # J = 2/3 below 0.3 and above 0.5, 1/3 between: a threshold between the two best gaps would halve J
    record = choose_threshold(np.array([0.1, 0.2, 0.3, 0.5, 0.6, 0.7]), np.array([0, 0, 1, 0, 1, 1]), "youden")
    assert record["sensitivity"] + record["specificity"] - 1 == pytest.approx(2 / 3)
    assert not 0.3 < record["threshold"] < 0.5


def test_target_sensitivity_takes_the_highest_threshold_that_reaches_it():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    labels = np.array([0, 1, 0, 0, 1, 0, 1, 1, 1, 1])
    record = choose_threshold(scores, labels, "sensitivity", target_sensitivity=0.8)
    assert record["sensitivity"] >= 0.8
    assert 0.4 < record["threshold"] < 0.5  # 0.5 itself would give 5 / 6 -> the highest passing is just below it
    full = choose_threshold(scores, labels, "sensitivity", target_sensitivity=1.0)
    assert full["sensitivity"] == 1.0 and full["threshold"] < 0.2


def test_one_class_or_fixed_keeps_the_given_threshold():
    assert choose_threshold(np.array([0.1, 0.7]), np.array([1, 1]))["threshold"] == 0.5
    assert choose_threshold(np.array([0.1, 0.7]), np.array([0, 1]), "fixed", fixed=0.3)["threshold"] == 0.3


@pytest.mark.parametrize("kwargs", [{"method": "best"}, {"target_sensitivity": 0.0}, {"target_sensitivity": 1.5}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        OperatingPoint(**kwargs)


def test_selector_updates_the_operating_point_from_validation_outputs():
    point = OperatingPoint("youden")
    outputs = [[{"pred": torch.tensor([p]), "label": torch.tensor([y])}] for p, y in
               [(0.05, 0), (0.07, 0), (0.3, 1), (0.35, 1), (0.06, 0), (0.4, 1)]]
    evaluator = Engine(lambda engine, batch: batch)
    OperatingPointSelector(point, score_key="pred", label_key="label").attach(evaluator)
    evaluator.run(outputs, max_epochs=1)
    assert 0.07 < point.threshold < 0.3
    assert evaluator.state.metrics["val_sensitivity_op"] == 1.0
    assert evaluator.state.metrics["val_specificity_op"] == 1.0


def test_the_threshold_travels_in_the_checkpoint_as_plain_data(tmp_path):
    point = OperatingPoint("youden")
    point.update(np.array([0.01, 0.02, 0.2, 0.3]), np.array([0, 0, 1, 1]))
    path = tmp_path / "model.pt"
    torch.save({"model": torch.nn.Linear(2, 1).state_dict(), "operating_point": point.state_dict()}, path)
    state = torch.load(path, weights_only=True)  # plain numbers and strings only
    assert state["operating_point"]["method"] == "youden"
    assert stored_threshold(path) == pytest.approx(point.threshold)
    assert stored_threshold(path, explicit=0.7) == 0.7  # an explicit threshold wins


def test_a_checkpoint_without_an_operating_point_falls_back_to_one_half(tmp_path, caplog):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 1).state_dict(), path)
    with caplog.at_level("WARNING", logger="smartnet"):
        assert stored_threshold(path) == 0.5
    assert "no operating point" in caplog.text
    assert stored_threshold(tmp_path / "missing.pt") == 0.5
    with pytest.raises(ValueError, match="probability"):
        stored_threshold(path, explicit=2.0)


def test_slice_model_gets_a_volume_threshold_of_its_own():
    """Per-volume maxima of slice probabilities need a threshold of their own (higher than for single slices)."""
    point = OperatingPoint("youden")
    batches = []
    for case, probs, label in [("a", [0.05, 0.30, 0.10], 1), ("b", [0.04, 0.12, 0.06], 0), ("c", [0.35, 0.02], 1),
                               ("d", [0.15, 0.03], 0)]:
        batches += [[{"case_id": case, "p": p, "y": int(label and p >= 0.3)}] for p in probs]

    def process(engine, batch):  # MONAI's evaluators keep the source items in state.batch, outputs in state.output
        return [{"cls_prob": torch.tensor([b["p"]]), "cls_label": torch.tensor([b["y"]])} for b in batch]

    evaluator = Engine(process)
    OperatingPointSelector(point, score_key="cls_prob", label_key="cls_label", group_key="case_id").attach(evaluator)
    evaluator.run(batches, max_epochs=1)
    record = point.state_dict()
    assert record["volume_sensitivity"] == 1.0 and record["volume_specificity"] == 1.0
    assert 0.15 < record["volume_threshold"] < 0.30
    assert record["threshold"] < 0.30  # slice level: positives are the 0.30 and 0.35 slices


def test_subtypes_get_thresholds_of_their_own_chosen_and_stored_like_the_any_threshold(tmp_path):
    """Per subtype a threshold on the validation volumes by the same rule (0.5 where a subtype has one class only),
    stored in the checkpoint as plain data and read back with explicit values winning."""
    from smartnet.operating_point import stored_subtype_thresholds

    point = OperatingPoint("youden")
    # five volumes: epidural at 0.20-0.25 against 0.02-0.05 (uncalibrated, perfectly separated); subdural in none
    sub_scores = [[0.20, 0.1, 0.1, 0.1, 0.3], [0.25, 0.1, 0.1, 0.1, 0.3], [0.05, 0.1, 0.1, 0.1, 0.3],
                  [0.02, 0.1, 0.1, 0.1, 0.3], [0.04, 0.1, 0.1, 0.1, 0.3]]
    sub_labels = [[1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0]]
    outputs = [[{"pred": torch.tensor([0.9 if any(y) else 0.1]), "label": torch.tensor([float(any(y))]),
                 "pred_subtypes": torch.tensor(p), "label_subtypes": torch.tensor(y, dtype=torch.float32)}]
               for p, y in zip(sub_scores, sub_labels)]
    evaluator = Engine(lambda engine, batch: batch)
    OperatingPointSelector(point).attach(evaluator)
    evaluator.run(outputs, max_epochs=1)
    thresholds = point.record["subtype_thresholds"]
    assert 0.05 < thresholds["epidural"] < 0.20 and point.record["subtype_rates"]["epidural"] == [1.0, 1.0]
    assert thresholds["subdural"] == 0.5  # no positive validation volume: nothing to choose
    path = tmp_path / "model.pt"
    torch.save({"model": {}, "operating_point": point.state_dict()}, path)
    state = torch.load(path, weights_only=True)
    assert "subtype_rates" not in state["operating_point"]  # logs only
    assert stored_subtype_thresholds(path) == pytest.approx(thresholds)
    assert stored_subtype_thresholds(path, {"subdural": 0.3})["subdural"] == 0.3
    assert stored_subtype_thresholds(tmp_path / "missing.pt") == {name: 0.5 for name in thresholds}
    with pytest.raises(ValueError, match="the subtypes are"):
        stored_subtype_thresholds(path, {"chronic": 0.3})
    with pytest.raises(ValueError, match="probability"):
        stored_subtype_thresholds(path, {"subdural": 1.5})
