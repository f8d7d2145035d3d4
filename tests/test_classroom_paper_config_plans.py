"""configs/policy/classroom_paper.yaml holds PedagogicalRL's recipe, and `python -m pipeline plan` estimates the
classroom stages of configs/classroom_paper.yaml: the tutor's ZeRO-3 processes with a sleeping colocated vLLM, and
the student's and judges' vLLM servers on the GPUs the config places them on."""
from __future__ import annotations

from pathlib import Path

from core.config import load_config

REPO = Path(__file__).resolve().parent.parent


def test_paper_config_has_the_papers_values():
    from policy.classroom.config import ClassroomConfig
    from policy.classroom.eval import ClassroomEvalConfig

    cfg = load_config(ClassroomConfig, REPO / "configs/policy/classroom_paper.yaml")
    assert (cfg.policy, cfg.student.openai.model, cfg.judges.openai.model) == (
        "Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-14B-Instruct")
    assert not cfg.lora.enabled and "zero3" in str(cfg.deepspeed)
    assert (cfg.learning_rate, cfg.beta, cfg.num_iterations) == (5e-7, 0.001, 2)
    assert cfg.extra_rewards["judges"] == {"penalty": 1.0, "mode": "hard"} and cfg.judges.judge_before_solving
    assert cfg.micro_batch == 2 and cfg.num_generations == 8
    assert cfg.micro_batch * 4 * cfg.steps_per_generation == 16 * 8  # 16 problems x 8 samples on 4 GPUs
    assert cfg.student.max_solution_tokens == 3900 and not cfg.dialogue.think and cfg.reward_model is None
    assert cfg.grader == "boxed" and cfg.dialogue.tutor_opening == "system_prompt"
    assert (cfg.judges.samples, cfg.judges.temperature) == (2, 0.6)
    assert cfg.vllm.enable_sleep_mode
    ecfg = load_config(ClassroomEvalConfig, REPO / "configs/policy/classroom_eval_paper.yaml")
    assert ecfg.judges.openai.model != cfg.judges.openai.model and ecfg.temperature == 0.6
    assert ecfg.personas == ["cooperative", "adversarial"]


def test_plan_estimates_the_classroom_stages():
    from pipeline.plan import memory_plan, render
    from pipeline.stages import PipelineConfig

    cfg = load_config(PipelineConfig, REPO / "configs/classroom_paper.yaml")
    plan = memory_plan(cfg, ["classroom", "classroom_eval"])
    train, evaluation = plan["stages"]
    assert train["estimated"] and evaluation["estimated"] and plan["fits"]
    assert [(r["role"].split(" (")[0], r["gpus"]) for r in train["roles"]] == [
        ("tutor training process", 4), ("student vLLM server GPU", 1), ("judges vLLM server GPU", 1)]
    assert train["gpus_needed"] == 6
    items = {i["name"]: i for i in train["roles"][0]["items"]}
    assert items["vLLM share (colocate)"]["phase"] == "generation"  # asleep while the tutor trains
    assert "2 seq x 8192 tokens" in items["activations (with gradient checkpointing)"]["source"]
    assert evaluation["roles"][-1]["gpus"] == 2  # the eval's own 32B judge, tensor parallel over GPUs 6-7
    assert "not estimated" not in render(plan)
