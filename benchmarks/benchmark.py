"""SMART-Net speed and memory benchmark: prints a table and writes JSON. Not a test: nothing here asserts a time.

    python benchmarks/benchmark.py                       # reference architecture (ResNet-50, stride-1 stem, 256 px)
    python benchmarks/benchmark.py --quick               # tiny networks and volumes: checks the script in a minute
    python benchmarks/benchmark.py --threads 2 --json benchmarks/results.json

Each section runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its own:

* ``conv``: the convolution throughput this machine reaches (GFLOP/s, the best of four ResNet-like convolutions,
  channels_last and NCHW), which
  turns forward FLOPs (torch's ``FlopCounterMode``) into a FLOP-bound floor for every network time below;
* ``upstream_train``: seconds per training step (forward, backward, optimiser; the bundle's own DataLoader over its
  cached deterministic preprocessing, random augmentation included), slices per second, and the time spent waiting
  for the next batch;
* ``upstream_infer``: slices per second through ``SmartNet2D`` in ``torch.inference_mode``, fp32 and bf16;
* ``down_cls``: seconds per 256 x 256 x D demo volume through ``smartnet.inferers.AcceleratedInferer`` (the bundles'
  inference path): fp32 channels_last at several slice chunk sizes, ``torch.compile`` and bf16 at the best chunk
  size (with the largest probability difference from fp32), and the naive baseline (slices encoded one at a time
  in a Python loop, fp32, NCHW, as the original); end to end: three 512 x 512 x D NIfTI files through the bundle's
  inference workflow with its default settings, seconds per volume in steady state and the one-off start;
* ``down_seg``: the same for the segmenter (512 x 512 x 40 end to end), with peak memory.

``--stem-stride 2`` measures the standard stride-2 stem ("fast" configuration) instead of the reference stride-1.
``--profile demo`` measures ``upstream_train`` with the bundle's CPU demo profile layered over ``train.json``
(ResNet-18, stride-2 stem, 128 px, classification and segmentation heads, 16 slices a step, channels_last): is
the demo's step bound by the network?

    python benchmarks/benchmark.py --sections conv,upstream_train --profile demo --workers 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
SECTIONS = ("conv", "upstream_train", "upstream_infer", "down_cls", "down_seg")


# ------------------------------------------------------------------------------------------------ measurement
def median_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_flops(fn: Callable[[], object]) -> int:
    """FLOPs of ``fn()`` counted by ``torch.utils.flop_counter`` (convolutions, matmuls; 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _sizes(quick: bool, stem_stride: int | None = None) -> dict:
    if quick:
        size = {"encoder": "resnet18", "stem_stride": 2, "image_size": 64, "depth": 8, "e2e_size": 128,
                "seg_depth": 8, "repeat": 1}
    else:
        size = {"encoder": "resnet50", "stem_stride": 1, "image_size": 256, "depth": 32, "e2e_size": 512,
                "seg_depth": 40, "repeat": 2}
    if stem_stride is not None:
        size["stem_stride"] = stem_stride
    return size


# ---------------------------------------------------------------------------------------------------- sections
def section_conv(args, size: dict) -> dict:
    """The best convolution throughput this CPU reaches, which sets every floor: ResNet-like layers (stride-1 stem at
    256 px down to the last stage) at batch 8 and 32, in NCHW, channels_last, and channels_last with oneDNN's
    prepacked weights (a frozen TorchScript module). On the AVX-512 build machine the best is about 233 GFLOP/s on
    2 cores (512 -> 512 channels, 3 x 3, 16 px, batch 32), close to 2 FMA units x 16 fp32 lanes x 2 cores at the
    clock; the 4-shape batch-8 version of this section reached 222."""
    import torch

    shapes = [(64, 64, 3, 128), (128, 128, 3, 64), (256, 256, 3, 32), (256, 1024, 1, 32), (512, 512, 3, 16)]
    out: dict = {"shapes": {}}
    best_name = {}
    for layout in ("channels_last", "nchw"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        best = 0.0
        for batch in (8, 32):
            for c_in, c_out, k, hw in shapes:
                x = torch.randn(batch, c_in, hw, hw).contiguous(memory_format=fmt)
                conv = torch.nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False).eval().to(memory_format=fmt)
                flops = forward_flops(lambda: conv(x))
                variants = {"eager": conv}
                if layout == "channels_last":  # oneDNN's prepacked weights, as a frozen module runs them
                    with torch.no_grad():
                        variants["prepacked"] = torch.jit.freeze(torch.jit.trace(conv, x))
                for variant, module in variants.items():
                    with torch.inference_mode():
                        seconds = median_time(lambda: module(x), repeat=5, warmup=2)
                    gflops = flops / seconds / 1e9
                    name = f"{layout} {variant} {c_in}->{c_out} k{k} {hw}px batch {batch}"
                    out["shapes"][name] = gflops
                    if gflops > best:
                        best, best_name[layout] = gflops, name
        out[f"gflops_{layout}"] = best
        out[f"best_{layout}"] = best_name[layout]
    return out


def _volume_inputs(size: dict, depth: int):
    """A demo head CT (haemorrhage) windowed and min-max scaled like the bundles, ``(1, 1, H, W, D)``, and depths."""
    import numpy as np
    import torch

    from smartnet.data import make_volume

    volume = make_volume(np.random.default_rng(0), True, size=size["image_size"], depth=depth).image
    scaled = np.clip(volume.astype(np.float32), 0.0, 80.0) / 80.0  # brain window [0, 80] HU
    return torch.from_numpy(scaled)[None, None], torch.tensor([depth])


def _network_rows(make, size: dict, depth: int, conv_gflops: float, chunk_sizes: list[int]) -> dict:
    """Seconds per volume through ``AcceleratedInferer`` (the bundles' inference path): fp32 channels_last at each
    chunk size, compiled fp32 and bf16 at the best chunk size, and the naive per-slice NCHW loop."""
    import torch

    from smartnet.inferers import AcceleratedInferer

    volume, depths = _volume_inputs(size, depth)
    rows = {}
    net = make(8).eval()  # counting FLOPs runs the network once; all slices at once may not fit in memory
    with torch.no_grad():
        flops = forward_flops(lambda: net(volume, depths))
        reference = torch.sigmoid(net(volume, depths))
    rows["forward_tflop"] = flops / 1e12
    floor = rows["floor_seconds"] = flops / (conv_gflops * 1e9) if conv_gflops else None

    def timed(chunk: int, **switches) -> float:
        model = make(chunk).eval()
        model.load_state_dict(net.state_dict())
        inferer = AcceleratedInferer(**switches)
        with torch.inference_mode():
            seconds = median_time(lambda: inferer(volume, model, depths), repeat=size["repeat"])
            probability = torch.sigmoid(inferer(volume, model, depths))
        rows.setdefault("max_probability_diff", {})[str(switches)] = (probability - reference).abs().max().item()
        return seconds

    for chunk in chunk_sizes:
        rows[f"seconds_chunk{chunk}"] = timed(chunk, channels_last=True)
    best_chunk = min(chunk_sizes, key=lambda c: rows[f"seconds_chunk{c}"])
    rows["best_chunk"] = best_chunk
    best = rows["best_seconds"] = rows[f"seconds_chunk{best_chunk}"]
    rows["best_x_floor"] = best / floor if floor else None
    rows["seconds_compiled"] = timed(best_chunk, channels_last=True, compile=True)
    rows["compiled_x_floor"] = rows["seconds_compiled"] / floor if floor else None
    rows["seconds_bf16"] = timed(best_chunk, channels_last=True, precision="bf16")
    rows["bf16_speedup"] = best / rows["seconds_bf16"]
    rows["bf16_max_probability_diff"] = rows["max_probability_diff"][str({"channels_last": True,
                                                                          "precision": "bf16"})]
    naive = make(1).eval()
    naive.load_state_dict(net.state_dict())
    with torch.no_grad():
        rows["seconds_naive_loop_nchw"] = median_time(lambda: naive(volume, depths), repeat=size["repeat"])
    return rows


def _end_to_end(bundle: str, size: dict, depth: int, overrides: dict, volumes: int = 3) -> dict:
    """``volumes`` NIfTI files of ``e2e_size`` x ``e2e_size`` x ``depth`` through the bundle's inference workflow:
    seconds per volume in steady state (between completed iterations: reading, preprocessing, network, writing) and
    the one-off start (network built, first call) of the run."""
    import nibabel as nib
    import numpy as np
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    from smartnet.data import make_volume

    folder = Path(tempfile.mkdtemp(prefix="smartnet_bench_"))
    inputs = folder / "inputs"
    inputs.mkdir()
    for i in range(volumes):
        volume = make_volume(np.random.default_rng(i), True, size=size["e2e_size"], depth=depth)
        nib.save(nib.Nifti1Image(volume.image, volume.affine), str(inputs / f"case{i}_img.nii.gz"))
    configs = BUNDLES / bundle / "configs"
    workflow = ConfigWorkflow(config_file=str(configs / "inference.json"), meta_file=str(configs / "metadata.json"),
                              logging_file=str(configs / "logging.conf"), workflow_type="infer",
                              bundle_root=str(folder / "root"), input=str(inputs), output_dir=str(folder / "out"),
                              **overrides)
    workflow.initialize()
    start = time.perf_counter()
    done: list[float] = []
    evaluator = workflow.parser.get_parsed_content("evaluator")
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda _: done.append(time.perf_counter()))
    workflow.run()
    total = time.perf_counter() - start
    steady = (done[-1] - done[0]) / (len(done) - 1)
    return {"end_to_end_volumes": volumes, "end_to_end_run_seconds": total, "end_to_end_seconds": steady,
            "end_to_end_start_seconds": total - steady * volumes, "end_to_end_shape": list(volume.image.shape)}


