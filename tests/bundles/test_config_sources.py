"""The bundles' config files are rendered from one set of layered sources (``tools/render_configs.py``)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

import smartnet

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("render_configs", REPO / "tools" / "render_configs.py")
render_configs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_configs)


def test_committed_configs_are_their_sources_rendered():
    rendered = render_configs.render_all()
    stale = [str(rel) for rel, text in rendered.items()
             if (REPO / "bundles" / rel).read_text(encoding="utf-8") != text]
    assert not stale, f"edit bundles/_source and run python tools/render_configs.py: {stale}"
    assert render_configs.main(["--check"]) == 0


def test_every_config_file_of_every_bundle_comes_from_the_sources():
    rendered = {str(rel) for rel in render_configs.render_all()}
    committed = {str(p.relative_to(REPO / "bundles")) for name in render_configs.SCOPES
                 for p in (REPO / "bundles" / name / "configs").iterdir() if p.is_file()}
    assert committed == rendered
    assert len(committed) == 3 * (8 + 1)  # eight JSON configs and logging.conf


def test_shared_values_are_written_once():
    """What every bundle shares is in ``_source/all`` and nowhere else (the HU windows, the encoder, the changelog of
    shared releases), so a preprocessing change is one edit."""
    source = REPO / "bundles" / "_source"
    settings = json.loads((source / "all" / "settings.json").read_text())
    for key in ("hu_windows", "orientation", "image_size", "encoder", "uneven_slice_spacing"):
        assert key in settings
        narrower = [p for p in source.glob("*/*.json") if p.parent.name != "all" and key in json.loads(p.read_text())]
        assert narrower == [], key


def _sources(tmp_path: Path, layers: dict[str, dict]) -> Path:
    for rel, data in layers.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(json.dumps(data, indent=4) + "\n")
    return tmp_path


def test_a_narrower_layer_cannot_redefine_a_shared_value(tmp_path):
    source = _sources(tmp_path, {"all/settings.json": {"train": {"image_size": 256}},
                                 "smartnet_down_cls/train.json": {"train": {"image_size": 96}}})
    with pytest.raises(render_configs.ConfigSourceError, match="redefines 'train#image_size'.*all/settings.json"):
        render_configs.render_config("smartnet_down_cls", "train.json", source)
    # the other bundles render: the conflict is the one bundle's
    assert json.loads(render_configs.render_config("smartnet_upstream", "train.json", source)) == {
        "train": {"image_size": 256}}


def test_layers_merge_key_by_key_with_settings_in_train_and_inference(tmp_path):
    source = _sources(tmp_path, {
        "all/settings.json": {"encoder": "resnet50", "net": {"_target_": "Net"}},
        "all/train.json": {"epochs": 5},
        "downstream/train.json": {"net": {"operator": "lstm"}},
        "smartnet_down_seg/train.json": {"net": {"out": 1}},
        "smartnet_down_seg/inference.json": {"threshold": 0.5},
        "all/metadata.json": {"changelog": {"0.9.0": "b", "0.10.0": "c", "0.2.0": "a"}},
    })
    assert json.loads(render_configs.render_config("smartnet_down_seg", "train.json", source)) == {
        "encoder": "resnet50", "net": {"_target_": "Net", "operator": "lstm", "out": 1}, "epochs": 5}
    assert json.loads(render_configs.render_config("smartnet_upstream", "train.json", source)) == {
        "encoder": "resnet50", "net": {"_target_": "Net"}, "epochs": 5}
    assert json.loads(render_configs.render_config("smartnet_down_seg", "inference.json", source)) == {
        "encoder": "resnet50", "net": {"_target_": "Net"}, "threshold": 0.5}
    metadata = json.loads(render_configs.render_config("smartnet_down_cls", "metadata.json", source, "0.10.0"))
    assert list(metadata["changelog"]) == ["0.10.0", "0.9.0", "0.2.0"]  # newest first, by version not by text
    assert metadata["version"] == "0.10.0"


def test_the_bundles_version_is_the_packages_and_has_a_changelog_entry(tmp_path):
    assert render_configs.package_version() == smartnet.__version__
    for name in render_configs.SCOPES:
        meta = json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text(encoding="utf-8"))
        assert meta["version"] == smartnet.__version__
    source = _sources(tmp_path, {"all/metadata.json": {"changelog": {"0.9.0": "b"}}})
    with pytest.raises(render_configs.ConfigSourceError, match="no entry for version 0.10.0"):
        render_configs.render_config("smartnet_upstream", "metadata.json", source, "0.10.0")
    source = _sources(tmp_path, {"all/metadata.json": {"version": "0.9.0", "changelog": {"0.9.0": "b"}}})
    with pytest.raises(render_configs.ConfigSourceError, match="the package's __version__"):
        render_configs.render_config("smartnet_upstream", "metadata.json", source, "0.9.0")


def test_the_docs_name_the_current_version_in_their_commands():
    """Download and release commands in the docs name archives of the package's version, not of an older one."""
    docs = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "bundles").glob("*/docs/*.md")]
    pattern = re.compile(r"--version (\d+\.\d+\.\d+)|_v(\d+\.\d+\.\d+)\.zip|/v(\d+\.\d+\.\d+)\b")
    named = {(doc.relative_to(REPO).as_posix(), next(g for g in m.groups() if g))
             for doc in docs for m in pattern.finditer(doc.read_text(encoding="utf-8"))}
    assert named, "the docs show no download or release command"
    assert {version for _, version in named} == {smartnet.__version__}, sorted(named)
