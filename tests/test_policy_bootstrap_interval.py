"""Paired bootstrap intervals: right centre and width, ~95% coverage on synthetic data, pairing removes the
between-prompt spread, win rate counts ties as one half, distinct-n counts n-grams."""
from __future__ import annotations

import numpy as np
import pytest

from core.stats import distinct_n, mean_interval, paired_difference, win_rate


def test_interval_matches_normal_theory():
    rng = np.random.default_rng(1)
    diff = rng.normal(0.3, 1.0, size=400)
    out = mean_interval(diff, n_resamples=4000, seed=0)
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
    assert out["mean"] == pytest.approx(diff.mean())
    assert out["low"] == pytest.approx(diff.mean() - half, abs=0.2 * half)
    assert out["high"] == pytest.approx(diff.mean() + half, abs=0.2 * half)


def test_coverage_close_to_95_percent():
    rng = np.random.default_rng(2)
    hits = 0
    for rep in range(200):
        sample = rng.normal(1.0, 2.0, size=40)
        out = mean_interval(sample, n_resamples=1000, seed=rep)
        hits += out["low"] <= 1.0 <= out["high"]
    assert 0.88 <= hits / 200 <= 0.99


def test_pairing_removes_prompt_difficulty():
    rng = np.random.default_rng(3)
    difficulty = rng.normal(0, 5.0, size=60)  # prompts differ a lot; the tuned policy is +0.2 on every one
    base = difficulty + rng.normal(0, 0.1, size=60)
    tuned = difficulty + 0.2 + rng.normal(0, 0.1, size=60)
    out = paired_difference(tuned, base, n_resamples=2000)
    assert out["excludes_zero"] and out["low"] > 0.1 and out["high"] < 0.3
    unpaired_width = 2 * 1.96 * np.sqrt(tuned.var(ddof=1) / 60 + base.var(ddof=1) / 60)
    assert out["high"] - out["low"] < unpaired_width / 10


def test_no_change_interval_contains_zero():
    rng = np.random.default_rng(4)
    base = rng.normal(1.0, 0.5, size=80)
    out = paired_difference(base + rng.normal(0, 0.3, size=80), base, n_resamples=2000)
    assert out["low"] < 0 < out["high"] and not out["excludes_zero"]


def test_win_rate_ties_and_distinct_n():
    assert win_rate([2, 1, 1, 0], [1, 1, 2, 0], n_resamples=200)["mean"] == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert distinct_n([[1, 2, 3], [1, 2, 4]], 1) == pytest.approx(4 / 6)
    assert distinct_n([[1, 2, 3], [1, 2, 4]], 2) == pytest.approx(3 / 4)
