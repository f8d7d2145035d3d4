"""`policy sft` trains on the teacher turns kept with MathDial dialogues and writes a policy transformers loads."""
from __future__ import annotations

from baselines_support import write_prompts


def test_sft_one_step_on_teacher_turns_writes_a_loadable_policy(tiny_causal_lm, tmp_path):
    from transformers import AutoModelForCausalLM

    from core.config import load_config
    from policy.train.sft import SFTRunConfig, run_sft, teacher_turn_rows

    prompts = write_prompts(tmp_path, count=8)
    cfg = load_config(SFTRunConfig, overrides={
        "policy": tiny_causal_lm, "prompts": str(prompts / "rl.jsonl"), "also_from": [], "out": str(tmp_path / "sft"),
        "max_steps": 1, "batch_size": 2, "learning_rate": 1e-3})
    rows, turns = teacher_turn_rows(cfg)
    assert [r["id"] for r in rows] == ["p1", "p3", "p5"]  # only the dialogues with a real teacher turn
    assert turns[0] == ["What do you get when you take 3 away from 8?"]
    summary = run_sft(cfg)
    assert summary["examples"] == 3 and summary["steps"] == 1
    assert AutoModelForCausalLM.from_pretrained(summary["policy"]).config.num_hidden_layers == 2


def test_sft_without_teacher_turns_is_bad_input(tiny_causal_lm, tmp_path):
    import pytest

    from core.config import ConfigError, load_config
    from core.schema import PromptItem, read_jsonl, write_jsonl
    from policy.train.sft import SFTRunConfig, run_sft

    prompts = write_prompts(tmp_path)
    singles = [item for item in read_jsonl(prompts / "rl.jsonl", PromptItem) if not item.reference_responses]
    write_jsonl(tmp_path / "single.jsonl", singles)
    cfg = load_config(SFTRunConfig, overrides={"policy": tiny_causal_lm, "prompts": str(tmp_path / "single.jsonl"),
                                               "also_from": [], "out": str(tmp_path / "sft")})
    with pytest.raises(ConfigError, match="no teacher turn left"):
        run_sft(cfg)
    assert not (tmp_path / "sft").exists()
