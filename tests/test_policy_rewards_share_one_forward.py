"""The per-dimension reward functions share one reward-model forward per batch, carry their dimension's name,
and return exactly what the RM scores; the leak judge and length penalty follow their rules."""
from __future__ import annotations

import numpy as np
import pytest

from policy.train.rewards import (EXTRA_REWARDS, RewardSetup, build_reward_functions, leaked_answers,
                            validate_extra_params)

CONTEXTS = ["## Problem\nSam has 7 apples and gives away 3.", "## Problem\nA box holds 12 pens; 5 are red."]


def call_all(funcs, completions, **columns):
    """Call every reward like TRL does (keyword arguments, dataset columns repeated per completion)."""
    return {f.__name__: f(prompts=[[]] * len(completions), completions=completions,
                          completion_ids=[[1, 2, 3]] * len(completions), **columns) for f in funcs}


@pytest.fixture(scope="module")
def counted_rm(tiny_encoder):
    from core.reward_model import HPCRewardModel

    rm = HPCRewardModel.from_backbone(tiny_encoder, "hpc")
    calls = []
    original = rm.score

    def score(contexts, responses, batch_size=32):
        calls.append(len(responses))
        return original(contexts, responses, batch_size=batch_size)

    rm.score = score
    return rm, calls


def columns_for(n):
    return {"context": (CONTEXTS * n)[:n], "final_answer": ["4", "7"] * (n // 2),
            "student_known": ["Sam has 7 apples", "A box holds 12 pens"] * (n // 2)}


def test_three_heads_one_forward_per_batch(counted_rm):
    rm, calls = counted_rm
    calls.clear()
    funcs, weights, cache = build_reward_functions(rm, rm.weights, {}, RewardSetup(max_completion_length=64))
    assert [f.__name__ for f in funcs] == ["Helpfulness", "Personalization", "Creativity"]
    assert weights == [0.4, 0.3, 0.3]
    completions = [[{"role": "assistant", "content": f"What do you get if you take away {i}?"}] for i in range(4)]
    rewards = call_all(funcs, completions, **columns_for(4))
    assert calls == [4] and cache.forwards == 1
    direct = rm.predict(columns_for(4)["context"], [c[0]["content"] for c in completions])[0]
    for name, values in rewards.items():
        np.testing.assert_allclose(values, direct[name], rtol=1e-5)
    # A new batch costs exactly one more forward.
    call_all(funcs, completions[:2], **columns_for(2))
    assert calls == [4, 2] and cache.forwards == 2


def test_leak_soft_subtracts_lambda_hard_replaces_reward(counted_rm):
    rm, _ = counted_rm
    completions = ["The answer is 4.", "Which colour are the other pens?", "It is 4 apples", "Try 12 minus 5"]
    cols = {"context": CONTEXTS * 2, "final_answer": ["4", "7", "4", "7"],
            "student_known": ["Sam has 7 apples and gives away 3"] * 4}
    leaked = [True, False, True, False]
    for mode in ("soft", "hard"):
        extras = validate_extra_params({"answer_leak": {"penalty": 1.5, "mode": mode}})
        funcs, weights, _ = build_reward_functions(rm, rm.weights, extras, RewardSetup(max_completion_length=64))
        rewards = call_all(funcs, completions, **cols)
        assert rewards["answer_leak"] == [-1.5 if leak else 0.0 for leak in leaked]
        total = sum(w * np.asarray(rewards[f.__name__]) for f, w in zip(funcs, weights, strict=True))
        heads = sum(w * np.asarray(rewards[d]) for d, w in zip(rm.dimensions, weights, strict=False))
        for i, leak in enumerate(leaked):
            if mode == "hard" and leak:
                assert total[i] == pytest.approx(-1.5)
            else:
                assert total[i] == pytest.approx(heads[i] - (1.5 if leak else 0.0))
        if mode == "hard":
            assert all(rewards[d][i] == 0.0 for d in rm.dimensions for i in (0, 2))
            assert all(rewards[d][1] != 0.0 for d in rm.dimensions)


def test_leak_rule_cases():
    responses = ["So 19 it is!", "Close: 190 is too big.", "You get 1,200 dollars.", "You said 19, well done.",
                 "5 is in the question already"]
    answers = ["19", "19", "1200", "19", "5"]
    known = ["Beth is twice as old", "Beth is twice as old", "He earns 40 a day", "Student: is it 19?",
             "Sam has 5 apples"]
    assert leaked_answers(responses, answers, known).tolist() == [True, False, True, False, False]


def test_length_penalty_long_truncated_empty():
    params = validate_extra_params({"length_penalty": {"target_tokens": 10, "per_100_tokens": 1.0,
                                                       "truncated": 0.5, "empty": 1.0}})
    penalty = EXTRA_REWARDS["length_penalty"](params["length_penalty"],
                                              RewardSetup(max_completion_length=60, eos_token_ids=[2]))
    ids = [[5] * 9, [5] * 59 + [2], [5] * 60, [2]]
    values = penalty(prompts=[""] * 4, completions=["ok", "long", "cut", " "], completion_ids=ids)
    assert values == pytest.approx([0.0, -0.5, -0.5 - 0.5, -1.0])
