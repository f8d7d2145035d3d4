"""Exclusions apply per scorer (an RM trained on MRBench does not score MRBench's problems, the others do) and the
report breaks the gains down by prompt kind with each scorer's n (issue #29 point 4)."""
from __future__ import annotations

import numpy as np

from policy.evaluation.independent import Scorer, by_prompt_kind, prompt_scores
from policy.evaluation.verdict import by_kind_markdown


def counting_scorer(name: str, skip=frozenset()) -> tuple[Scorer, list]:
    seen = []

    def score(contexts, responses):
        seen.extend(contexts)
        return {"A": np.array([float(len(r)) for r in responses])}

    return Scorer(name, "rm", ["A"], 2.0, score, skip_problems=frozenset(skip)), seen


def test_an_rm_skips_only_its_own_training_problems_and_other_scorers_see_every_prompt():
    problems = ["p1", "mrb", "p2", "mrb"]
    contexts = [f"c{i}" for i in range(4) for _ in range(2)]  # 2 samples per prompt, prompt-major
    texts = ["a", "bb", "ccc", "d", "ee", "f", "gg", "h"]
    mrbench_rm, seen_rm = counting_scorer("rm:mrbench_rm", {"mrb"})
    judge, seen_judge = counting_scorer("judge:x")
    rm_scores = prompt_scores(mrbench_rm, contexts, texts, 2, problems)["A"]
    judge_scores = prompt_scores(judge, contexts, texts, 2, problems)["A"]
    assert seen_rm == ["c0", "c0", "c2", "c2"] and len(seen_judge) == 8
    assert np.isnan(rm_scores[[1, 3]]).all() and rm_scores[[0, 2]].tolist() == [1.5, 1.5]
    assert judge_scores.tolist() == [1.5, 2.0, 1.5, 1.5]


def test_gains_are_broken_down_by_prompt_kind_with_each_scorers_n():
    rng = np.random.default_rng(0)
    kinds = ["gsm8k single-turn"] * 20 + ["mathdial multi-turn"] * 30
    base = rng.uniform(0, 2, 50)
    tuned = base + np.where(np.arange(50) < 20, 0.0, 0.6) + rng.normal(0, 0.05, 50)  # gain on dialogues only
    skipped = base.copy()
    skipped[20:25] = np.nan  # five dialogues on the RM's training problems
    training = Scorer("rm:training", "training-rm", ["A"], 2.0, None, weight_sum=1.0)
    rm = Scorer("rm:human", "rm", ["A"], 2.0, None)
    out = by_prompt_kind(kinds, {"rm:training": (training, {"A": base, "weighted": base},
                                                 {"A": tuned, "weighted": tuned}),
                                 "rm:human": (rm, {"A": skipped}, {"A": tuned})}, dict(n_resamples=500, seed=0))
    dialogue, single = out["mathdial multi-turn"]["scorers"], out["gsm8k single-turn"]["scorers"]
    assert out["mathdial multi-turn"]["prompts"] == 30
    assert dialogue["rm:human"]["n"] == 25 and dialogue["rm:training"]["n"] == 30 and single["rm:human"]["n"] == 20
    assert dialogue["rm:human"]["low"] > 0.25 and single["rm:human"]["low"] < 0 < single["rm:human"]["high"]
    lines = by_kind_markdown({"by_kind": out, "independent": {"rm:human": {"standing": "trusted"}}})
    assert any(line.startswith("| mathdial multi-turn | 30 | rm:human | trusted | 25 |") for line in lines)