def section_down(args, size: dict, task: str) -> dict:
    from smartnet.networks import SmartNetVolumeClassifier, SmartNetVolumeSegmenter

    conv = args.conv_gflops
    depth = size["depth"] if task == "cls" else size["seg_depth"]

    def make(chunk: int):
        if task == "cls":
            return SmartNetVolumeClassifier(encoder=size["encoder"], stem_stride=size["stem_stride"], chunk_size=chunk)
        return SmartNetVolumeSegmenter(encoder=size["encoder"], stem_stride=size["stem_stride"], chunk_size=chunk)

    # all slices in one call (chunk 0) would hold every decoder activation of the volume at once: the reference
    # segmenter at 256 px runs out of memory that way on a 24 GB machine
    rows = _network_rows(make, size, depth, conv, [1, 8, 0] if task == "cls" else [1, 4, 8])
    rows["depth"] = depth
    overrides = {"encoder": size["encoder"], "stem_stride": size["stem_stride"], "image_size": size["image_size"]}
    rows.update(_end_to_end(f"smartnet_down_{task}", size, depth, overrides))
    rows["end_to_end_x_network"] = rows["end_to_end_seconds"] / rows["seconds_chunk1"]  # the bundle's CPU default
    return rows


def section_upstream_infer(args, size: dict) -> dict:
    import torch

    from smartnet.inferers import AcceleratedInferer
    from smartnet.networks import SmartNet2D

    batch = 16
    net = SmartNet2D(encoder=size["encoder"], stem_stride=size["stem_stride"]).eval()
    x = torch.rand(batch, 1, size["image_size"], size["image_size"])
    flops = forward_flops(lambda: net(x))
    floor = flops / (args.conv_gflops * 1e9) if args.conv_gflops else None
    out = {"batch": batch, "forward_tflop": flops / 1e12, "floor_seconds": floor}
    for precision in ("fp32", "bf16"):
        inferer = AcceleratedInferer(precision=precision, channels_last=True)
        with torch.inference_mode():
            seconds = median_time(lambda: inferer(x, net), repeat=size["repeat"])
        suffix = "" if precision == "fp32" else "_bf16"
        out[f"slices_per_second{suffix}"] = batch / seconds
        out[f"seconds_per_batch{suffix}"] = seconds
    out["x_floor"] = out["seconds_per_batch"] / floor if floor else None
    return out


