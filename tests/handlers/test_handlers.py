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
