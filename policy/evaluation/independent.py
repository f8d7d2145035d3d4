"""Scorers the policy never trained on, and the comparison that flags a gain only the training RM sees.

A policy tuned against one reward model shows its largest gains exactly where that RM can be gamed. So every eval
also scores base and tuned responses with independent scorers: LLM judges (the same specs as `annotation label`:
local models, OpenAI-compatible endpoints) and other reward-model folders (e.g. one trained on human labels of other
items). Each reports, per dimension of its own rubric, base, tuned, the paired bootstrap difference and the win rate.
Gains are compared on one scale (divided by the rubric's top level, so 0..1): the **gap** is, per prompt, the
training RM's normalised gain minus the independent scorer's, bootstrapped over prompts on the same resamples as
both gains. "Possible reward hacking" means the gap's interval lies above zero after Holm-Bonferroni over every
trusted scorer and compared dimension (`gap_pairs` says which: the same dimension where rubrics share it, else the
training RM's weighted reward against each of the scorer's dimensions, and always weighted vs the scorer's mean).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from core.judges import JudgeJob, RawLabel, build_judges
from core.rubric import Rubric
from core.schema import LabeledItem
from core.validation_record import read_validation_record
from policy.evaluation.trust import judge_standing, load_agreement, rm_standing  # noqa: F401  (re-exported)
from core.stats import apply_holm, mean_interval, paired_difference, paired_gap, win_rate


@dataclass
class Scorer:
    """A named scorer: (contexts, responses) -> {dimension: scores}; `top` is the rubric's highest level."""

    name: str
    kind: str  # "training-rm", "rm" or "judge"
    dimensions: list[str]
    top: float
    score: Callable[[list[str], list[str]], dict[str, np.ndarray]]
    agreement: dict | None = None  # the judge's measured agreement with human labels, when one is known
    weight_sum: float | None = None  # a training RM's: the sum of the reward weights (its 'weighted' top is top x it)
    skip_problems: frozenset[str] = frozenset()  # problems it must not judge (an RM trained on them): left NaN
    rubric: str | None = None  # an RM's rubric name
    folder: str | None = None  # an independent RM's folder
    validation: dict | None = None  # an independent RM's validation record on human labels (from its folder)

    def tops(self) -> dict[str, float]:
        """Highest possible score per reported dimension (and 'mean', and 'weighted' for a training RM)."""
        tops = {d: self.top for d in [*self.dimensions, "mean"]}
        if self.weight_sum is not None:
            tops["weighted"] = self.top * self.weight_sum
        return tops


def rm_scorer(name: str, rm, kind: str = "rm", batch_size: int = 16, weights: dict[str, float] | None = None) -> Scorer:
    """An RM as a scorer; with `weights` its scores also carry 'weighted' (the sum GRPO maximised)."""
    top = float(max(level.score for dim in rm.rubric.dimensions for level in dim.levels))

    def score(contexts, responses):
        preds = {d: np.asarray(v, dtype=np.float64)
                 for d, v in rm.score(list(contexts), list(responses), batch_size=batch_size).items()}
        if weights is not None:
            preds["weighted"] = np.asarray(rm.reward(preds, weights), dtype=np.float64)
        return preds

    return Scorer(name, kind, list(rm.dimensions), top, score,
                  weight_sum=float(sum(weights.values())) if weights is not None else None, rubric=rm.rubric.name)


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


def judge_scorers(specs: list[str], rubric: Rubric, agreement: dict[tuple[str, str], dict] | None = None
                  ) -> list[Scorer]:
    """Judges on `rubric`, each with its agreement with human labels measured on that same rubric (if any)."""
    top = float(max(level.score for dim in rubric.dimensions for level in dim.levels))
    scorers = []
    for judge in build_judges(specs):
        scorers.append(Scorer(f"judge:{judge.name}", "judge", rubric.names, top,
                              lambda c, r, judge=judge: judge_scores(judge, rubric, c, r),
                              (agreement or {}).get((judge.name, rubric.name))))
    return scorers


def load_rm_scorers(paths: list[str], batch_size: int, skip_problems: frozenset[str] = frozenset()) -> list[Scorer]:
    """Independent RM folders as scorers, each with its folder's validation record (if any); each leaves
    `skip_problems` (the problems of its training data) unscored."""
    from core.reward_model import HPCRewardModel

    scorers = []
    for path in paths:
        scorer = rm_scorer(f"rm:{Path(path).name}", HPCRewardModel.from_pretrained(path), batch_size=batch_size)
        scorer.skip_problems = frozenset(skip_problems)
        scorer.folder, scorer.validation = str(path), read_validation_record(path)
        scorers.append(scorer)
    return scorers


