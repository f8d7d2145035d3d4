"""Scorers the policy never trained on, and the comparison that flags a gain only the training RM sees.

A policy tuned against one reward model shows its largest gains exactly where that RM can be gamed. So every eval
also scores base and tuned responses with independent scorers: LLM judges (the same specs as `annotation label`:
local models, OpenAI-compatible endpoints) and other reward-model folders (e.g. one trained on human labels of other
items). Each reports, per dimension of its own rubric, base, tuned, the paired bootstrap difference and the win rate.
Gains are compared on one scale (divided by the rubric's top level, so 0..1): the **gap** is the training RM's
normalised gain minus the independent scorer's. A training-RM gain whose interval excludes zero while the
independent scorer's does not (or points down) is flagged as possible reward hacking.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from core.judges import JudgeJob, RawLabel, build_judges
from core.rubric import Rubric
from core.schema import LabeledItem
from policy.evaluation.stats import paired_difference, win_rate


@dataclass
class Scorer:
    """A named scorer: (contexts, responses) -> {dimension: scores}; `top` is the rubric's highest level."""

    name: str
    kind: str  # "training-rm", "rm" or "judge"
    dimensions: list[str]
    top: float
    score: Callable[[list[str], list[str]], dict[str, np.ndarray]]
    agreement: dict | None = None  # the judge's measured agreement with human labels, when one is known


def rm_scorer(name: str, rm, kind: str = "rm", batch_size: int = 16, weights: dict[str, float] | None = None) -> Scorer:
    """An RM as a scorer; with `weights` its scores also carry 'weighted' (the sum GRPO maximised)."""
    top = float(max(level.score for dim in rm.rubric.dimensions for level in dim.levels))

    def score(contexts, responses):
        preds = {d: np.asarray(v, dtype=np.float64)
                 for d, v in rm.score(list(contexts), list(responses), batch_size=batch_size).items()}
        if weights is not None:
            preds["weighted"] = np.asarray(rm.reward(preds, weights), dtype=np.float64)
        return preds

    return Scorer(name, kind, list(rm.dimensions), top, score)


def judge_scores(judge, rubric: Rubric, contexts: list[str], responses: list[str]) -> dict[str, np.ndarray]:
    """One sample per response; the expected level where the judge gives probabilities, else its level; a failed
    judgement is NaN (left out of that prompt's comparison, never imputed)."""
    items = [LabeledItem(id=str(i), context=c, response=r) for i, (c, r) in enumerate(zip(contexts, responses,
                                                                                          strict=True))]
    labels: dict[int, RawLabel] = {}
    judge.label([JudgeJob(item, 0) for item in items], rubric, lambda raw: labels.__setitem__(int(raw.item_id), raw))
    out = {d.name: np.full(len(items), np.nan) for d in rubric.dimensions}
    for i, raw in labels.items():
        if raw.status != "ok":
            continue
        values = raw.expected or raw.scores or {}
        for name, value in values.items():
            if name in out:
                out[name][i] = float(value)
    return out


def judge_scorers(specs: list[str], rubric: Rubric, agreement: dict[str, dict] | None = None) -> list[Scorer]:
    top = float(max(level.score for dim in rubric.dimensions for level in dim.levels))
    scorers = []
    for judge in build_judges(specs):
        scorers.append(Scorer(f"judge:{judge.name}", "judge", rubric.names, top,
                              lambda c, r, judge=judge: judge_scores(judge, rubric, c, r),
                              (agreement or {}).get(judge.name)))
    return scorers


def load_rm_scorers(paths: list[str], batch_size: int) -> list[Scorer]:
    from core.reward_model import HPCRewardModel

    return [rm_scorer(f"rm:{Path(p).name}", HPCRewardModel.from_pretrained(p), batch_size=batch_size)
            for p in paths]


