"""SMART-Net on a CUDA GPU: training and inference speed and peak GPU memory of the reference networks. Prints a table
and writes JSON. Not a test: nothing here asserts a time.

    python benchmarks/gpu_benchmark.py --json gpu.json           # ResNet-50, stride-1 stem, 256 px (reference)
    python benchmarks/gpu_benchmark.py --quick                   # tiny networks: checks the script (CPU too)

* ``upstream_train``: slices per second of a full training step of ``SmartNet2D`` (forward of all three heads,
  backward, Adam), batches of 32 slices, fp32 and AMP (bf16 autocast), channels_last, and the peak GPU memory;
* ``down_cls`` / ``down_seg``: seconds per 32-slice volume (256 x 256 x 32) of the volume classifier and segmenter
  through ``smartnet.inferers.AcceleratedInferer`` (the bundles' inference path), fp32 and ``precision: auto``
  (bf16 on GPUs that have it), with the largest probability difference from fp32 and the peak GPU memory.

The data pipeline is not in these numbers (random tensors on the GPU); ``benchmarks/gpu_bundle_check.sh`` runs the
bundles themselves.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Callable

import torch

from benchmark import median_time  # this folder's CPU benchmark
from smartnet.inferers import AcceleratedInferer
from smartnet.networks import SmartNet2D, SmartNetVolumeClassifier, SmartNetVolumeSegmenter


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], repeat: int, warmup: int) -> float:
    """``benchmark.median_time`` of ``fn()`` with the GPU work included (synchronised after each call)."""
    return median_time(lambda: (fn(), _sync()), repeat=repeat, warmup=warmup)


def _peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def upstream_train(size: dict, device: torch.device) -> dict:
    """Slices per second of full training steps, fp32 and bf16 AMP, channels_last."""
    out: dict = {"batch": size["batch"]}
    for precision in ("fp32", "amp_bf16"):
        torch.manual_seed(0)
        net = SmartNet2D(encoder=size["encoder"], stem_stride=size["stem_stride"]).to(device)
        net = net.to(memory_format=torch.channels_last).train()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
        x = torch.rand(size["batch"], 1, size["image_size"], size["image_size"], device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        target = (torch.rand(size["batch"], 1, size["image_size"], size["image_size"], device=device) > 0.9).float()
        autocast = precision == "amp_bf16" and device.type == "cuda"

        def step(net=net, optimizer=optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                heads = net.forward_heads(x)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(heads["seg"].float(), target)
            loss = loss + heads["cls"].float().square().mean() + (heads["rec"].float() - x).abs().mean()
            loss.backward()
            optimizer.step()

        _reset_peak(device)
        seconds = median_seconds(step, repeat=size["repeat"], warmup=size["warmup"])
        out[f"seconds_per_step_{precision}"] = seconds
        out[f"slices_per_second_{precision}"] = size["batch"] / seconds
        out[f"peak_gpu_mb_{precision}"] = _peak_mb(device)
        del net, optimizer, step
    out["amp_speedup"] = out["slices_per_second_amp_bf16"] / out["slices_per_second_fp32"]
    return out


def down(task: str, size: dict, device: torch.device) -> dict:
    """Seconds per ``depth``-slice volume of the volume classifier or segmenter, fp32 and ``auto`` precision."""
    torch.manual_seed(0)
    cls = SmartNetVolumeClassifier if task == "cls" else SmartNetVolumeSegmenter
    net = cls(encoder=size["encoder"], stem_stride=size["stem_stride"], chunk_size=size["chunk"]).to(device).eval()
    volume = torch.rand(1, 1, size["image_size"], size["image_size"], size["depth"], device=device)
    depths = torch.tensor([size["depth"]], device=device)
    out: dict = {"depth": size["depth"], "chunk_size": size["chunk"]}
    reference = None
    for precision in ("fp32", "auto"):
        inferer = AcceleratedInferer(precision=precision, channels_last=True)
        _reset_peak(device)
        with torch.inference_mode():
            seconds = median_seconds(lambda: inferer(volume, net, depths), repeat=size["repeat"], warmup=size["warmup"])
            probability = torch.sigmoid(inferer(volume, net, depths).float())
        reference = probability if reference is None else reference
        out[f"seconds_per_volume_{precision}"] = seconds
        out[f"peak_gpu_mb_{precision}"] = _peak_mb(device)
        out[f"max_probability_diff_{precision}"] = (probability - reference).abs().max().item()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny networks and inputs (checks the script)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.quick:
        size = {"encoder": "resnet18", "stem_stride": 2, "image_size": 64, "batch": 4, "depth": 8, "chunk": 8,
                "repeat": 1, "warmup": 1}
    else:
        size = {"encoder": "resnet50", "stem_stride": 1, "image_size": 256, "batch": 32, "depth": 32, "chunk": 32,
                "repeat": 10, "warmup": 3}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results = {
        "machine": {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
                    "torch": torch.__version__, "cuda": torch.version.cuda, "size": size},
        "upstream_train": upstream_train(size, device),
        "down_cls": down("cls", size, device),
        "down_seg": down("seg", size, device),
    }
    print(json.dumps(results, indent=4))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=4) + "\n")


if __name__ == "__main__":
    main()
