"""DPO pairs respect the margin and never pair a response with itself (or a copy of it); pairs come from the RM's
ranking of samples or from labelled responses; one DPO step on tiny random models writes a policy that loads."""
from __future__ import annotations

import numpy as np
import pytest

from baselines_support import save_tiny_rm, write_prompts


def test_pairs_take_best_against_worst_and_respect_the_margin():
    from policy.train.dpo import best_worst_pairs

    groups = [("a", ["x", "y", "z"], np.array([0.2, 0.9, 0.5])),   # best y, worst x: margin 0.7
              ("b", ["u", "v"], np.array([0.50, 0.55])),            # margin 0.05 < 0.1: no pair
              ("c", ["w", "w"], np.array([0.1, 0.8]))]              # the same text twice: never a pair
    pairs = best_worst_pairs(groups, min_margin=0.1)
    assert pairs == [{"prompt": "a", "chosen": "y", "rejected": "x", "margin": pytest.approx(0.7)}]
    assert len(best_worst_pairs(groups, min_margin=0.0)) == 2


def test_a_copy_of_the_best_is_skipped_for_the_worst_distinct_response():
    from policy.train.dpo import best_worst_pairs

    pairs = best_worst_pairs([("p", ["good", "ok", " good "], np.array([0.9, 0.4, 0.1]))], min_margin=0.0)
    assert pairs[0]["chosen"] == "good" and pairs[0]["rejected"] == "ok"
    assert best_worst_pairs([("p", ["same", "same"], np.array([1.0, 1.0]))], 0.0) == []  # ties give no pair


def test_pairs_from_labels_rank_responses_per_context(tmp_path):
    from core.config import load_config
    from core.schema import write_jsonl
    from policy.train.dpo import DPORunConfig, best_worst_pairs, label_groups

    def label(i, response, level, annotator="llm:a", context="ctx"):
        return {"id": f"i{i}", "context": context, "response": response, "annotator": annotator,
                "scores": {"Helpfulness": level, "Personalization": level, "Creativity": level}}

    write_jsonl(tmp_path / "labels.jsonl", [label(0, "great", 2), label(0, "great", 1, "human:b"), label(1, "meh", 1),
                                            label(2, "bad", 0), label(3, "alone", 2, context="other")])
    cfg = load_config(DPORunConfig, overrides={"pairs_from": "labels", "labels": str(tmp_path / "labels.jsonl"),
                                               "label_prompts": None})
    groups = label_groups(cfg)
    pairs = best_worst_pairs(groups, min_margin=1.0)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("great", "bad")]  # 'other' has one response only
    assert pairs[0]["prompt"] == [{"role": "user", "content": "ctx"}]
    assert pairs[0]["margin"] == pytest.approx(1.5)  # mean of the two annotators' levels, weights summing to 1


def test_dpo_step_from_rm_ranking_writes_a_loadable_policy(tiny_causal_lm, tiny_encoder, tmp_path):
    from transformers import AutoModelForCausalLM

    from core.config import load_config
    from policy.train.dpo import DPORunConfig, run_dpo

    prompts = write_prompts(tmp_path)
    rm = save_tiny_rm(tiny_encoder, tmp_path / "rm")
    cfg = load_config(DPORunConfig, overrides={
        "policy": tiny_causal_lm, "reward_model": rm, "prompts": str(prompts / "rl.jsonl"), "out": str(tmp_path / "dpo"),
        "n": 3, "max_steps": 1, "batch_size": 2, "max_completion_length": 6, "beta": 0.2, "loss_type": "ipo"})
    summary = run_dpo(cfg)
    assert summary["steps"] == 1 and summary["samples_drawn"] == 12 and 1 <= summary["pairs"] <= 4
    assert summary["loss_type"] == "ipo"
    assert AutoModelForCausalLM.from_pretrained(summary["policy"]).config.num_hidden_layers == 2
