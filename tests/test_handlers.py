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
