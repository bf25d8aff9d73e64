"""Learning tests: the whole SMART-Net chain learns on held-out synthetic volumes, at two training seeds.

Every run goes through `python -m monai.bundle run` with the bundles' demo profiles (ResNet-18, stride-2 stem, no
CLAHE, brain + subdural + bone windows; the upstream's slice logit with the segmentation head's peak, ``seg_peak``,
which the classifier keeps, ``slice_head``; the segmenter keeping the upstream's 2D head, ``slice_head``):

1. upstream multi-task training (the demo profile's classification and segmentation heads with the consistency
   loss), evaluated on every slice of the test split: slice AUROC, sensitivity + specificity at
   the operating point chosen on the validation split;
2. the volume classifier (BiLSTM, the reference operator, plus the upstream's own slice logit, its largest over the
   slices) from that upstream checkpoint, with the subtype head (``subtypes: true``): volume AUROC and sensitivity +
   specificity of its "any" output at its stored operating point, and per kind drawn a subtype AUROC that a model
   knowing "any" perfectly and nothing else cannot reach;
3. the volume segmenter from the upstream encoder, decoder and head: mean Dice on the test haemorrhage volumes and
   false-positive mL on the haemorrhage-free ones.

A constant or non-learning model fails every one: AUROC 0.5, sensitivity + specificity 1.0, Dice 0 (or a false
positive of the whole head). The data: 64 training / 8 validation / 16 test synthetic head CTs of 64 x 64 x 16 voxels
(3.6 mm pixels) with intraparenchymal and epidural bleeds (one to three a case, of one or both kinds), half of them
haemorrhage-free; the test split is never seen in training. All five kinds are what `smartnet demo` and
`studies/demo_seeds.yaml` train and measure at three seeds (128 px, 400 upstream steps, about eleven minutes a seed); at
the 64 px and the 128-192 upstream steps a test can afford, the thin kinds (subdural crescents, subarachnoid streaks,
intraventricular layering) are a pixel or two wide and the upstream does not learn them (measured at seed 0 on all
five kinds with 128 steps of the three heads: slice AUROC 0.59 and Dice 0 on the first phantom with the brain
window; 0.57 and 0 on the current phantom with the demo profiles' three windows). The upstream trains 12 epochs
of 16 steps (192): with the demo profile's two heads, 8 epochs left seed 0 at slice AUROC 0.82 and the subtype
head's epidural AUROC among the haemorrhage volumes at 0.67 at both seeds; 12 take the time 8 took with three.
Intraparenchymal blobs and epidural lenses it learns, and they differ in what the subtype head reads (depth inside
the head, thickness).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import DOWN_CLS, DOWN_SEG, UPSTREAM, run_bundle

pytestmark = pytest.mark.slow

THRESHOLD_AUROC = 0.85
THRESHOLD_DICE = 0.4
THRESHOLD_J = 1.5  # sensitivity + specificity at the operating point (a constant output gives 1.0)
THRESHOLD_FP_ML = 5.0  # mean false-positive lesion volume on haemorrhage-free test volumes, mL
COMMON = {"image_size": 64}
SEEDS = (0, 1)
UPSTREAM_EPOCHS = 12
SUBTYPE_KINDS = ["intraparenchymal", "epidural"]
THRESHOLD_AUROC_WITHIN = 0.7  # subtype AUROC among the haemorrhage volumes (a model knowing only "any": 0.5)


@pytest.fixture(scope="module")
def learning_dataset(tmp_path_factory) -> Path:
    from smartnet.data import write_demo_dataset

    root = tmp_path_factory.mktemp("learning_data")
    # without the scanner's bright band along the inner table: at 64 px it is one pixel along the bone, as blood-dense
    # as a thin epidural, and 12 epochs do not learn it (slice AUROC 0.67 / 0.82 at seeds 0 / 1, classifier AUROC
    # 0.75 at seed 0); the demo's 128 px chain learns with it (studies/demo_seeds.yaml)
    write_demo_dataset(root, n_train=64, n_valid=8, n_test=16, size=64, depth=16, seed=2024, verbose=False,
                       kinds=SUBTYPE_KINDS, inner_table_band=False)
    return root


class Trained(NamedTuple):
    """A folder laid out like ``bundles/`` with a trained and evaluated ``smartnet_upstream``, and its seed."""

    root: Path
    seed: int


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def trained(request, learning_dataset, tmp_path_factory) -> Iterator[Trained]:
    """The upstream trained at the parameter's seed and evaluated; the downstream bundles train as its siblings."""
    root = tmp_path_factory.mktemp(f"learning_bundles_seed{request.param}")
    upstream = root / "smartnet_upstream"
    data = {"dataset_dir": learning_dataset, **COMMON, "seed": request.param}
    run_bundle(UPSTREAM, ["train.json", "demo.json"],
               {**data, "epochs": UPSTREAM_EPOCHS, "val_interval": UPSTREAM_EPOCHS // 2, "batch_size": 4,
                "slices_per_volume": 8, "negative_fraction": 0.5, "warmup_epochs": 1}, bundle_root=upstream)
    run_bundle(UPSTREAM, ["train.json", "demo.json", "evaluate.json"], data, bundle_root=upstream)
    yield Trained(root, request.param)
    shutil.rmtree(root, ignore_errors=True)  # three bundles' checkpoints per seed


