"""This machine's matmul speed, measured at the start of a benchmark: the compute bound its figures are held to."""
from __future__ import annotations

import statistics
import time

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
