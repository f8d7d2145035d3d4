"""Statistics for base-vs-tuned comparisons: paired bootstrap intervals, win rate, distinct-n diversity."""
from __future__ import annotations

import numpy as np
from scipy.stats import bootstrap


def mean_interval(values, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Mean with a bootstrap percentile interval (over prompts). For paired comparisons pass the differences."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2 or np.all(values == values[0]):
        return {"mean": mean, "low": mean, "high": mean, "n": int(len(values))}
    result = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                       method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return {"mean": mean, "low": float(low), "high": float(high), "n": int(len(values))}


def paired_difference(tuned, base, **kwargs) -> dict:
    """Mean of (tuned - base) per prompt with its bootstrap interval; `excludes_zero` says if it is significant."""
    diff = np.asarray(tuned, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    out = mean_interval(diff, **kwargs)
    out["excludes_zero"] = bool(out["low"] > 0 or out["high"] < 0)
    return out


def win_rate(tuned, base, **kwargs) -> dict:
    """Share of prompts where tuned scores higher (ties count one half), with its bootstrap interval."""
    diff = np.asarray(tuned, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    wins = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    return mean_interval(wins, **kwargs)


def distinct_n(token_lists: list[list], n: int) -> float:
    """Unique n-grams / all n-grams over a set of responses (higher = more diverse)."""
    grams = [tuple(tokens[i:i + n]) for tokens in token_lists for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
