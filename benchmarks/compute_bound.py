"""This machine's matmul speed, measured at the start of a benchmark: the compute bound its figures are held to."""
from __future__ import annotations

import time

import torch


def matmul_gflops(dtype: torch.dtype = torch.float32, size: int = 1024, repeats: int = 10) -> float:
    """GFLOP/s of a square matmul with the current torch thread count."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - started) / 1e9
