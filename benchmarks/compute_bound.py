"""This machine's matmul speed, measured at the start of a benchmark: the compute bound its figures are held to."""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import torch


def matmul_gflops(dtype: torch.dtype = torch.float32, size: int = 1024, trials: int = 5,
                  seconds_per_trial: float = 0.3) -> float:
    """Median GFLOP/s of square matmuls over a few timed trials, with the current torch thread count.

    A shared VM's speed drifts (one 60 ms burst measured 150 and 344 GFLOP/s minutes apart here), so each trial
    runs for a fixed time and the median is kept."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    rates = []
    for _ in range(trials):
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds_per_trial:
            a @ b
            count += 1
        rates.append(2 * size ** 3 * count / elapsed / 1e9)
    return statistics.median(rates)


def cpu_description() -> dict:
    """The CPU's model name and the units its bf16 matmuls can use (AMX, AVX512-BF16 or none): the batched bf16
    scoring ratios differ most between such hosts (see the README's benchmark section)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    lines = info.splitlines()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor() or platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    bf16 = "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else "none"
    return {"cpu": name, "bf16_matmul_units": bf16}