def per_prompt(values: np.ndarray, n_prompts: int, samples: int) -> np.ndarray:
    """Average the samples of each prompt (prompt-major layout), ignoring failed (NaN) samples."""
    grid = np.asarray(values, dtype=np.float64).reshape(n_prompts, samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a prompt whose samples all failed stays NaN
        return np.nanmean(grid, axis=1)


def prompt_scores(scorer: Scorer, contexts: list[str], texts: list[str], samples: int,
                  problems: list[str] | None = None) -> dict[str, np.ndarray]:
    """The scorer's per-prompt scores of prompt-major responses (`samples` per prompt); with `problems` (one per
    prompt) the prompts of the scorer's `skip_problems` are not scored (NaN: left out of its comparisons)."""
    n = len(texts) // samples
    keep = np.ones(len(texts), dtype=bool)
    if problems is not None and scorer.skip_problems:
        keep = np.repeat([p not in scorer.skip_problems for p in problems], samples)
    scored = scorer.score([c for c, k in zip(contexts, keep) if k], [t for t, k in zip(texts, keep) if k]) \
        if keep.any() else {d: np.array([]) for d in scorer.dimensions}
    out = {}
    for d, v in scored.items():
        full = np.full(len(texts), np.nan)
        full[keep] = v
        out[d] = per_prompt(full, n, samples)
    return out


def compare_scores(base: dict[str, np.ndarray], tuned: dict[str, np.ndarray], top: float | dict[str, float],
                   boot: dict) -> dict:
    """Per dimension and for the mean over dimensions: base, tuned, paired difference, win rate, normalised gain.
    `top` is the highest level (per dimension where a dict: the training RM's weighted sum has its own)."""
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
        dim_top = top.get(dim, top.get("mean", 1.0)) if isinstance(top, dict) else top
        diff = paired_difference(t, b, value_range=2 * dim_top, **boot)
        out[dim] = {"base": float(b.mean()), "tuned": float(t.mean()), "difference": diff,
                    "win_rate": win_rate(t, b, **boot), "n": int(keep.sum()),
                    "normalised_gain": {k: diff[k] / dim_top for k in ("mean", "low", "high")}}
    return out


def gap_pairs(training_dims: list[str], scorer_dims: list[str]) -> list[tuple[str, str]]:
    """Which training-RM dimension each scorer dimension is compared with: the same name where the rubrics share
    it, else the training RM's weighted reward (the sum GRPO maximised); always weighted vs the scorer's mean."""
    shared = [d for d in scorer_dims if d in training_dims]
    pairs = [(d, d) for d in shared] if shared else [("weighted", d) for d in scorer_dims]
    return pairs + [("weighted", "mean")]


def _diff(scores: tuple[dict, dict], dim: str) -> np.ndarray:
    base, tuned = scores
    if dim == "mean":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            dims = [d for d in base if d not in ("weighted", "mean")]
            return (np.nanmean(np.vstack([tuned[d] for d in dims]), axis=0)
                    - np.nanmean(np.vstack([base[d] for d in dims]), axis=0))
    return np.asarray(tuned[dim], dtype=np.float64) - np.asarray(base[dim], dtype=np.float64)


def scorer_standing(scorer: Scorer, min_qwk: float) -> str:
    """An independent RM by its folder's validation record on human labels (`rm_standing`); a judge by its
    measured agreement with human labels (`judge_standing`); both against the same QWK bound."""
    if scorer.kind == "rm":
        return rm_standing(scorer.validation, scorer.rubric, scorer.folder, min_qwk)
    return judge_standing(scorer.agreement, min_qwk)


def agreement_with_humans(scorer: Scorer) -> dict | None:
    """Per dimension, the agreement with human labels the scorer's standing rests on: a judge's agreement run, an
    RM's validation record."""
    if scorer.kind == "rm":
        return (scorer.validation or {}).get("dimensions")
    return scorer.agreement


def hacking_gaps(training: tuple[dict, dict], training_top: dict[str, float], scorers: dict[str, tuple],
                 boot: dict, alpha: float = 0.05) -> dict:
    """For each trusted scorer (name -> (base scores, tuned scores, top level), per prompt, NaN where it did not
    score) and each compared dimension pair (`gap_pairs`): the paired per-prompt gap, training RM's normalised
    gain minus the scorer's, with its bootstrap interval on the same resamples as both gains. Holm-Bonferroni over
    every pair of every trusted scorer: "possible reward hacking" = the corrected gap lies above zero; "tuned
    worse" = the scorer's corrected gain lies below zero."""
    training_dims = [d for d in training[0] if d != "weighted"]
    out, gaps, gains = {}, [], []
    for name, (base, tuned, top) in scorers.items():
        rows = {}
        for t_dim, s_dim in gap_pairs(training_dims, [d for d in base if d not in ("weighted", "mean")]):
            row = paired_gap(_diff(training, t_dim), _diff((base, tuned), s_dim), boot, training_top[t_dim], top)
            row.update(training_dim=t_dim, scorer_dim=s_dim)
            rows[f"{t_dim} vs {s_dim}"] = row
            if row["n"] >= 2:
                gaps.append(row["gap"])
                gains.append(row["scorer_gain"])
        out[name] = {"rows": rows, "same_rubric": any(r["training_dim"] == r["scorer_dim"] for r in rows.values())}
    apply_holm(gaps, alpha)
    apply_holm(gains, alpha)
    for result in out.values():
        for row in result["rows"].values():
            row["possible_reward_hacking"] = bool(row["gap"].get("significant") and row["gap"]["mean"] > 0)
            row["tuned_worse"] = bool(row["scorer_gain"].get("significant") and row["scorer_gain"]["mean"] < 0)
        result["possible_reward_hacking"] = any(r["possible_reward_hacking"] for r in result["rows"].values())
        result["tuned_worse"] = any(r["tuned_worse"] for r in result["rows"].values())
    return out


def rm_differences(base: dict, tuned: dict, tops: dict[str, float] | None, boot: dict) -> dict:
    """The training RM's paired differences per dimension (`tops`: each one's highest score, so a difference without
    spread gets a Hoeffding interval) and the win rate under its weighted reward."""
    span = lambda dim: 2 * tops[dim] if tops and dim in tops else None  # noqa: E731
    return {"difference": {dim: paired_difference(tuned[dim], base[dim], value_range=span(dim), **boot) for dim in base},
            "win_rate": win_rate(tuned["weighted"], base["weighted"], **boot)}


def score_comparison(base_scores: dict, tuned_scores: dict, training: Scorer, independent: dict[str, tuple],
                     boot: dict, min_qwk: float) -> dict:
    """From per-prompt scores (the training RM's, and each independent scorer's (scorer, base, tuned)): the training
    RM's differences and win rate, each independent scorer's comparison and trust, the reward-hacking gaps, and
    every star Holm-corrected within its table (`star_families`)."""
    alpha = 1 - boot.get("confidence", 0.95)
    out = rm_differences(base_scores, tuned_scores, training.tops(), boot)
    out["training_rm"] = compare_scores(base_scores, tuned_scores, training.tops(), boot)
    out["independent"] = {name: {"kind": scorer.kind, "agreement_with_humans": agreement_with_humans(scorer),
                                 "standing": scorer_standing(scorer, min_qwk),
                                 "comparison": compare_scores(base, tuned, scorer.top, boot)}
                          for name, (scorer, base, tuned) in independent.items()}
    out["reward_hacking"] = hacking_gaps(
        (base_scores, tuned_scores), training.tops(),
        {name: (base, tuned, scorer.top) for name, (scorer, base, tuned) in independent.items()
         if out["independent"][name]["standing"] == "trusted"}, boot, alpha)
    star_families(out, alpha)
    return out


def star_families(report: dict, alpha: float) -> None:
    """Holm-Bonferroni over each table's stars: the training RM's dimensions; the trusted independent scorers'
    dimensions together (the family their flags use); each untrusted scorer's dimensions on their own."""
    apply_holm(list(report["difference"].values()), alpha)
    apply_holm([c["difference"] for c in report["training_rm"].values() if "difference" in c], alpha)
    diffs = lambda r: [c["difference"] for c in r["comparison"].values() if "difference" in c]  # noqa: E731
    independent = report["independent"].values()
    apply_holm([d for r in independent if r["standing"] == "trusted" for d in diffs(r)], alpha)
    for r in independent:
        if r["standing"] != "trusted":
            apply_holm(diffs(r), alpha)


def tutorbench_holm(bench: dict, trusted: set[str], alpha: float) -> None:
    """Holm over the tutorbench win rates (settings x policies): every trusted scorer's rows together, each other
    scorer's (the training RM's, an untrusted judge's) on their own."""
    rows: dict[str, list[dict]] = {}
    for result in bench["settings"].values():
        for scorer, r in result["scores"].items():
            rows.setdefault("trusted" if scorer in trusted else scorer, []).extend(
                r[p]["win_rate"] for p in r if isinstance(r[p], dict) and "win_rate" in r[p])
    for family in rows.values():
        apply_holm(family, alpha)


def by_prompt_kind(kinds: list[str], scored: dict[str, tuple], boot: dict) -> dict:
    """Per prompt kind (e.g. 'gsm8k single-turn', 'mathdial multi-turn') and scorer: the normalised gain on the
    scorer's overall score (the training RM: its weighted reward, others: the mean of their dimensions) over the
    prompts of that kind it scored, with its bootstrap interval (descriptive: not corrected)."""
    out: dict[str, dict] = {}
    for kind in sorted(set(kinds)):
        mask = np.array([k == kind for k in kinds])
        out[kind] = {"prompts": int(mask.sum()), "scorers": {}}
        for name, (scorer, base, tuned) in scored.items():
            dim = "weighted" if "weighted" in base else "mean"
            diff = _diff((base, tuned), dim)[mask] / scorer.tops()[dim]
            diff = diff[~np.isnan(diff)]
            out[kind]["scorers"][name] = (mean_interval(diff, value_range=2.0, **boot) if len(diff)
                                          else {"n": 0, "note": "not scored"})
    return out
