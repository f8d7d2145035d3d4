"""Statistics for base-vs-tuned comparisons, shared by the eval, tutorbench, the sweep, compare, the classroom eval
and best-of-n's report (here in core/ because training reports use them too, and training never imports evaluation).

- Means of per-prompt values (scores, paired differences, gaps): percentile bootstrap over prompts with a fixed seed.
  Every vector of the same length resampled with the same seed uses the *same* resamples, so a gap (training RM's
  gain minus a scorer's) is bootstrapped on exactly the resamples its two gains were. A sample with no spread has no
  bootstrap spread either: its interval is then Hoeffding's for a variable of the given range (never zero-width).
- Each mean carries a two-sided bootstrap p-value for "mean = 0"; `holm` corrects a family of them
  (Holm-Bonferroni), and flags and stars use the corrected values.
- Shares (accuracies, rates) get exact Clopper-Pearson intervals (scipy.stats.binomtest); win rates too, where a
  tie counts 1/2 in the point estimate and the interval brackets the ties: its lower end counts them as losses,
  its upper end as wins (conservative, never zero-width). The win rate's p-value is the sign test (ties dropped).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import binomtest


def resample_indices(n: int, n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """(n_resamples, n) prompt indices drawn with replacement; the same (n, n_resamples, seed) gives the same draw."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _hoeffding_half_width(n: int, value_range: float, confidence: float) -> float:
    return float(value_range * np.sqrt(np.log(2 / (1 - confidence)) / (2 * n)))


def mean_interval(values, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
                  value_range: float | None = None) -> dict:
    """Mean with a bootstrap percentile interval over prompts and a two-sided p-value for mean = 0. For paired
    comparisons pass the differences. `value_range` (max - min the values could take) gives a sample without
    spread Hoeffding's interval instead of a zero-width one; without it such an interval is marked `degenerate`."""
    values = np.asarray(values, dtype=np.float64)
    n, mean = int(len(values)), float(values.mean()) if len(values) else float("nan")
    if n >= 2 and not np.all(values == values[0]):
        boot = values[resample_indices(n, n_resamples, seed)].mean(axis=1)
        alpha = 1 - confidence
        low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        below, above = (1 + np.sum(boot <= 0)) / (n_resamples + 1), (1 + np.sum(boot >= 0)) / (n_resamples + 1)
        return {"mean": mean, "low": float(low), "high": float(high), "n": n,
                "p_value": float(min(1.0, 2 * min(below, above)))}
    if value_range and n >= 1:
        half = _hoeffding_half_width(n, value_range, confidence)
        p = float(min(1.0, 2 * np.exp(-2 * n * mean ** 2 / value_range ** 2)))
        return {"mean": mean, "low": mean - half, "high": mean + half, "n": n, "p_value": p, "method": "hoeffding"}
    return {"mean": mean, "low": mean, "high": mean, "n": n, "p_value": 1.0 if mean == 0 else float("nan"),
            "degenerate": True}


def paired_difference(tuned, base, **kwargs) -> dict:
    """Mean of (tuned - base) per prompt with its bootstrap interval; `excludes_zero` says if it is significant
    on its own (uncorrected: the report stars use `holm` over their table)."""
    diff = np.asarray(tuned, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    out = mean_interval(diff, **kwargs)
    out["excludes_zero"] = bool(out["low"] > 0 or out["high"] < 0)
    return out


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n (never zero-width for n >= 1: 0/10 gives [0, 0.308])."""
    if n <= 0:
        return 0.0, 1.0
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def rate_interval(hits, confidence: float = 0.95, **_ignored) -> dict:
    """A share of yes/no outcomes (accuracy, leak rate, ...) with its Clopper-Pearson interval."""
    hits = np.asarray(hits, dtype=bool)
    k, n = int(hits.sum()), int(len(hits))
    low, high = clopper_pearson(k, n, confidence)
    return {"mean": k / n if n else float("nan"), "low": low, "high": high, "n": n, "k": k,
            "method": "clopper-pearson"}


def win_rate(tuned, base, confidence: float = 0.95, **_ignored) -> dict:
    """Share of prompts where tuned scores higher, ties 1/2; exact interval with ties bracketed (low: ties lost,
    high: ties won); p-value: two-sided sign test on the untied prompts."""
    diff = np.asarray(tuned, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    wins, ties, n = int(np.sum(diff > 0)), int(np.sum(diff == 0)), int(len(diff))
    low, _ = clopper_pearson(wins, n, confidence)
    _, high = clopper_pearson(wins + ties, n, confidence)
    untied = n - ties
    p = binomtest(wins, untied).pvalue if untied else 1.0
    return {"mean": (wins + 0.5 * ties) / n if n else float("nan"), "low": low, "high": high, "n": n,
            "wins": wins, "ties": ties, "losses": n - wins - ties, "p_value": float(p),
            "method": "clopper-pearson, ties bracketed"}


def holm(p_values) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, made monotone), in the input order; NaN stays NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    finite = np.flatnonzero(~np.isnan(p))
    out = np.full(len(p), np.nan)
    m = len(finite)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return [float(v) for v in out]


def apply_holm(results: list[dict], alpha: float = 0.05) -> None:
    """Write `p_holm` and `significant` (Holm-corrected, family = `results`) into each result that has a p-value."""
    adjusted = holm([r.get("p_value", np.nan) for r in results])
    for result, p in zip(results, adjusted, strict=True):
        result["p_holm"] = p
        result["significant"] = bool(p < alpha) if not np.isnan(p) else False
        result["family_size"] = len(results)


def paired_gap(training_diff, scorer_diff, boot: dict, training_top: float, scorer_top: float) -> dict:
    """Per prompt: the training RM's normalised gain minus the scorer's (each difference / its top level, 0..1
    scale), bootstrapped over prompts on the same resamples as both gains; NaN prompts are left out."""
    a = np.asarray(training_diff, dtype=np.float64) / training_top
    b = np.asarray(scorer_diff, dtype=np.float64) / scorer_top
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    return {"gap": mean_interval(a - b, value_range=4.0, **boot), "training_gain": mean_interval(a, value_range=2.0,
                                                                                                **boot),
            "scorer_gain": mean_interval(b, value_range=2.0, **boot), "n": int(keep.sum())}


def format_interval(d: dict, digits: int = 3, signed: bool = True) -> str:
    """'m [low, high]'; a degenerate interval (no spread, no known range) says so instead of printing [m, m]."""
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    if d.get("degenerate"):
        return f"{f.format(d['mean'])} (all {d.get('n', '?')} equal, no interval)"
    return f"{f.format(d['mean'])} [{f.format(d['low'])}, {f.format(d['high'])}]"


def distinct_n(token_lists: list[list], n: int) -> float:
    """Unique n-grams / all n-grams over a set of responses (higher = more diverse)."""
    grams = [tuple(tokens[i:i + n]) for tokens in token_lists for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
