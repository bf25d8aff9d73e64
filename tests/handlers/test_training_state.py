"""The training-state checkpoint handlers on plain ignite engines: what ``last.pt`` holds and how a run resumes."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events

from smartnet.checkpoints import load_checkpoint
from smartnet.errors import ResumeError
from smartnet.handlers import TrainingStateLoader, TrainingStateSaver


def _training(seed: int = 0):
    """A linear model, its optimiser and a trainer making one SGD step per item."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.ones(4, 3)

    def step(engine, _):
        optimizer.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    return model, optimizer, Engine(step)


def _saver(folder, model, optimizer) -> TrainingStateSaver:
    return TrainingStateSaver(str(folder), {"model": model, "optimizer": optimizer}, save_final=True,
                              final_filename="last.pt", save_interval=1, n_saved=1, file_prefix="interval")


def test_last_pt_holds_the_trainer_and_a_resumed_run_goes_on_from_its_epoch(tmp_path):
    model, optimizer, trainer = _training()
    _saver(tmp_path, model, optimizer).attach(trainer)
    trainer.run([0, 1], max_epochs=3)
    saved = load_checkpoint(tmp_path / "last.pt")  # plain data: loadable with weights_only
    assert set(saved) >= {"model", "optimizer", "trainer"}
    assert saved["trainer"]["iteration"] == 6 and saved["trainer"]["max_epochs"] == 3  # ignite: epoch = 6 / 2
    assert not (tmp_path / "last.pt.tmp").exists() and not list(tmp_path.glob("*.tmp"))  # written atomically

    resumed_model, resumed_optimizer, resumed = _training(seed=1)  # other initial weights
    assert not torch.equal(resumed_model.weight, model.weight)
    TrainingStateLoader(str(tmp_path / "last.pt"), {"model": resumed_model, "optimizer": resumed_optimizer}).attach(
        resumed)
    at_start = {}
    epochs = []
    resumed.add_event_handler(Events.EPOCH_STARTED, lambda e: at_start.setdefault(
        "weight", resumed_model.weight.detach().clone()))
    resumed.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(e.state.epoch))
    resumed.run([0, 1], max_epochs=5)
    assert epochs == [4, 5]  # epochs 1-3 are not trained again
    assert torch.equal(at_start["weight"], saved["model"]["weight"])  # it went on from the saved weights


def test_resume_refuses_a_missing_or_unsafe_checkpoint(tmp_path):
    model, optimizer, trainer = _training()
    loader = TrainingStateLoader(str(tmp_path / "last.pt"), {"model": model, "optimizer": optimizer})
    loader.attach(trainer)
    with pytest.raises(ResumeError, match="not found"):
        trainer.run([0], max_epochs=1)

    torch.save({"model": model.state_dict(), "extra": _Pickled()}, tmp_path / "last.pt")  # carries a class
    model, optimizer, trainer = _training()
    TrainingStateLoader(str(tmp_path / "last.pt"), {"model": model, "optimizer": optimizer}).attach(trainer)
    with pytest.raises(ResumeError, match="refused"):
        trainer.run([0], max_epochs=1)


class _Pickled:
    """An object only pickle can store: a checkpoint holding it could run code when loaded."""
