"""Learning test: a short upstream training on synthetic volumes reaches slice AUROC >= 0.90 on held-out volumes.

Training and evaluation both go through `python -m monai.bundle run` (train.json + demo.json, then evaluate.json
on the test split, which the training never sees). The data: 96 training / 8 validation / 16 test synthetic head CTs
of 64 x 64 pixels (3.6 mm pixels) with intraparenchymal bleeds. At this tiny size the thin kinds (subdural crescents,
epidural lenses against the skull, subarachnoid streaks, layering in 3-pixel ventricles) are a pixel or two wide and
need far more than the few CPU minutes a test may take; the demo (96 px, all kinds) shows them being learned.
"""

from __future__ import annotations

import json

import pytest

from conftest import UPSTREAM, run_bundle

AUROC_THRESHOLD = 0.90


@pytest.fixture(scope="module")
def learning_dataset(tmp_path_factory):
    from smartnet.data import write_demo_dataset

    root = tmp_path_factory.mktemp("learning_data")
    write_demo_dataset(root, n_train=96, n_valid=8, n_test=16, size=64, seed=2024, verbose=False,
                       kinds=["intraparenchymal"])
    return root


def test_upstream_learns_slice_classification(learning_dataset, tmp_path):
    common = {"dataset_dir": learning_dataset, "image_size": 64}
    run_bundle(UPSTREAM, ["train.json", "demo.json"],
               {**common, "epochs": 8, "val_interval": 2, "learning_rate": 5e-4, "batch_size": 4,
                "slices_per_volume": 8, "negative_fraction": 0.5, "warmup_epochs": 1},
               bundle_root=tmp_path)
    run_bundle(UPSTREAM, ["train.json", "demo.json", "evaluate.json"], common, bundle_root=tmp_path)
    metrics = json.loads((tmp_path / "eval" / "evaluation" / "metrics.json").read_text())["metrics"]
    assert metrics["slice_auroc"] >= AUROC_THRESHOLD, metrics
    assert metrics["rec_mae"] < 0.2, metrics  # the reconstruction head learned too
