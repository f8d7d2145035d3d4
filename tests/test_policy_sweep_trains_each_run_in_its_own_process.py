"""A sweep run trains in a child process (`python -m policy grpo --config <the run's resolved config>`), so whatever
it holds (a colocated vLLM engine, CUDA memory) ends with it: the sweep's own process never builds a trainer; a run
that fails stops the sweep with the command that reruns it alone; `launcher` prefixes the command."""
from __future__ import annotations

import sys

import pytest

from core.schema import PromptItem, StudentProfile, write_jsonl


@pytest.fixture(scope="module")
def template(tiny_causal_lm, tiny_encoder, tmp_path_factory):
    from core.config import load_config
    from core.reward_model import HPCRewardModel
    from policy.train.config import GRPORunConfig

    folder = tmp_path_factory.mktemp("sweep-run")
    HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=64).save_pretrained(folder / "rm")
    profile = StudentProfile(grade="5th grade")
    write_jsonl(folder / "rl.jsonl", [PromptItem(id=f"p{i}", source="gsm8k", problem_id=f"q{i}", kind="single_turn",
                                                 profile=profile, problem=f"What is {i} + 5?",
                                                 reference_solution=f"#### {i + 5}") for i in range(2)])
    return load_config(GRPORunConfig, overrides={
        "policy": tiny_causal_lm, "reward_model": str(folder / "rm"), "prompts": str(folder / "rl.jsonl"),
        "beta": 0.04, "loss_type": "grpo", "max_steps": 1, "prompts_per_step": 2, "num_generations": 2,
        "max_completion_length": 4, "rollout_sampler": "torch"})


def test_a_run_trains_in_a_child_process(template, tmp_path, monkeypatch):
    import policy.train.grpo
    from policy.experiments.sweep import train_in_own_process

    def no_trainer_here(*args, **kwargs):
        raise AssertionError("the sweep's own process built a trainer")

    monkeypatch.setattr(policy.train.grpo, "build_trainer", no_trainer_here)
    monkeypatch.setattr(policy.train.grpo, "run_grpo", no_trainer_here)
    run = template.model_copy(update={"weights": {"Helpfulness": 1.0, "Personalization": 0.0, "Creativity": 0.0},
                                      "out": str(tmp_path / "run")})
    train_in_own_process(run, tmp_path / "run_configs" / "run.yaml")
    assert (tmp_path / "run" / "policy" / "config.json").exists()
    from core.config import load_config
    from policy.train.config import GRPORunConfig

    assert load_config(GRPORunConfig, tmp_path / "run_configs" / "run.yaml") == run  # the resolved config


def test_a_failed_run_stops_the_sweep_with_its_rerun_command(template, tmp_path):
    from policy.experiments.sweep import train_in_own_process

    broken = template.model_copy(update={"prompts": str(tmp_path / "absent.jsonl"), "out": str(tmp_path / "run")})
    with pytest.raises(RuntimeError, match=r"sweep run broken failed \(exit status 2.*rerun it alone with: .*"
                                           r"-m policy grpo --config .*broken\.yaml"):
        train_in_own_process(broken, tmp_path / "broken.yaml")
    assert not (tmp_path / "run").exists()


def test_launcher_prefixes_the_training_command(tmp_path):
    from policy.experiments.sweep import train_command

    config = tmp_path / "w.yaml"
    assert train_command("", config) == [sys.executable, "-m", "policy", "grpo", "--config", str(config)]
    assert train_command("accelerate launch --config_file 'my dir/acc.yaml'", config) == [
        "accelerate", "launch", "--config_file", "my dir/acc.yaml", "-m", "policy", "grpo", "--config", str(config)]
