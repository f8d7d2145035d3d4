"""Best-of-n keeps the highest-scoring of the first n samples, its KL formula matches the exact KL on a fine
finite distribution, and `policy bon` on tiny random models writes one responses file per n from one sample set."""
from __future__ import annotations

import json

import numpy as np
import pytest

from baselines_support import save_tiny_rm, write_prompts


def test_best_index_is_the_argmax_of_the_first_n_samples():
    from policy.train.bon import best_index

    rewards = np.array([[0.1, 0.9, 0.3, 2.0], [5.0, -1.0, 4.0, 6.0], [0.0, 0.0, 1.0, 0.5]])
    assert best_index(rewards, 1).tolist() == [0, 0, 0]
    assert best_index(rewards, 2).tolist() == [1, 0, 0]
    assert best_index(rewards, 3).tolist() == [1, 0, 2]
    assert best_index(rewards, 4).tolist() == [3, 3, 2]


def test_bon_rows_report_the_selected_samples_rewards():
    from policy.train.bon import bon_rows
    from policy.train.candidates import Candidates

    rewards = np.array([[0.1, 0.9, 0.3, 2.0], [5.0, -1.0, 4.0, 6.0]])
    cands = Candidates(["a", "b"], [["x"] * 4] * 2, [[[1]] * 4] * 2, [[1], [1]], rewards, {"H": rewards * 2})
    rows = bon_rows(cands, [1, 2, 4])
    assert [r["reward_mean"] for r in rows] == pytest.approx([(0.1 + 5.0) / 2, (0.9 + 5.0) / 2, (2.0 + 6.0) / 2])
    assert rows[2]["scores"]["H"] == pytest.approx(8.0)
    # another selector picks by its own rewards, the row still reports the training reward of its picks
    other = np.array([[9.0, 0, 0, 0], [0, 9.0, 0, 0]])
    assert bon_rows(cands, [4], other)[0]["reward_mean"] == pytest.approx((0.1 - 1.0) / 2)


def test_bon_gain_over_n1_is_paired_over_prompts_with_an_interval_around_it():
    from policy.train.bon import bon_rows
    from policy.train.candidates import Candidates

    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(12, 4))
    cands = Candidates([str(i) for i in range(12)], [["x"] * 4] * 12, [[[1]] * 4] * 12, [[1]] * 12, rewards, {})
    rows = bon_rows(cands, [1, 4])
    gain = rewards.max(axis=1) - rewards[:, 0]
    assert rows[0]["gain_over_first"] == 0 and rows[0]["gain_ci"] == [0.0, 0.0]
    assert rows[1]["gain_over_first"] == pytest.approx(gain.mean())
    low, high = rows[1]["gain_ci"]
    assert 0 <= low < gain.mean() < high  # best of 4 never loses to its own first sample


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16])
def test_analytic_kl_matches_exact_kl_on_a_fine_distribution(n):
    from policy.train.bon import bon_kl, bon_kl_exact

    rng = np.random.default_rng(n)
    probs = rng.dirichlet(np.ones(20_000))  # any base distribution; rewards all distinct (sorted order)
    exact = bon_kl_exact(probs, n)
    assert exact == pytest.approx(bon_kl(n), abs=2e-3)
    assert exact <= bon_kl(n) + 1e-9  # the formula is an upper bound on a discrete distribution


def test_exact_kl_matches_a_monte_carlo_estimate():
    """Brute force: draw n base samples many times, keep the best, and estimate KL from the empirical picks."""
    from policy.train.bon import bon_kl_exact

    probs = np.array([0.1, 0.2, 0.3, 0.4])
    rng = np.random.default_rng(0)
    draws = rng.choice(4, size=(200_000, 4), p=probs).max(axis=1)  # index = reward rank
    q = np.bincount(draws, minlength=4) / len(draws)
    monte_carlo = float(np.sum(q * np.log(q / probs)))
    assert bon_kl_exact(probs, 4) == pytest.approx(monte_carlo, abs=5e-3)


def test_policy_bon_writes_one_responses_file_per_n(tiny_causal_lm, tiny_encoder, tmp_path):
    from core.config import load_config
    from policy.train.bon import BonConfig, run_bon

    prompts = write_prompts(tmp_path)
    rm = save_tiny_rm(tiny_encoder, tmp_path / "rm")
    cfg = load_config(BonConfig, overrides={
        "policy": tiny_causal_lm, "reward_model": rm, "prompts": str(prompts / "eval.jsonl"),
        "out": str(tmp_path / "bon"), "n": 4, "ns": [1, 2, 4], "max_completion_length": 6})
    report = run_bon(cfg)
    assert [r["n"] for r in report["rows"]] == [1, 2, 4] and report["samples"] == 2 * 4
    cands = [json.loads(line) for line in open(tmp_path / "bon" / "candidates.jsonl")]
    assert len(cands) == 8
    by_prompt = {}
    for c in cands:
        by_prompt.setdefault(c["prompt_id"], []).append(c)
    for row in report["rows"]:
        picked = [json.loads(line) for line in open(row["responses"])]
        assert [p["prompt_id"] for p in picked] == ["p4", "p5"]
        for p in picked:
            first_n = sorted(by_prompt[p["prompt_id"]], key=lambda c: c["sample"])[:row["n"]]
            best = max(first_n, key=lambda c: c["reward"])
            assert p["sample"] == best["sample"] and p["response"] == best["response"]
    assert report["rows"][-1]["reward_mean"] >= report["rows"][0]["reward_mean"]
