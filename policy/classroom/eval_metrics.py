"""What `classroom-eval` measures on each dialogue (one value per dialogue, so intervals bootstrap over problems).

- `reject_rate/<rule>`: the share of the rule's judge samples that reject (a judge that never answered validly
  counts as one sample of its fault decision); with the same number of samples per dialogue, the mean over
  dialogues is the share of all samples. `leak_rate_judge` is the leak rule's.
- `judge_rejected_any`: the dialogue is rejected by at least one rule (what the training reward penalises).
- `leak_rate_rule_numeric`: an order-aware check that needs no judge: some tutor turn states the final number before
  the student has said it (in an earlier student turn) and the problem does not contain it.
- the solve rate after the dialogue, delta solve (minus the student's solo solve rate), dialogue length, and the
  reward model's mean score per tutor turn when one is given.
"""
from __future__ import annotations

import numpy as np

from policy.classroom.rewards import solve_rate
from core.stats import mean_interval, paired_difference, rate_interval
from policy.prompts import numbers_in, parse_number

LEAK_RULE = "does_not_leak_answer"
# yes/no per dialogue: exact Clopper-Pearson intervals (0 of 6 is [0, 0.459], never [0, 0])
BINARY_METRICS = ("leak_rate_rule_numeric", "judge_rejected_any", "ended_by_tutor")


def states(text: str, value: float) -> bool:
    return any(np.isclose(value, n) for n in numbers_in(text))


def leaked_in_order(record: dict) -> bool:
    """Whether a tutor turn states the final number before any earlier student turn (or the problem) has it."""
    value = parse_number(record["answer"])
    if value is None or states(record["problem"] or "", value):
        return False
    for turn in record["turns"]:
        if states(turn["text"], value):
            return turn["role"] == "tutor"  # whoever says the number first decides
    return False


def sample_reject_share(verdict) -> float:
    """The share of a verdict's judge samples that reject (its fault decision when no sample was valid)."""
    samples = verdict.samples or (verdict.decision,)
    return float(np.mean([s == "REJECT" for s in samples]))


def dialogue_metrics(records: list[dict], verdicts: list[dict], solo: list[float] | None,
                     tutor_tokens: list[int]) -> dict[str, np.ndarray]:
    """One value per dialogue for every reported metric (records from `Dialogue.record()`, verdicts per rule);
    `solo` None: the dialogues have no final solutions, so no solve rates."""
    metrics = {}
    if solo is not None:
        metrics["solve_rate"] = np.array([solve_rate(r) for r in records])
        metrics["delta_solve"] = metrics["solve_rate"] - np.asarray(solo, dtype=float)
    metrics |= {
        "leak_rate_rule_numeric": np.array([leaked_in_order(r) for r in records], dtype=float),
        "judge_rejected_any": np.array([any(v.rejects for v in per.values()) for per in verdicts], dtype=float),
    }
    rules = list(verdicts[0]) if verdicts else []
    if LEAK_RULE in rules:
        metrics["leak_rate_judge"] = np.array([sample_reject_share(per[LEAK_RULE]) for per in verdicts])
    for rule in rules:
        metrics[f"reject_rate/{rule}"] = np.array([sample_reject_share(per[rule]) for per in verdicts])
    metrics["tutor_turns"] = np.array([len(r["tutor_texts"]) for r in records], dtype=float)
    metrics["tutor_tokens"] = np.asarray(tutor_tokens, dtype=float)
    metrics["ended_by_tutor"] = np.array([r["ended_by_tutor"] for r in records], dtype=float)
    return metrics


def rm_metrics(rm, records: list[dict]) -> dict[str, np.ndarray]:
    """The RM's mean score per tutor turn of each dialogue, per dimension (0 for a dialogue without tutor turns)."""
    contexts = [c for r in records for c in r["tutor_contexts"]]
    scores = rm.score(contexts, [t for r in records for t in r["tutor_texts"]])
    counts = [len(r["tutor_texts"]) for r in records]
    ends = np.cumsum(counts)
    return {f"rm_{dim}_per_turn": np.array([values[e - n:e].mean() if n else 0.0 for e, n in zip(ends, counts)])
            for dim, values in scores.items()}


def value_range(name: str, rm_top: float = 2.0) -> float | None:
    """The span a metric's per-dialogue values can take, for Hoeffding's interval when a sample has no spread
    (None: unbounded, e.g. token counts; such a sample is printed as 'all n equal')."""
    if name in BINARY_METRICS or name in ("solve_rate", "leak_rate_judge") or name.startswith("reject_rate/"):
        return 1.0
    if name == "delta_solve":
        return 2.0
    if name.startswith("rm_"):
        return rm_top
    return None


def summarise_metric(name: str, base, tuned, boot: dict, rm_top: float = 2.0) -> dict:
    """Base, tuned (exact intervals for yes/no metrics, else bootstrap over problems) and tuned - base (paired
    bootstrap); no interval is zero-width where the metric's range is known."""
    span = value_range(name, rm_top)
    if name in BINARY_METRICS:
        side = {"base": rate_interval(base), "tuned": rate_interval(tuned)}
    else:
        side = {"base": mean_interval(base, value_range=span, **boot),
                "tuned": mean_interval(tuned, value_range=span, **boot)}
    diff = paired_difference(tuned, base, value_range=2 * span if span else None, **boot)
    return clip_to_range(name, side | {"difference": diff}, rm_top)


def clip_to_range(name: str, summary: dict, rm_top: float = 2.0) -> dict:
    """Hoeffding's interval can reach past what a metric can take (a rate below 0): clip each end to the metric's
    range (rates 0..1, delta solve -1..1, differences -span..span)."""
    span = value_range(name, rm_top)
    if span is None:
        return summary
    lowest = -1.0 if name == "delta_solve" else 0.0
    bounds = {"base": (lowest, lowest + span), "tuned": (lowest, lowest + span), "difference": (-span, span)}
    for key, (lo, hi) in bounds.items():
        if key in summary:
            summary[key] = summary[key] | {"low": max(summary[key]["low"], lo), "high": min(summary[key]["high"], hi)}
    return summary
