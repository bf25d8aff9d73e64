"""Multi-GPU configs run as real two-process DDP on CPU (gloo), through torchrun and `python -m monai.bundle run`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import BUNDLES, TINY_DOWN_OVERRIDES, TINY_OVERRIDES, run_bundle
from smartnet.networks.transfer import read_state_dict

pytestmark = [pytest.mark.slow, pytest.mark.dist]

CASES = {
    "smartnet_upstream": TINY_OVERRIDES,
    "smartnet_down_cls": TINY_DOWN_OVERRIDES,
    "smartnet_down_seg": TINY_DOWN_OVERRIDES,
}


def torchrun_bundle(
    bundle: Path, configs: list[str], overrides: dict, bundle_root: Path
) -> subprocess.CompletedProcess:
    from smartnet.bundle_run import bundle_run_command

    cmd = bundle_run_command(bundle, configs, overrides, bundle_root,
                             launcher=["-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                                       "--nproc_per_node=2"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}
    bundle_root.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", env=env,
                            timeout=900)
    (bundle_root / "torchrun.log").write_text(result.stdout + "\n--- stderr ---\n" + result.stderr, encoding="utf-8")
    assert result.returncode == 0, f"torchrun failed, see {bundle_root / 'torchrun.log'}:\n{result.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("name", list(CASES))
def test_two_process_ddp_training(name, tiny_dataset, tiny_bundles_root, tmp_path):
    """Both ranks train on their half of the 4 training volumes (1 step each instead of 2), rank 0 saves, and the
    saved weights load into the plain network."""
    bundle = BUNDLES / name
    root = tmp_path / name
    overrides = {"dataset_dir": tiny_dataset, "epochs": 1, "val_interval": 1, **CASES[name]}
    if name != "smartnet_upstream":
        overrides["pretrained_path"] = tiny_bundles_root / "smartnet_upstream" / "models" / "model.pt"
    torchrun_bundle(bundle, ["train.json", "multi_gpu_train.json"], overrides, root)
    state = torch.load(root / "models" / "last.pt", weights_only=True)
    assert state["trainer"]["epoch_length"] == 1  # 4 volumes, batch 2, 2 ranks: single-process training takes 2
    assert not any(k.startswith("module.") for k in state["model"])
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "train.json"))
    parser.update(dict(CASES[name]))
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(read_state_dict(root / "models" / "model.pt"))
    if name != "smartnet_down_seg":  # the operating point beside the weights, chosen on both ranks' validation data
        point = torch.load(root / "models" / "model.pt", weights_only=True)["operating_point"]
        assert 0.0 <= point["threshold"] <= 1.0


@pytest.mark.parametrize("name", ["smartnet_upstream", "smartnet_down_seg"])
def test_two_process_evaluation_gathers_every_case(name, tiny_dataset, tiny_bundles_root):
    """Each rank evaluates part of the test volumes (slices for upstream); rank 0 writes the results of all."""
    bundle = BUNDLES / name
    root = tiny_bundles_root / f"{name}_ddp_eval"  # a sibling of smartnet_upstream, for the default transfer path
    overrides = {"dataset_dir": tiny_dataset, **CASES[name]}
    run_bundle(bundle, ["train.json"], {**overrides, "epochs": 1, "val_interval": 1}, bundle_root=root)
    torchrun_bundle(bundle, ["train.json", "evaluate.json", "multi_gpu_evaluate.json"], overrides, root)
    results = json.loads((root / "eval" / "evaluation" / "metrics.json").read_text())
    cases = sorted(p.name.replace("_img.nii.gz", "") for p in (tiny_dataset / "test").glob("*_img.nii.gz"))
    assert results["summary"]["volumes"] == len(cases) == 2
    rows = (root / "eval" / "evaluation" / "per_case.csv").read_text().splitlines()[1:]
    assert sorted(r.split(",")[0] for r in rows) == cases
    # rank 0 writes the report of all cases; the network figures come from its share
    assert "confidence_intervals" in results
    html = (root / "eval" / "evaluation" / "report.html").read_text()
    assert all(case in html for case in cases)