def section_upstream_train(args, size: dict) -> dict:
    """Training steps through the bundle's own dataloader, network, loss and optimiser (ConfigParser objects)."""
    import torch
    from monai.bundle import ConfigParser

    from smartnet.data import write_demo_dataset
    from smartnet.engines import prepare_multitask_batch

    data = Path(tempfile.mkdtemp(prefix="smartnet_bench_data_"))
    write_demo_dataset(data, n_train=6 if args.quick else 12, n_valid=1, n_test=1, size=size["image_size"], depth=12,
                       seed=0, verbose=False)
    configs = BUNDLES / "smartnet_upstream" / "configs"
    parser = ConfigParser()
    parser.read_config(
        [str(configs / "train.json")] + ([str(configs / f"{args.profile}.json")] if args.profile else [])
    )
    parser.update({"bundle_root": str(data / "root"), "dataset_dir": str(data), "device": "$torch.device('cpu')"})
    if not args.profile:  # a profile brings its own architecture and size
        parser.update({"encoder": size["encoder"], "stem_stride": size["stem_stride"],
                       "image_size": size["image_size"]})
    if args.workers is not None:
        parser["num_workers"] = args.workers
    parser.parse()
    workers = parser.get_parsed_content("num_workers")
    loader, network = parser.get_parsed_content("train#dataloader"), parser.get_parsed_content("network")
    loss, optimizer = parser.get_parsed_content("loss"), parser.get_parsed_content("optimizer")
    batches = iter(loader)
    network.train()
    waited: list[float] = []

    def step() -> int:
        nonlocal batches
        start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        waited.append(time.perf_counter() - start)
        image, target = prepare_multitask_batch(batch, torch.device("cpu"))
        optimizer.zero_grad(set_to_none=True)
        value = loss(network(image), target)
        value.backward()
        optimizer.step()
        return image.shape[0]

    slices = step()  # warm-up (and the batch size)
    steps = max(2, size["repeat"] + 1)
    waited.clear()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    loader_wait = sum(waited) / steps
    side = parser.get_parsed_content("image_size")
    image = torch.rand(slices, parser.get_parsed_content("in_channels"), side, side)
    if parser.get_parsed_content("channels_last"):
        image = image.contiguous(memory_format=torch.channels_last)
    target = torch.cat([torch.zeros_like(image[:, :1]), image], dim=1)

    def forward_backward() -> None:
        loss(network(image), target).backward()

    flops = forward_flops(forward_backward)
    floor = flops / (args.conv_gflops * 1e9) if args.conv_gflops else None
    return {"profile": args.profile or "reference", "image_size": side,
            "encoder": parser.get_parsed_content("encoder"), "slices_per_step": slices, "seconds_per_step": seconds,
            "slices_per_second": slices / seconds,
            "step_tflop": flops / 1e12, "floor_seconds": floor, "x_floor": seconds / floor if floor else None,
            "num_workers": workers, "loader_wait_seconds_per_step": loader_wait,
            "loader_wait_fraction": loader_wait / seconds}


