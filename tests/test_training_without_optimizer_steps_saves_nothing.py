"""A training run with zero optimiser steps is an error, never a saved model (issue #32 point 4): `hpc_rm train`
with `epochs: -1` used to save an RM with random heads, exit status 0. The configs' bounds refuse such values first;
`core.optimizer_steps.RequireOptimizerSteps` is the rule behind them, in the RM trainer and the GRPO trainer alike,
for a length that passes the bounds but plans no step. Each run here bypasses the bounds (`model_copy`)."""
from __future__ import annotations

import pytest

from core.schema import LabeledItem, PromptItem, StudentProfile, write_jsonl
from core.optimizer_steps import NoOptimizerSteps


def test_rm_training_planning_no_step_is_an_error_and_saves_no_model(tiny_encoder, tmp_path):
    from core.rubric import load_rubric
    from hpc_rm.train import TrainConfig, train_and_save

    items = [LabeledItem(id=f"i{k}", context="Student: 2+2?", response=f"answer {k}", annotator="human:x",
                         scores={"Helpfulness": k % 3}) for k in range(4)]
    cfg = TrainConfig(backbone=tiny_encoder, out=tmp_path / "rm", max_length=32, progress=False)
    with pytest.raises(NoOptimizerSteps, match=r"^training would take 0 optimiser steps \(epochs -1.0, 4 items"):
        train_and_save(cfg.model_copy(update={"epochs": -1.0}), items, load_rubric("hpc"))
    assert not list((tmp_path / "rm").rglob("*.safetensors")) and not (tmp_path / "rm" / "config.json").exists()


def test_grpo_planning_no_step_is_an_error_and_saves_no_policy(tiny_causal_lm, tmp_path):
    from core.config import load_config
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import run_grpo

    prompts = tmp_path / "rl.jsonl"
    write_jsonl(prompts, [PromptItem(id=f"p{i}", source="gsm8k", problem_id=f"q{i}", kind="single_turn",
                                     profile=StudentProfile(grade="5th grade"), problem=f"What is {i} + 5?")
                          for i in range(2)])
    cfg = load_config(GRPORunConfig, overrides={
        "beta": 0.0, "loss_type": "grpo", "policy": tiny_causal_lm, "reward_model": "", "prompts": str(prompts),
        "out": str(tmp_path / "run"), "extra_rewards": {"length_penalty": {}}, "num_generations": 2,
        "prompts_per_step": 1, "max_completion_length": 4})
    with pytest.raises(NoOptimizerSteps, match=r"^training would take 0 optimiser steps \(max_steps 0\)"):
        run_grpo(cfg.model_copy(update={"max_steps": 0}))
    assert not (tmp_path / "run" / "policy").exists() and not (tmp_path / "run" / "run.json").exists()


def test_a_run_that_took_no_step_is_an_error_at_its_end():
    """The end check, for a trainer that planned steps but took none (e.g. a data loader that came up empty)."""
    from transformers import TrainerState

    from core.optimizer_steps import RequireOptimizerSteps

    guard, state = RequireOptimizerSteps("max_steps 5"), TrainerState(max_steps=5, global_step=0)
    guard.on_train_begin(None, state, None)
    with pytest.raises(NoOptimizerSteps, match=r"^training took 0 optimiser steps \(max_steps 5\); no model"):
        guard.on_train_end(None, state, None)
    state.global_step = 5
    guard.on_train_end(None, state, None)
