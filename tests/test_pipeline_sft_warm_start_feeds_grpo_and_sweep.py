"""A config with an `sft` stage (the tiny demo) runs the SFT warm start before GRPO, and GRPO and the sweep start
from its policy; a config without one (paper, 7b) runs no SFT and GRPO starts from its own config's policy."""
from pathlib import Path

from core.config import load_config
from pipeline.stages import PipelineConfig, default_stages, plan_stages

REPO = Path(__file__).resolve().parent.parent


def flag_value(argv: list, flag: str):
    argv = [str(a) for a in argv]
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_tiny_demo_trains_grpo_and_sweep_from_the_sft_warm_start(tmp_path):
    cfg = load_config(PipelineConfig, REPO / "configs" / "tiny.yaml", {"run_dir": str(tmp_path / "run")})
    stages = default_stages(cfg)
    assert stages.index("sft") < stages.index("grpo") < stages.index("sweep")
    plans = plan_stages(cfg)
    warm = str(tmp_path / "run" / "sft" / "policy")
    assert plans["sft"].outputs == [tmp_path / "run" / "sft" / "run.json"]
    assert flag_value(plans["sft"].argv, "--also-from") == f'["{tmp_path / "run" / "data" / "rm.jsonl"}"]'
    for name in ("grpo", "sweep"):
        assert flag_value(plans[name].argv, "--policy") == warm
        assert "sft" in plans[name].needs
        argv = [str(a) for a in plans[name].argv]  # after the stage's own config, so the warm start wins
        assert argv.index("--policy") > argv.index("--config")


def test_a_config_without_an_sft_stage_runs_none_and_grpo_starts_from_its_own_policy():
    cfg = load_config(PipelineConfig, REPO / "configs" / "paper.yaml")
    assert "sft" not in default_stages(cfg)
    plans = plan_stages(cfg)
    for name in ("grpo", "sweep"):
        assert "--policy" not in [str(a) for a in plans[name].argv]
        assert "sft" not in plans[name].needs


def test_sweep_overrides_reach_every_runs_grpo_config():
    from policy.experiments.sweep import SweepConfig, run_template

    file = load_config(SweepConfig, REPO / "configs" / "policy" / "sweep.yaml")
    plain = run_template(file)
    warm = run_template(file.model_copy(update={"policy": "runs/x/sft/policy", "max_completion_length": 128}))
    assert (warm.policy, warm.max_completion_length) == ("runs/x/sft/policy", 128)
    assert plain.policy == "smollm2-135m-instruct" and plain.max_completion_length == 40  # the GRPO file's own
    assert warm.max_steps == plain.max_steps == file.max_steps
