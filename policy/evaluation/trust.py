"""When a judge's verdict counts: its agreement with human labels, keyed by (judge, rubric), as a lower bound.

An `annotation agreement` report (agreement.json) gives, per rubric dimension and judge, the QWK with the human
consensus and the confusion matrix of (human level, judge level) pairs. A judge is trusted on a rubric only when
that report was measured on the same rubric and the mean over dimensions of each dimension's lower 95% bootstrap
bound of QWK (the confusion pairs resampled) reaches the threshold. Averaging the per-dimension lower bounds is
conservative whatever the dependence between dimensions (it is the bound of perfectly dependent dimensions).
A judge checked on another rubric, or with no confusion on record, is "unmeasured".

An independent RM (`--rms`) is held to the same bound, on its folder's validation record (`core.validation_record`,
written by `hpc_rm train --validation` or `hpc_rm eval --record`): trusted only when the record is on the RM's
rubric, from human labels, and its mean lower bound of QWK reaches the threshold; without one it is "unmeasured".
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def qwk_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Quadratic-weighted kappa of one (k, k) confusion matrix or a stack (..., k, k); NaN where undefined."""
    o = np.asarray(confusion, dtype=np.float64)
    k = o.shape[-1]
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    w = (i - j) ** 2 / max(1, (k - 1) ** 2)
    n = o.sum(axis=(-2, -1), keepdims=True)
    expected = o.sum(axis=-1, keepdims=True) * o.sum(axis=-2, keepdims=True) / np.where(n == 0, 1, n)
    den = (w * expected).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 1 - (w * o).sum(axis=(-2, -1)) / np.where(den > 0, den, 1), np.nan)


def qwk_lower_bound(confusion, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> float:
    """Lower end of the two-sided bootstrap interval of QWK, the (human, judge) pairs resampled."""
    o = np.asarray(confusion, dtype=np.float64)
    n = int(o.sum())
    if n < 2:
        return float("nan")
    draws = np.random.default_rng(seed).multinomial(n, (o / n).ravel(), size=n_resamples).reshape(-1, *o.shape)
    values = qwk_from_confusion(draws)
    values = np.where(np.isnan(values), 0.0, values)  # a resample with one level only: no agreement shown
    return float(np.quantile(values, (1 - confidence) / 2))


def judge_standing(agreement: dict | None, min_qwk: float) -> str:
    """'trusted' when the mean over dimensions of QWK's lower 95% bound reaches `min_qwk`; else why not."""
    if not agreement:
        return "unmeasured: no agreement with human labels on this rubric on record"
    rows = [row for row in agreement.values() if row.get("qwk") is not None]
    if not rows or any(row.get("confusion") is None for row in rows):
        return "unmeasured: no per-item agreement (confusion) on record to bound QWK"
    mean = float(np.mean([row["qwk"] for row in rows]))
    low = float(np.mean([qwk_lower_bound(row["confusion"]) for row in rows]))
    if low >= min_qwk:
        return "trusted"
    return f"untrusted: mean QWK with humans {mean:.2f}, lower 95% bound {low:.2f} < {min_qwk}"


def rm_standing(record: dict | None, rubric: str | None, folder: str | None, min_qwk: float) -> str:
    """An independent RM's standing from its folder's validation record: 'trusted' only for a record on the RM's
    own rubric, from human labels, whose mean lower 95% bound of QWK reaches `min_qwk` (`judge_standing`)."""
    if record is None or not record.get("human_labels"):
        return (f"unmeasured: no validation record on human labels in {folder} (train it with --validation, or run "
                f"hpc_rm eval --record)")
    if record.get("rubric") != rubric:
        return (f"unmeasured: the validation record in {folder} is on rubric {record.get('rubric')}, "
                f"not the RM's {rubric}")
    return judge_standing(record.get("dimensions"), min_qwk)


def load_agreement(path: str | None) -> dict[tuple[str, str], dict]:
    """(judge name, rubric name) -> dimension -> {qwk, spearman, exact, n, confusion} vs the human consensus, from
    an `annotation agreement` report (agreement.json)."""
    if not path:
        return {}
    report = json.loads(Path(path).read_text())
    rubric = (report.get("rubric") or {}).get("name", "")
    out: dict[tuple[str, str], dict] = {}
    for dim, stats in report.get("dimensions", {}).items():
        for annotator, row in stats.get("human_llm", {}).items():
            judge = annotator.removeprefix("llm:")
            out.setdefault((judge, rubric), {})[dim] = {k: row.get(k)
                                                        for k in ("qwk", "spearman", "exact", "n", "confusion")}
    return out
