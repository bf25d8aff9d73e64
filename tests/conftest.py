"""Shared fixtures: tiny synthetic datasets (generated, never committed), paths and a bundle runner."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
UPSTREAM = BUNDLES / "smartnet_upstream"
SHARED_DATA = REPO.parent / "shared" / "data" / "head_ct_ge"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def run_cli(*args: object) -> subprocess.CompletedProcess:
    """``smartnet <args>`` run in this process: the console script's ``main`` with both streams captured and its exit
    status (0 when it returns). Saves the 8 s of a fresh interpreter importing MONAI per call; commands that start
    bundle runs print those runs' output to the real streams, so their tests start the console script instead
    (``tests/test_cli_and_schedule.py`` keeps one test on it)."""
    from smartnet.cli import main

    argv = [str(a) for a in args]
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    return subprocess.CompletedProcess(["smartnet", *argv], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """4 train / 2 valid / 2 test volumes of 48 x 48 x 8, written as the original folder layout plus datalist."""
    from smartnet.data import write_demo_dataset

    root = tmp_path_factory.mktemp("tiny_dataset")
    write_demo_dataset(root, n_train=4, n_valid=2, n_test=2, size=48, depth=8, seed=1, verbose=False)
    return root


TINY_OVERRIDES = {
    "encoder": "resnet18",
    "stem_stride": 2,
    "image_size": 32,
    "num_workers": 0,
    "batch_size": 2,
    "slices_per_volume": 2,
    "val_batch_size": 8,
}


def write_untrained_checkpoint(bundle: Path, bundle_root: Path, **overrides) -> Path:
    """``<bundle_root>/models/model.pt`` with the untrained network of ``bundle`` (``train.json`` + ``overrides``) and
    its settings record, for workflows that need a checkpoint but not trained weights (property checks)."""
    import torch
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(bundle_root), **{k: str(v) if isinstance(v, Path) else v
                                                        for k, v in overrides.items()}})
    path = bundle_root / "models" / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": parser.get_parsed_content("network_def").state_dict(),
                "settings": parser.get_parsed_content("settings_record").state_dict()}, path)
    return path


def bundle_workflow(bundle: Path, configs: list[str], workflow_type: str, bundle_root: Path, **overrides):
    """An initialised ``monai.bundle.ConfigWorkflow`` of ``bundle`` (for ``check_properties`` and parsed ids)."""
    from monai.bundle import ConfigWorkflow

    configs_dir = bundle / "configs"
    workflow = ConfigWorkflow(
        config_file=[str(configs_dir / c) for c in configs],
        meta_file=str(configs_dir / "metadata.json"),
        logging_file=str(configs_dir / "logging.conf"),
        workflow_type=workflow_type,
        bundle_root=str(bundle_root),
        **{k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()},
    )
    workflow.initialize()
    return workflow


def bundle_command(bundle: Path, configs: list[str], overrides: dict, bundle_root: Path | None = None) -> list[str]:
    """The ``python -m monai.bundle run`` command line a user would type (``smartnet.bundle_run``'s)."""
    from smartnet.bundle_run import bundle_run_command

    return bundle_run_command(bundle, configs, overrides, bundle_root)


BUNDLE_ENV = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # progress bars print block characters; CI may use a C locale


def run_bundle(bundle: Path, configs: list[str], overrides: dict, bundle_root: Path | None = None, check: bool = True):
    """Run ``python -m monai.bundle run`` as a user would; returns the CompletedProcess (output captured)."""
    cmd = bundle_command(bundle, configs, overrides, bundle_root)
    result = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", env=BUNDLE_ENV,
                            timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(
            f"bundle run failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )
    return result


DOWN_CLS = BUNDLES / "smartnet_down_cls"
DOWN_SEG = BUNDLES / "smartnet_down_seg"

TINY_DOWN_OVERRIDES = {
    "encoder": "resnet18",
    "stem_stride": 2,
    "image_size": 32,
    "num_workers": 0,
    "batch_size": 2,
}


@pytest.fixture(scope="session")
def tiny_bundles_root(tiny_dataset, tmp_path_factory) -> Path:
    """A folder laid out like ``bundles/``: ``smartnet_upstream/models/model.pt`` from one epoch of tiny training,
    so the downstream bundles' default ``pretrained_path`` (``../smartnet_upstream/models/model.pt``) resolves for
    sibling bundle roots ``<root>/smartnet_down_cls`` and ``<root>/smartnet_down_seg``."""
    root = tmp_path_factory.mktemp("bundles_root")
    run_bundle(UPSTREAM, ["train.json"], {"dataset_dir": tiny_dataset, "epochs": 1, "val_interval": 1,
                                          **TINY_OVERRIDES}, bundle_root=root / "smartnet_upstream")
    assert (root / "smartnet_upstream" / "models" / "model.pt").is_file()
    return root