def _metrics(root: Path) -> dict:
    return json.loads((root / "eval" / "evaluation" / "metrics.json").read_text())["metrics"]


def test_upstream_learns_slice_classification(trained):
    metrics = _metrics(trained.root / "smartnet_upstream")
    assert metrics["slice_auroc"] >= THRESHOLD_AUROC, metrics
    # at the operating point chosen on the validation split: a constant output has sensitivity + specificity = 1
    assert metrics["slice_sensitivity"] + metrics["slice_specificity"] >= THRESHOLD_J, metrics
    # (the demo profile has no reconstruction head; the reference's three heads train in the bundle tests)


def _train_and_evaluate(bundle: Path, trained: Trained, dataset: Path, model: dict | None = None,
                        root_name: str | None = None, **train_overrides) -> dict:
    """Train ``bundle`` from the trained upstream (its sibling) and evaluate it; ``model`` overrides go to both runs,
    ``train_overrides`` to training only; ``root_name`` (default the bundle's) names the sibling bundle root."""
    root = trained.root / (root_name or bundle.name)
    data = {"dataset_dir": dataset, **COMMON, "seed": trained.seed, **(model or {})}
    run_bundle(bundle, ["train.json", "demo.json"], {**data, **train_overrides}, bundle_root=root)
    run_bundle(bundle, ["train.json", "demo.json", "evaluate.json"], data, bundle_root=root)
    return _metrics(root)


@pytest.fixture(scope="module")
def subtype_classifier(trained, learning_dataset) -> Path:
    """The volume classifier with the subtype head, trained from the seed's upstream and evaluated: its bundle root."""
    _train_and_evaluate(DOWN_CLS, trained, learning_dataset, model={"subtypes": True},
                        root_name="smartnet_down_cls_subtypes", epochs=8, val_interval=4)
    return trained.root / "smartnet_down_cls_subtypes"