def per_prompt(values: np.ndarray, n_prompts: int, samples: int) -> np.ndarray:
    """Average the samples of each prompt (prompt-major layout), ignoring failed (NaN) samples."""
    grid = np.asarray(values, dtype=np.float64).reshape(n_prompts, samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a prompt whose samples all failed stays NaN
        return np.nanmean(grid, axis=1)


def prompt_scores(scorer: Scorer, contexts: list[str], texts: list[str], samples: int) -> dict[str, np.ndarray]:
    """The scorer's per-prompt scores of prompt-major responses (`samples` per prompt)."""
    return {d: per_prompt(v, len(texts) // samples, samples) for d, v in scorer.score(contexts, texts).items()}


def compare_scores(base: dict[str, np.ndarray], tuned: dict[str, np.ndarray], top: float, boot: dict) -> dict:
    """Per dimension and for the mean over dimensions: base, tuned, paired difference, win rate, normalised gain."""
    dims = [d for d in base if d != "weighted"]  # the training RM's weighted sum is reported, not averaged in
    with np.errstate(invalid="ignore"):
        base = dict(base, mean=np.nanmean(np.vstack([base[d] for d in dims]), axis=0))
        tuned = dict(tuned, mean=np.nanmean(np.vstack([tuned[d] for d in dims]), axis=0))
    out = {}
    for dim in base:
        keep = ~(np.isnan(base[dim]) | np.isnan(tuned[dim]))
        if keep.sum() < 2:
            out[dim] = {"n": int(keep.sum()), "note": "fewer than 2 prompts scored by both policies"}
            continue
        b, t = base[dim][keep], tuned[dim][keep]
        diff = paired_difference(t, b, **boot)
        out[dim] = {"base": float(b.mean()), "tuned": float(t.mean()), "difference": diff,
                    "win_rate": win_rate(t, b, **boot), "n": int(keep.sum()),
                    "normalised_gain": {k: diff[k] / top for k in ("mean", "low", "high")}}
    return out


def judge_standing(agreement: dict | None, min_qwk: float) -> str:
    """'trusted' when the judge's mean QWK with human labels reaches `min_qwk`; else why it is not."""
    if not agreement:
        return "unmeasured: no agreement with human labels on record"
    qwks = [row["qwk"] for row in agreement.values() if row.get("qwk") is not None]
    mean = sum(qwks) / len(qwks) if qwks else 0.0
    return "trusted" if mean >= min_qwk else f"untrusted: mean QWK with humans {mean:.2f} < {min_qwk}"


def hacking_gaps(training: dict, independent: dict[str, dict], training_dim: str = "weighted") -> dict:
    """Training RM's normalised gain minus each independent scorer's (mean over its dimensions), with two flags:
    possible reward hacking (the training RM's gain excludes zero, the scorer's does not) and the tuned policy being
    worse by the scorer (its interval lies below zero, whatever the training RM saw)."""
    if training_dim not in training or "normalised_gain" not in training[training_dim]:
        return {}
    t = training[training_dim]["normalised_gain"]
    gaps = {}
    for name, result in independent.items():
        other = result.get("mean", {})
        if "normalised_gain" not in other:
            continue
        o = other["normalised_gain"]
        flagged = t["low"] > 0 and not o["low"] > 0
        gaps[name] = {"training_gain": t["mean"], "independent_gain": o["mean"], "gap": t["mean"] - o["mean"],
                      "possible_reward_hacking": bool(flagged), "tuned_worse": bool(o["high"] < 0)}
    return gaps


def load_agreement(path: str | None) -> dict[str, dict]:
    """judge name -> dimension -> {qwk, spearman, exact, n} vs the human consensus, from an `annotation agreement`
    report (agreement.json), so a judge's verdicts are shown next to how well it matched humans."""
    if not path:
        return {}
    report = json.loads(Path(path).read_text())
    out: dict[str, dict] = {}
    for dim, stats in report.get("dimensions", {}).items():
        for annotator, row in stats.get("human_llm", {}).items():
            judge = annotator.removeprefix("llm:")
            out.setdefault(judge, {})[dim] = {k: row.get(k) for k in ("qwk", "spearman", "exact", "n")}
    return out