# ------------------------------------------------------------------------------------------------------ driver
def run_section(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    size = _sizes(args.quick, args.stem_stride)
    if args.section == "conv":
        result = section_conv(args, size)
    elif args.section == "upstream_train":
        result = section_upstream_train(args, size)
    elif args.section == "upstream_infer":
        result = section_upstream_infer(args, size)
    else:
        result = section_down(args, size, args.section.split("_")[1])
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")  # /proc/cpuinfo names


def cpu_features() -> dict:
    """The CPU's model name and the instruction sets that decide which convolution kernels oneDNN can use: each of
    ``ISA_FLAGS`` as True / False (None where ``/proc/cpuinfo`` cannot be read), and torch's own dispatch level
    (``torch.backends.cpu.get_cpu_capability()``: ``DEFAULT``, ``AVX2``, ``AVX512``, ...)."""
    import torch

    model, flags = platform.processor() or platform.machine(), None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if flags is not None:
                break  # the first processor's entry is enough
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    isa = {name: (name in flags) if flags is not None else None for name in ISA_FLAGS}
    return {"cpu_model": model, "isa": isa, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def machine(threads: int) -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            **cpu_features(), "cpu_count": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "device": "cpu", "precision": "fp32 (bf16 rows say so)",
            "bf16_native": torch.ops.mkldnn._is_mkldnn_bf16_supported()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny networks and volumes (checks the script)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers for upstream training (default: the bundle's num_workers)")
    parser.add_argument("--stem-stride", type=int, choices=(1, 2), default=None,
                        help="1: reference stride-1 stem (default), 2: the standard stride-2 'fast' stem")
    parser.add_argument("--profile", default=None,
                        help="upstream_train with this bundle profile layered over train.json (e.g. demo)")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--section", help=argparse.SUPPRESS)
    parser.add_argument("--conv_gflops", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.section:
        run_section(args)
        return
    results = {"machine": machine(args.threads), "quick": args.quick, "sizes": _sizes(args.quick, args.stem_stride),
               "sections": {}}
    conv_gflops = 0.0
    for section in args.sections.split(","):
        if section not in SECTIONS:
            parser.error(f"unknown section {section!r}; choose from {', '.join(SECTIONS)}")
        print(f"running {section} ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--section", section, "--threads", str(args.threads), "--conv_gflops",
               str(conv_gflops)] + (["--quick"] if args.quick else [])
        cmd += ["--workers", str(args.workers)] if args.workers is not None else []
        cmd += ["--stem-stride", str(args.stem_stride)] if args.stem_stride is not None else []
        cmd += ["--profile", args.profile] if args.profile else []
        done = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace")
        if done.returncode != 0:  # e.g. killed for memory: recorded, the other sections still run
            print(done.stdout[-2000:] + done.stderr[-4000:], file=sys.stderr)
            results["failed"] = {**results.get("failed", {}), section: f"exit {done.returncode}"}
            print(f"section {section} failed (exit {done.returncode})", file=sys.stderr)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results["sections"][section] = result
        if section == "conv":
            conv_gflops = result["gflops_channels_last"]
        if args.json:  # after every section, so a long run loses nothing
            Path(args.json).write_text(json.dumps(results, indent=4) + "\n")
    print_table(results)
    if args.json:
        print(f"results written to {args.json}")
    if results.get("failed"):
        raise SystemExit(f"failed sections: {results['failed']}")


def print_table(results: dict) -> None:
    m, s = results["machine"], results["sections"]
    isa = ", ".join(name for name, present in m.get("isa", {}).items() if present) or "unknown"
    print(f"\nSMART-Net benchmark: {m.get('cpu_model', m['processor'])} ({isa}; bf16 native: {m['bf16_native']}), "
          f"{m['threads']} threads, {m['device']}, {m['precision']}, "
          f"torch {m['torch']}{' (quick sizes)' if results['quick'] else ''}")

    def fmt(value, digits=2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    if "conv" in s:
        print(f"  conv throughput (the floor): {fmt(s['conv']['gflops_channels_last'], 1)} GFLOP/s channels_last "
              f"({s['conv'].get('best_channels_last', '?')}), {fmt(s['conv']['gflops_nchw'], 1)} NCHW")
    if "upstream_train" in s:
        r = s["upstream_train"]
        print(f"  upstream train: {fmt(r['seconds_per_step'])} s/step of {r['slices_per_step']} slices "
              f"({fmt(r['slices_per_second'])} slices/s), {fmt(r['step_tflop'], 3)} TFLOP, floor "
              f"{fmt(r['floor_seconds'])} s, {fmt(r['x_floor'])} x floor; waiting for data "
              f"{fmt(r['loader_wait_seconds_per_step'], 3)} s/step ({r['num_workers']} workers); "
              f"peak {fmt(r['peak_rss_mb'], 0)} MB")
    if "upstream_infer" in s:
        r = s["upstream_infer"]
        print(f"  upstream inference: {fmt(r['slices_per_second'], 1)} slices/s ({fmt(r['x_floor'])} x floor), "
              f"bf16 {fmt(r['slices_per_second_bf16'], 1)} slices/s")
    for task in ("down_cls", "down_seg"):
        if task in s:
            r = s[task]
            chunks = ", ".join(f"chunk {k[len('seconds_chunk'):]}: {fmt(v)} s" for k, v in r.items()
                               if k.startswith("seconds_chunk"))
            print(f"  {task} (D={r['depth']}): {fmt(r['forward_tflop'], 3)} TFLOP, floor {fmt(r['floor_seconds'])} s; "
                  f"{chunks} ({fmt(r['best_x_floor'])} x floor); compiled {fmt(r['seconds_compiled'])} s "
                  f"({fmt(r['compiled_x_floor'])} x floor); bf16 {fmt(r['seconds_bf16'])} s "
                  f"({fmt(r['bf16_speedup'])} x faster, max |dp| {fmt(r['bf16_max_probability_diff'], 4)}); "
                  f"naive loop {fmt(r['seconds_naive_loop_nchw'])} s")
            print(f"    end to end {fmt(r['end_to_end_seconds'])} s/volume ({fmt(r['end_to_end_x_network'])} x network "
                  f"at chunk 1) after a {fmt(r['end_to_end_start_seconds'])} s start; "
                  f"peak {fmt(r['peak_rss_mb'], 0)} MB")


if __name__ == "__main__":
    main()