def test_volume_classifier_learns_haemorrhage_and_its_subtypes(subtype_classifier):
    """The classifier with the subtype head: its "any" output (the binary classifier's logit, unchanged by the head)
    separates the volumes (AUROC, sensitivity + specificity at the stored operating point), and per kind drawn the
    subtype's test AUROC is above the best a model knowing "any" perfectly and nothing else can reach (every
    haemorrhage volume above every lesion-free one, ties among the haemorrhage volumes: 0.86-0.90 on this split), and
    among the haemorrhage volumes alone (where that model gives 0.5) at least 0.7. One training per seed tests both (the
    suite's time); the binary classifier without the head trains in the bundle tests."""
    import numpy as np
    from smartnet.reports.statistics import auroc

    metrics = _metrics(subtype_classifier)
    path = subtype_classifier / "eval" / "evaluation" / "per_case.csv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert metrics["auroc"] >= THRESHOLD_AUROC, metrics
    assert metrics["sensitivity"] + metrics["specificity"] >= THRESHOLD_J, metrics  # at the stored operating point
    bleeds = [r for r in rows if r["label"] == "1"]
    for name in SUBTYPE_KINDS:
        labels = np.array([int(r[f"label_{name}"]) for r in rows])
        others = sum(1 for r in bleeds if r[f"label_{name}"] == "0")
        negatives = int((labels == 0).sum())
        ceiling = (negatives - others + 0.5 * others) / negatives
        assert metrics[f"{name}_auroc"] > ceiling, (name, ceiling, metrics)
        within = auroc(np.array([int(r[f"label_{name}"]) for r in bleeds]),
                       np.array([float(r[f"p_{name}"]) for r in bleeds]))
        assert within >= THRESHOLD_AUROC_WITHIN, (name, within, metrics)
    assert metrics["weighted_log_loss"] < np.log(2), metrics  # below a constant 0.5 for every output


def test_volume_segmenter_learns_from_the_upstream_encoder_and_decoder(trained, learning_dataset):
    # the demo profile as shipped (decoder fixed): unfreezing the decoder at lr 2e-3 drifted it into marking the
    # skull's bone at the vertex and base slices as lesion at seed 0 (8.6 mL per lesion-free test volume)
    metrics = _train_and_evaluate(DOWN_SEG, trained, learning_dataset, epochs=6, val_interval=3)
    assert metrics["dice_mean"] >= THRESHOLD_DICE, metrics
    assert metrics["false_positive_ml_mean_normal"] <= THRESHOLD_FP_ML, metrics  # not "lesion" everywhere


def test_bf16_inference_matches_fp32_on_the_trained_classifier(subtype_classifier, learning_dataset, tmp_path):
    """The CPU bf16 path (``precision: bf16``) of the trained classifier above (BiLSTM on the upstream encoder plus the
    upstream's slice logit with its segmentation peak, and the subtype head): every test volume's haemorrhage
    probability within 0.02 of fp32 (the documented tolerance), each subtype probability within 0.05, decisions at 0.5
    unchanged but for probabilities that near. The subtype head reads a lesion descriptor that counts pixels whose
    lesion logit is above 0, a count bf16 can change by a few pixels (as with ``seg_evidence``): 0.028 on one volume at
    seed 0, 0.004 for the haemorrhage probability (documented in docs/performance.md)."""
    from smartnet.vocabulary import SUBTYPES

    outputs = ["probability"] + [f"p_{name}" for name in SUBTYPES[1:]]
    probabilities = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        run_bundle(DOWN_CLS, ["inference.json", "demo.json"],
                   {"dataset_dir": learning_dataset, **COMMON, "subtypes": True, "precision": precision,
                    "output_dir": out}, bundle_root=subtype_classifier)
        rows = json.loads((out / "predictions.json").read_text())["volumes"]
        probabilities[precision] = {(r["case_id"], key): r[key] for r in rows for key in outputs}
    assert len(probabilities["fp32"]) == 16 * len(outputs)
    assert probabilities["fp32"].keys() == probabilities["bf16"].keys()
    for key, p32 in probabilities["fp32"].items():
        p16 = probabilities["bf16"][key]
        tolerance = 0.02 if key[1] == "probability" else 0.05
        assert abs(p16 - p32) <= tolerance, (key, p32, p16)
        assert (p16 >= 0.5) == (p32 >= 0.5) or abs(p32 - 0.5) <= tolerance, (key, p32, p16)
    assert len({round(p, 6) for p in probabilities["fp32"].values()}) > 1  # not a constant output
    assert probabilities["bf16"] != probabilities["fp32"]  # bf16 really ran: not a silent fp32 fallback
