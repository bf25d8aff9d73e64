"""Evaluation reports: statistics against independent computations, figures as valid PNGs of the expected size,
Grad-CAM maps, the HTML's references, and the HTML rendered in headless Chromium."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from report_checks import png_size, write_slice_evaluation
from smartnet.reports import auroc, binary_metrics_with_ci, bootstrap_ci, build_report, mean_with_ci
from smartnet.reports.figures import DPI, plot_activation_maps, plot_overlays, plot_tsne


def mann_whitney_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUROC by counting pairs (ties one half): an independent check of the report's number."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


@pytest.fixture()
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 80)
    scores = np.clip(labels * 0.35 + rng.normal(0.35, 0.2, 80), 0, 1).round(3)  # rounding makes ties
    return labels, scores


def test_slice_intervals_resample_volumes_not_slices():
    """Ten slices per volume that all look alike: resampling slices one by one pretends to ten times the data; the
    cluster bootstrap (groups = the volume of each slice) gives the wider, honest interval."""
    rng = np.random.default_rng(3)
    volume_labels = np.array([0, 1] * 6)
    volume_scores = volume_labels * 0.3 + rng.normal(0, 0.3, 12)
    labels, scores = np.repeat(volume_labels, 10), np.repeat(volume_scores, 10) + rng.normal(0, 0.01, 120)
    cases = np.repeat(np.arange(12), 10)
    naive = bootstrap_ci(auroc, labels, scores, n_boot=400)
    clustered = bootstrap_ci(auroc, labels, scores, n_boot=400, groups=cases)
    assert clustered[1] - clustered[0] > 1.5 * (naive[1] - naive[0])
    stats = binary_metrics_with_ci(labels, scores, 0.15, n_boot=400, groups=cases)
    assert stats["auroc"]["ci_low"] == pytest.approx(clustered[0]) and stats["auroc"]["value"] == auroc(labels, scores)


def test_statistics_equal_independent_computations_and_cis_contain_them(scored):
    labels, scores = scored
    stats = binary_metrics_with_ci(labels, scores, threshold=0.5, n_boot=300)
    assert stats["auroc"]["value"] == pytest.approx(mann_whitney_auroc(labels, scores), abs=1e-12)
    assert stats["sensitivity"]["value"] == pytest.approx(np.mean(scores[labels == 1] >= 0.5))
    assert stats["specificity"]["value"] == pytest.approx(np.mean(scores[labels == 0] < 0.5))
    for entry in stats.values():
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
        assert entry["ci_high"] - entry["ci_low"] > 0.01  # 80 cases: a real interval, not a point
    dice = mean_with_ci(np.array([0.8, 0.6, np.nan, 0.9, 0.7]), n_boot=300)
    assert dice["value"] == pytest.approx(0.75) and dice["ci_low"] <= 0.75 <= dice["ci_high"]
    assert bootstrap_ci(auroc, np.ones(5), np.arange(5.0)) == (pytest.approx(np.nan, nan_ok=True),) * 2


def test_report_from_saved_predictions(scored, tmp_path):
    labels, scores = scored
    folder = tmp_path / "evaluation"
    write_slice_evaluation(folder, labels, scores)
    result = run_cli("report", folder, "--n_boot", "200")
    assert result.returncode == 0, result.stderr
    intervals = json.loads((folder / "metrics.json").read_text())["confidence_intervals"]
    assert intervals["slice_auroc"]["value"] == pytest.approx(mann_whitney_auroc(labels, scores))
    volume_labels = labels.reshape(20, 4).max(1)
    volume_scores = scores.reshape(20, 4).max(1)
    assert intervals["volume_auroc"]["value"] == pytest.approx(mann_whitney_auroc(volume_labels, volume_scores))
    assert intervals["dice"]["value"] == pytest.approx(np.mean(0.5 + 0.02 * np.arange(20)))
    for entry in intervals.values():
        if isinstance(entry, dict):
            assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    sizes = {"roc_pr_slice.png": (1000, 460), "roc_pr_volume.png": (1000, 460), "confusion_slice.png": (500, 500),
             "confusion_volume.png": (500, 500)}
    for name, size in sizes.items():
        assert png_size(folder / "figures" / name) == size
    html = (folder / "report.html").read_text()
    sources = re.findall(r"<img src='([^']+)'", html)
    assert sorted(Path(s).name for s in sources) == sorted(sizes)
    assert all((folder / s).is_file() for s in sources)
    assert "c19" in html and "slice_auroc" in html


def test_report_of_a_folder_without_results_is_one_message(tmp_path):
    result = run_cli("report", tmp_path)
    assert result.returncode == 1 and "run the evaluate workflow first" in result.stderr
    assert "Traceback" not in result.stderr


def test_montage_figures_have_the_expected_size(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.random((32, 32))
    mask = np.zeros((32, 32))
    mask[10:20, 10:20] = 1
    overlays = plot_overlays([{"title": str(i), "image": image, "truth": mask, "pred": np.roll(mask, 3, 0)}
                              for i in range(3)], tmp_path / "o.png", "cases")
    assert png_size(overlays) == (int(2.6 * 3 * DPI), int(3.0 * DPI))
    cams = plot_activation_maps([{"title": "a", "image": image, "cam": image}], tmp_path / "c.png", "cam")
    assert png_size(cams) == (int(2.6 * DPI), int(3.0 * DPI))
    features = np.concatenate([rng.normal(0, 1, (20, 8)), rng.normal(3, 1, (20, 8))])
    tsne = plot_tsne(features, np.repeat([0, 1], 20), tmp_path / "t.png", "t-SNE")
    assert png_size(tsne) == (500, 500)


def test_gradcam_maps_have_the_slice_shape_and_are_not_constant():
    from smartnet.handlers import gradcam_maps
    from smartnet.networks import SmartNet2D, SmartNetVolumeClassifier

    torch.manual_seed(0)
    slices = torch.rand(3, 1, 64, 64)
    upstream = SmartNet2D(encoder="resnet18", stem_stride=2)
    maps = gradcam_maps(upstream, slices)
    assert maps.shape == (3, 64, 64)
    assert all(m.max() - m.min() > 0.1 for m in maps) and maps.min() >= 0 and maps.max() <= 1
    volume = SmartNetVolumeClassifier(encoder="resnet18", stem_stride=2, operator="lstm", hidden=16, num_layers=1)
    for p in volume.encoder.parameters():
        p.requires_grad_(False)  # a frozen encoder, as after transfer: the maps still come out
    maps = gradcam_maps(volume, slices, volume=True)
    assert maps.shape == (3, 64, 64) and maps.max() == pytest.approx(1.0) and maps.std() > 0.01


@pytest.mark.parametrize("chunk_size", [1, 2])
def test_gradcam_maps_of_a_chunked_volume_model_cover_every_slice(chunk_size):
    """A volume model encoding its slices in chunks (the bundles' inference default) gives the maps of one call over
    all slices, for every slice (the layer4 hook alone would keep the last chunk's), and keeps its chunk size."""
    from smartnet.handlers import gradcam_maps
    from smartnet.networks import SmartNetVolumeClassifier

    torch.manual_seed(0)
    slices = torch.rand(5, 1, 64, 64)
    whole = SmartNetVolumeClassifier(encoder="resnet18", stem_stride=2, hidden=16, num_layers=1, chunk_size=0)
    chunked = SmartNetVolumeClassifier(encoder="resnet18", stem_stride=2, hidden=16, num_layers=1,
                                       chunk_size=chunk_size)
    chunked.load_state_dict(whole.state_dict())
    expected = gradcam_maps(whole, slices, volume=True)
    maps = gradcam_maps(chunked, slices, volume=True)
    assert maps.shape == (5, 64, 64) and chunked.chunk_size == chunk_size
    np.testing.assert_allclose(maps, expected, atol=1e-5)


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=10000"]


def test_report_renders_in_headless_chromium_with_every_image_loaded(scored, tmp_path):
    """The static report.html opened from disk in Debian's Chromium: every <img> has loaded (naturalWidth > 0)."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is part of the test setup (README's test command installs Debian's chromium)"
    labels, scores = scored
    folder = tmp_path / "evaluation"
    write_slice_evaluation(folder, labels, scores)
    page = build_report(folder, n_boot=100)
    probe = folder / "probe.html"  # the report plus a script that records, after load, how many images decoded
    probe.write_text(page.read_text().replace("</body>", (
        "<script>window.addEventListener('load', () => { const all = [...document.images];"
        " const ok = all.filter(i => i.complete && i.naturalWidth > 0);"
        " document.body.setAttribute('data-images', ok.length + '/' + all.length); });</script></body>")))
    result = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                             probe.as_uri()], capture_output=True, text=True, encoding="utf-8", errors="replace",
                            timeout=180)
    match = re.search(r'data-images="(\d+)/(\d+)"', result.stdout)
    assert match, result.stdout[-2000:] + result.stderr[-2000:]
    assert match.group(1) == match.group(2) == "4"
    assert "Metrics (95% bootstrap confidence intervals)" in result.stdout


def test_binary_scores_agree_with_the_report_statistics_in_the_same_argument_order():
    from smartnet.reports.statistics import auroc, binary_scores, sensitivity, specificity

    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.7, 0.2, 0.6, 0.1, 0.3, 0.05, 0.8])
    got = binary_scores(labels, scores, 0.5)
    assert got["sensitivity"] == sensitivity(labels, scores, 0.5) == 0.75
    assert got["specificity"] == specificity(labels, scores, 0.5) == 0.75
    assert got["accuracy"] == 0.75 and abs(got["f1"] - 0.75) < 1e-12
    assert abs(got["auroc"] - auroc(labels, scores)) < 1e-6 and abs(got["auroc"] - 0.875) < 1e-6
    assert np.isnan(binary_scores(np.ones(3), np.array([0.1, 0.5, 0.9]), 0.5)["auroc"])
