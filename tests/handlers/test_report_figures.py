"""``ReportFigures`` on a plain ignite engine: what it keeps while an evaluation runs and the report it builds."""

from __future__ import annotations

import json

import numpy as np
import torch
from ignite.engine import Engine

from report_checks import SQUARE, check_report, montage_size, write_slice_evaluation
from smartnet.handlers import ReportFigures
from smartnet.networks import SmartNet2D
from smartnet.reports.build import FIGURES_DIR, MANIFEST


def test_report_figures_of_the_upstream_keep_the_most_probable_slices_and_the_largest_lesions(tmp_path):
    torch.manual_seed(0)
    network = SmartNet2D(encoder="resnet18", stem_stride=2).eval()
    folder = tmp_path / "evaluation"
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    write_slice_evaluation(folder, labels, np.clip(labels * 0.5 + rng.random(80) * 0.6, 0, 1))

    # 3 cases of 2 slices, one slice per iteration; case c1's lesion is larger on its second slice
    probabilities = [0.1, 0.9, 0.3, 0.8, 0.2, 0.7]
    lesion_sizes = [0, 4, 2, 6, 0, 3]
    batches = []
    for i, (p, size) in enumerate(zip(probabilities, lesion_sizes)):
        truth = torch.zeros(1, 64, 64)
        truth[:, 10:10 + size, 10:10 + size] = 1
        item = {"image": torch.rand(1, 64, 64), "case_id": f"c{i // 2}", "slice_index": i % 2}
        prob = torch.tensor([p], dtype=torch.float64)
        batches.append((item, {"cls_prob": prob, "seg": torch.roll(truth, 1, 1), "label": truth}))

    def step(engine, batch):
        item, output = batch
        engine.state.batch = [item]
        network(item["image"][None])  # the forward pass the handler's feature hook reads
        return [output]

    engine = Engine(step)
    handler = ReportFigures(str(folder), network, "slice", n_cam=2, max_points=4, n_boot=50)
    handler.attach(engine)
    engine.run(batches, max_epochs=1)

    assert sorted(p for p, _, _ in handler.cam_inputs) == [0.8, 0.9]  # the two most probable slices
    assert len(handler.features) == 4 and handler.feature_labels == [0, 1, 1, 1]  # at most max_points, in order
    assert handler.cases["c1"]["truth"].sum() == 36 and handler.cases["c0"]["truth"].sum() == 16  # largest lesions
    assert handler.cases["c2"]["n_truth"] == 9 and handler.cases["c2"]["n_inter"] == 6  # Dice counts per case
    manifest = json.loads((folder / FIGURES_DIR / MANIFEST).read_text())
    assert [entry["file"] for entry in manifest] == ["activation_maps.png", "tsne.png", "overlays.png"]
    check_report(folder, {"activation_maps.png": montage_size(2), "tsne.png": SQUARE,
                          "overlays.png": montage_size(3)})
