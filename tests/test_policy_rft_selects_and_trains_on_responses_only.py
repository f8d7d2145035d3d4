"""RFT keeps the top-k (or above-threshold) samples per prompt, its SFT loss covers only the response tokens (the
labels mask of TRL's collator), and one iteration on tiny random models writes a policy transformers loads."""
from __future__ import annotations

import json

import numpy as np
import pytest

from baselines_support import save_tiny_rm, write_prompts


def test_select_keeps_top_k_or_those_above_the_threshold():
    from policy.train.rft import select

    rewards = np.array([[0.1, 0.9, 0.3, 2.0], [5.0, -1.0, 4.0, 6.0]])
    assert select(rewards, 1) == [[3], [3]]
    assert select(rewards, 2) == [[3, 1], [3, 0]]
    assert select(rewards, 2, threshold=0.5) == [[1, 3], [0, 2, 3]]
    assert select(rewards, 1, threshold=10.0) == [[], []]


def test_sft_labels_cover_only_the_response_tokens(tiny_causal_lm, tmp_path):
    from core.config import load_config
    from policy.train.methods import TrainOptions
    from policy.train.sft import build_sft_trainer, sft_records

    prompt = [{"role": "system", "content": "You are a tutor."}, {"role": "user", "content": "Is it 12?"}]
    response = "What do you get when you take 3 away from 7?"
    cfg = load_config(TrainOptions, overrides={"policy": tiny_causal_lm, "max_steps": 1, "batch_size": 1})
    trainer = build_sft_trainer(cfg, sft_records([{"prompt": prompt}], [[response]]), tmp_path / "sft")
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    tokenizer = trainer.processing_class
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert ids[:len(prompt_ids)] == prompt_ids
    assert all(label == -100 for label in labels[:len(prompt_ids)])  # no loss on the prompt
    trained = [i for i, label in zip(ids, labels) if label != -100]
    assert trained == ids[len(prompt_ids):] and len(trained) > 0
    assert response in tokenizer.decode(trained)


@pytest.mark.parametrize("threshold", [None])
def test_rft_iteration_trains_a_policy_transformers_loads(tiny_causal_lm, tiny_encoder, tmp_path, threshold):
    from transformers import AutoModelForCausalLM

    from core.config import load_config
    from policy.train.rft import RFTConfig, run_rft

    prompts = write_prompts(tmp_path)
    rm = save_tiny_rm(tiny_encoder, tmp_path / "rm")
    cfg = load_config(RFTConfig, overrides={
        "policy": tiny_causal_lm, "reward_model": rm, "prompts": str(prompts / "rl.jsonl"), "out": str(tmp_path / "rft"),
        "n": 3, "top_k": 1, "iterations": 2, "max_steps": 1, "batch_size": 2, "max_completion_length": 6,
        "learning_rate": 1e-3, "threshold": threshold})
    summary = run_rft(cfg)
    assert summary["samples_drawn"] == 2 * 4 * 3 and [h["kept"] for h in summary["iterations"]] == [4, 4]
    assert summary["iterations"][1]["policy"].endswith("iteration-0/policy")  # expert iteration: from the last one
    assert AutoModelForCausalLM.from_pretrained(summary["policy"]).config.num_hidden_layers == 2
    run = json.loads((tmp_path / "rft" / "run.json").read_text())
    assert run["base_policy"] == tiny_causal_lm and run["steps"] == 1
    for iteration in (0, 1):
        kept = summary["iterations"][iteration]
        assert kept["reward_kept"] >= kept["reward_all"]
