"""Experiment tracking: ``--tracking mlflow`` records a bundle's training in a local MLflow store (SQLite)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from conftest import DOWN_CLS, TINY_DOWN_OVERRIDES, TINY_OVERRIDES, UPSTREAM, run_bundle

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("bundle, overrides", [(UPSTREAM, TINY_OVERRIDES), (DOWN_CLS, TINY_DOWN_OVERRIDES)],
                         ids=["upstream", "down_cls"])
def test_mlflow_tracking_records_losses_and_validation_metrics(bundle, overrides, tiny_dataset, tiny_bundles_root,
                                                               tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts run artifacts under ./mlruns
    # one store file per case: MLflow caches its SQL store per URI in the process, and pytest may give the next case
    # the folder name of a passed (and removed) one
    store = f"sqlite:///{tmp_path / f'mlruns_{bundle.name}.db'}"
    run_bundle(bundle, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 2, "val_interval": 1, **overrides,
                                        "tracking": "mlflow", "tracking_uri": store, "experiment_name": "smartnet",
                                        "run_name": bundle.name}, bundle_root=tiny_bundles_root / f"{bundle.name}_ml")
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("smartnet")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in runs] == [bundle.name]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert "train_loss" in run.data.metrics
    assert any("auroc" in key for key in run.data.metrics), sorted(run.data.metrics)
    validated = [key for key in run.data.metrics if "auroc" in key][0]
    assert len(client.get_metric_history(run.info.run_id, validated)) == 2  # one value per validation
    assert run.data.params["max_epochs"] == "2"
