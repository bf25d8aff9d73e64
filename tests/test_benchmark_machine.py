"""The benchmark names the machine it measured: CPU model and the instruction sets that decide its kernels."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import benchmark  # noqa: E402


def test_machine_record_names_the_cpu_and_its_instruction_sets():
    record = benchmark.machine(2)
    assert set(benchmark.ISA_FLAGS) == set(record["isa"])
    assert all(v in (True, False, None) for v in record["isa"].values())
    assert record["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["cpu_model"] and record["threads"] == 2 and isinstance(record["bf16_native"], bool)
    if Path("/proc/cpuinfo").is_file():  # Linux: the flags are read, not guessed
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        assert record["isa"]["avx2"] == ("avx2" in flags.split())
        if record["torch_cpu_capability"] in ("AVX512", "AVX512_BF16", "AMX"):
            assert record["isa"]["avx512f"] is True
