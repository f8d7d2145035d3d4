"""A 2-step GRPO run on tiny random models writes a policy that loads with plain transformers, logs every reward by
name, resumes from its checkpoint, and `python -m policy eval` reports on its outputs."""
from __future__ import annotations

import json

import pytest

from core.schema import PromptItem, StudentProfile, Turn, write_jsonl


@pytest.fixture(scope="module")
def prompt_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prompts")
    profile = StudentProfile(grade="5th grade", interests=["football"], misconception="adds instead of subtracting")
    items = []
    for i in range(6):
        items.append(PromptItem(
            id=f"p{i}", source="gsm8k", problem_id=f"q{i}", kind="multi_turn" if i % 2 else "single_turn",
            profile=profile, problem=f"Sam has {i + 7} apples and gives away 3. How many are left?",
            turns=[Turn(role="student", text=f"Is it {i + 10}?")] if i % 2 else [],
            reference_solution=f"{i + 7} - 3 = {i + 4}\n#### {i + 4}",
        ))
    write_jsonl(folder / "rl.jsonl", items[:4])
    write_jsonl(folder / "eval.jsonl", items[4:])
    return folder


@pytest.fixture(scope="module")
def tiny_rm(tiny_encoder, tmp_path_factory):
    from core.reward_model import HPCRewardModel

    path = tmp_path_factory.mktemp("rm")
    HPCRewardModel.from_backbone(tiny_encoder, "hpc").save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def grpo_run(tiny_causal_lm, tiny_rm, prompt_files, tmp_path_factory):
    from core.config import load_config
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import run_grpo

    out = tmp_path_factory.mktemp("grpo")
    cfg = load_config(GRPORunConfig, overrides={
        "policy": tiny_causal_lm, "reward_model": tiny_rm, "prompts": str(prompt_files / "rl.jsonl"),
        "out": str(out), "beta": 0.04, "loss_type": "grpo", "max_steps": 2, "prompts_per_step": 2,
        "num_generations": 2, "max_completion_length": 8, "save_steps": 1, "learning_rate": 1e-3,
        "extra_rewards": {"answer_leak": {"penalty": 1.0, "mode": "soft"}, "length_penalty": {}},
        "keep_checkpoints": True,
    })
    return cfg, run_grpo(cfg)


def test_grpo_writes_policy_loadable_by_transformers(grpo_run):
    from transformers import AutoModelForCausalLM

    cfg, summary = grpo_run
    assert summary["steps"] == 2
    assert summary["reward_functions"] == ["Helpfulness", "Personalization", "Creativity", "answer_leak",
                                           "length_penalty"]
    assert summary["reward_weights"] == [0.4, 0.3, 0.3, 1.0, 1.0]
    model = AutoModelForCausalLM.from_pretrained(summary["policy"])
    assert model.config.num_hidden_layers == 2
    logs = [json.loads(line) for line in open(f"{cfg.out}/train_log.jsonl")]
    step_logs = [log for log in logs if "rewards/Helpfulness/mean" in log]
    assert len(step_logs) == 2
    assert all("kl" in log and "time/generate_s" in log and "time/reward_s" in log for log in step_logs)
    # One RM forward per generation batch, not one per head.
    assert summary["rm_forwards"] == 2
    assert summary["samples"] == 2 * 2 * 2  # steps x prompts_per_step x num_generations


def test_two_iterations_per_batch_generate_half_the_samples(tiny_causal_lm, tiny_rm, prompt_files, tmp_path):
    from core.config import load_config
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import run_grpo

    cfg = load_config(GRPORunConfig, overrides={
        "policy": tiny_causal_lm, "reward_model": tiny_rm, "prompts": str(prompt_files / "rl.jsonl"),
        "out": str(tmp_path), "beta": 0.04, "loss_type": "grpo", "max_steps": 4, "prompts_per_step": 2,
        "num_generations": 2, "max_completion_length": 4, "save_steps": 10, "num_iterations": 2})
    summary = run_grpo(cfg)
    assert summary["steps"] == 4 and summary["samples"] == 8 and summary["rm_forwards"] == 2


def test_resume_continues_from_checkpoint(grpo_run, tiny_rm):
    from policy.train.grpo import run_grpo

    cfg, _ = grpo_run
    summary = run_grpo(cfg.model_copy(update={"max_steps": 3}))
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert summary["steps"] == 3


def test_finished_run_drops_its_resume_checkpoints_by_default(grpo_run, tmp_path):
    from pathlib import Path

    from policy.train.grpo import run_grpo

    cfg, _ = grpo_run
    assert sorted(p.name for p in Path(cfg.out).glob("checkpoint-*"))  # kept when asked
    summary = run_grpo(cfg.model_copy(update={"out": str(tmp_path), "max_steps": 1, "keep_checkpoints": False}))
    assert summary["steps"] == 1 and Path(summary["policy"], "config.json").exists()
    assert not list(tmp_path.glob("checkpoint-*"))


def test_eval_reports_on_tiny_run(grpo_run, prompt_files, tmp_path):
    from core.config import load_config
    from policy.evaluation.evaluate import EvalConfig, evaluate_policies

    cfg, _ = grpo_run
    gsm8k = tmp_path / "gsm8k.jsonl"
    gsm8k.write_text('{"question": "What is 2+3?", "answer": "2+3=<<2+3=5>>5\\n#### 5"}\n'
                     '{"question": "What is 4*2?", "answer": "4*2=8\\n#### 8"}\n')
    eval_cfg = load_config(EvalConfig, overrides={
        "run": cfg.out, "prompts": str(prompt_files / "eval.jsonl"), "samples_per_prompt": 2,
        "gsm8k": str(gsm8k), "out": str(tmp_path / "eval"), "bootstrap_resamples": 200,
    })
    report = evaluate_policies(eval_cfg)
    assert set(report["difference"]) == {"Helpfulness", "Personalization", "Creativity", "weighted"}
    for d in report["difference"].values():
        assert d["low"] <= d["mean"] <= d["high"]
    assert 0 <= report["win_rate"]["mean"] <= 1
    assert report["kl_tuned_base"]["per_sequence"]["n"] == 4
    assert report["gsm8k_perplexity"]["base"] > 1
    assert 0 < report["tuned"]["distinct_1"] <= 1
    assert report["training"]["frac_reward_zero_std"] is not None
    assert report["lm_eval"]["ran"] is False and "lm_eval --model hf" in report["lm_eval"]["command"]
    for name in ("report.md", "report.json", "responses.jsonl", "dimension_changes.png", "training_curves.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    assert "| Helpfulness |" in (tmp_path / "eval" / "report.md").read_text()


def test_bf16_rollout_copy_samples_and_follows_the_trained_weights(tiny_causal_lm, tiny_rm, prompt_files, tmp_path):
    import torch

    from core.config import load_config
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import build_trainer

    cfg = load_config(GRPORunConfig, overrides={
        "policy": tiny_causal_lm, "reward_model": tiny_rm, "prompts": str(prompt_files / "rl.jsonl"),
        "out": str(tmp_path), "beta": 0.04, "loss_type": "grpo", "max_steps": 2, "prompts_per_step": 2,
        "num_generations": 2, "max_completion_length": 8, "save_steps": 10, "learning_rate": 1e-2,
        "rollout_dtype": "bfloat16", "rollout_sampler": "inverse_cdf", "bf16": True,
    })
    trainer, _ = build_trainer(cfg)
    policy = trainer.accelerator.unwrap_model(trainer.model)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    trainer.train()
    copy = trainer._rollout_model
    # Generation went through the copy: made at step 0, refreshed for the generation of step 1.
    assert copy is not None and trainer._rollout_synced_step == 1
    assert all(p.dtype == torch.bfloat16 for p in copy.parameters())
    assert all(p.dtype == torch.float32 for p in policy.parameters())
    assert any(not torch.equal(before[n], p) for n, p in policy.named_parameters())
    trainer.rollout_model()  # the policy changed in step 2: the copy takes its new weights
    for (name, source), target in zip(policy.named_parameters(), copy.parameters(), strict=True):
        assert torch.equal(target, source.detach().to(torch.bfloat16)), name
    # The copy computes with its own bf16 weights: Accelerate's bf16 autocast wrapper on the policy's `forward`
    # (whose closure holds the policy) must not come along with the deepcopy.
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert copy(ids).logits.dtype == torch.bfloat16
        copy.lm_head.weight.zero_()
        assert torch.count_nonzero(copy(ids).logits) == 0


def test_lora_rollout_copy_is_the_merged_policy_and_follows_the_adapter(tiny_causal_lm, tiny_rm, prompt_files,
                                                                         tmp_path):
    import torch
    from peft import PeftModel

    from core.config import load_config
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import build_trainer

    cfg = load_config(GRPORunConfig, overrides={
        "policy": tiny_causal_lm, "reward_model": tiny_rm, "prompts": str(prompt_files / "rl.jsonl"),
        "out": str(tmp_path), "beta": 0.04, "loss_type": "grpo", "max_steps": 2, "prompts_per_step": 2,
        "num_generations": 2, "max_completion_length": 8, "save_steps": 10, "learning_rate": 5e-2,
        "rollout_dtype": "bfloat16", "bf16": True, "lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0},
    })
    trainer, _ = build_trainer(cfg)
    trainer.train()
    policy = trainer.accelerator.unwrap_model(trainer.model)
    assert isinstance(policy, PeftModel)
    trainer.rollout_model()  # after step 2: the copy takes the adapter's new weights
    copy = trainer._rollout_model
    assert not isinstance(copy, PeftModel) and not any("lora" in n for n, _ in copy.named_parameters())
    base = type(copy).from_pretrained(tiny_causal_lm).state_dict()
    merged = PeftModel.from_pretrained(type(copy).from_pretrained(tiny_causal_lm), _saved_adapter(trainer, tmp_path))
    merged = merged.merge_and_unload().state_dict()
    for name, value in copy.state_dict().items():
        assert value.dtype == torch.bfloat16
        torch.testing.assert_close(value, merged[name].to(torch.bfloat16), rtol=0, atol=0)
    assert any(not torch.equal(merged[n], base[n]) for n in merged if n.endswith("q_proj.weight")), \
        "the adapter's training never reached the copy"
    logs = [log for log in trainer.state.log_history if "loss" in log]
    assert all(0 <= log["tokens/padded_share"] < 1 for log in logs)


def _saved_adapter(trainer, tmp_path):
    folder = tmp_path / "adapter"
    trainer.accelerator.unwrap_model(trainer.model).save_pretrained(folder)
    return folder


def test_rollout_copy_is_refused_with_vllm():
    from core.config import ConfigError, load_config
    from policy.train.config import GRPORunConfig

    with pytest.raises(ConfigError, match="rollout_dtype"):
        load_config(GRPORunConfig, overrides={"beta": 0.0, "loss_type": "grpo", "rollout_dtype": "bfloat16",
                                              "vllm": {"enabled": True}})


def test_eval_scores_with_independent_judges_rms_and_tutorbench(grpo_run, prompt_files, tiny_causal_lm, tiny_encoder,
                                                               tmp_path):
    from core.config import load_config
    from core.reward_model import HPCRewardModel
    from core.rubric import load_rubric
    from core.validation_record import write_validation_record
    from policy.evaluation.evaluate import EvalConfig, evaluate_policies

    cfg, _ = grpo_run
    other_rm = tmp_path / "mrbench_rm"
    HPCRewardModel.from_backbone(tiny_encoder, "mrbench").save_pretrained(other_rm)
    strong = [[40, 2, 0], [2, 40, 2], [0, 2, 40]]  # a planted validation record on human labels: trusted
    write_validation_record(other_rm, {
        "rubric": "mrbench", "items": 130, "annotators": ["human:mrbench"], "human_labels": True,
        "dimensions": {d: {"qwk": 0.9, "n": 130, "confusion": strong} for d in load_rubric("mrbench").names}})
    gsm8k = tmp_path / "gsm8k.jsonl"
    gsm8k.write_text('{"question": "What is 2+3?", "answer": "2+3=5\\n#### 5"}\n'
                     '{"question": "What is 4*2?", "answer": "4*2=8\\n#### 8"}\n')
    eval_cfg = load_config(EvalConfig, overrides={
        "run": cfg.out, "prompts": str(prompt_files / "eval.jsonl"), "out": str(tmp_path / "eval"),
        "gsm8k": str(gsm8k), "gsm8k_items": 2, "bootstrap_resamples": 200,
        "judges": [f"local?model={tiny_causal_lm}&name=tiny&batch_size=4"], "judge_rubric": "mrbench",
        "rms": [str(other_rm)],
        "tutorbench": {"settings": ["pedagogy_following", "scaffolding_generation_hard"], "items": 3,
                       "max_new_tokens": 6, "gsm8k_accuracy_items": 2, "gsm8k_max_new_tokens": 8},
    })
    report = evaluate_policies(eval_cfg)
    assert set(report["independent"]) == {"judge:tiny", "rm:mrbench_rm"}
    judge = report["independent"]["judge:tiny"]["comparison"]
    assert set(judge) == {"Mistake_Identification", "Mistake_Location", "Providing_Guidance", "Actionability", "mean"}
    assert 0 <= judge["mean"]["win_rate"]["mean"] <= 1
    # A judge with no measured agreement with humans is shown but cannot raise the reward-hacking flag.
    assert report["independent"]["judge:tiny"]["standing"].startswith("unmeasured")
    assert report["independent"]["rm:mrbench_rm"]["standing"] == "trusted"  # by its validation record
    assert set(report["reward_hacking"]) == {"rm:mrbench_rm"}
    assert set(report["rule_checks"]["tuned"]) >= {"answer_leaked", "empty", "truncated", "length_tokens"}
    bench = report["tutorbench"]
    assert set(bench["settings"]) == {"pedagogy_following", "scaffolding_generation_hard"}
    scores = bench["settings"]["pedagogy_following"]["scores"]
    assert set(scores) == {"rm:training", "judge:tiny", "rm:mrbench_rm"}
    assert 0 <= scores["judge:tiny"]["tuned"]["win_rate"]["mean"] <= 1
    assert bench["gsm8k_accuracy"]["base"]["items"] == 2
    text = (tmp_path / "eval" / "report.md").read_text()
    assert text.index("## Verdict of the independent") < text.index("## Rule checks") < text.index("## Training RM")
    assert "| judge:tiny | judge | unmeasured" in text and "MathTutorBench-style" in text


def test_a_gain_only_the_training_rm_sees_is_flagged():
    import numpy as np

    from policy.evaluation.independent import hacking_gaps

    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.5, 40)
    boot = dict(n_resamples=500, seed=0)
    training = ({"H": base, "weighted": base}, {"H": base + 0.4 + rng.normal(0, 0.05, 40), "weighted": base + 0.4})
    tops = {"H": 2.0, "weighted": 2.0, "mean": 2.0}
    flat = ({"A": base}, {"A": base + rng.normal(0, 0.05, 40)}, 2.0)
    agrees = ({"A": base}, {"A": base + 0.4 + rng.normal(0, 0.05, 40)}, 2.0)
    gaps = hacking_gaps(training, tops, {"flat": flat, "agrees": agrees}, boot)
    assert gaps["flat"]["possible_reward_hacking"] and not gaps["agrees"]["possible_reward_hacking"]
    row = gaps["flat"]["rows"]["weighted vs A"]
    assert abs(row["training_gain"]["mean"] - 0.2) < 1e-9  # 0.4 on a 0..2 rubric
    assert abs(gaps["agrees"]["rows"]["weighted vs mean"]["gap"]["mean"]) < 0.02
    assert not gaps["flat"]["tuned_worse"] and not gaps["agrees"]["tuned_worse"]


def test_a_scorer_that_sees_the_tuned_policy_worse_flags_it_even_without_a_training_gain():
    import numpy as np

    from policy.evaluation.independent import hacking_gaps

    rng = np.random.default_rng(1)
    base = rng.uniform(0.5, 1.5, 40)
    boot = dict(n_resamples=500, seed=0)
    noise = rng.normal(0, 0.05, 40)
    training = ({"H": base, "weighted": base}, {"H": base + noise, "weighted": base + noise})
    worse = ({"A": base}, {"A": base - 0.3 + rng.normal(0, 0.05, 40)}, 2.0)
    gaps = hacking_gaps(training, {"H": 2.0, "weighted": 2.0}, {"worse": worse}, boot)
    assert gaps["worse"]["tuned_worse"]
    # the training RM saw nothing while the scorer saw a loss: the gap is positive too, and flagged
    assert gaps["worse"]["rows"]["weighted vs A"]["gap"]["low"] > 0


def test_sweep_reads_each_weighting_off_independent_scorers(grpo_run, prompt_files, tiny_encoder, tmp_path):
    import yaml

    from core.config import load_config
    from core.reward_model import HPCRewardModel
    from policy.experiments.sweep import SweepConfig, run_sweep

    cfg, _ = grpo_run
    grpo_yaml = tmp_path / "grpo.yaml"
    grpo_yaml.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude={"out"})))
    other_rm = tmp_path / "other_rm"
    HPCRewardModel.from_backbone(tiny_encoder, "mrbench").save_pretrained(other_rm)
    sweep_cfg = load_config(SweepConfig, overrides={
        "grpo_config": str(grpo_yaml), "max_steps": 1, "out": str(tmp_path / "sweep"),
        "eval": {"prompts": str(prompt_files / "eval.jsonl"), "rms": [str(other_rm)], "bootstrap_resamples": 200},
    })
    report = run_sweep(sweep_cfg)
    assert len(report["runs"]) == 4
    for run in report["runs"]:
        assert set(run["independent"]) == {"rm:other_rm"}
        assert "normalised_gain" in run["independent"]["rm:other_rm"]["mean"]
    assert "| rm:other_rm |" in (tmp_path / "sweep" / "sweep.md").read_text()


def test_a_judge_is_trusted_only_when_the_lower_bound_of_its_agreement_reaches_the_threshold():
    import numpy as np

    from policy.evaluation.independent import judge_standing

    strong = np.diag([60, 60, 60]) + 2  # 180 clear agreements, a little noise: QWK near 1, lower bound too
    weak = np.full((3, 3), 20)  # no agreement at all
    few = np.array([[3, 1, 0], [1, 2, 1], [0, 1, 3]])  # QWK 0.75 on 12 items: its lower bound is about 0.4
    assert judge_standing({"A": {"qwk": 0.95, "confusion": strong.tolist()}}, 0.5) == "trusted"
    assert judge_standing({"A": {"qwk": 0.0, "confusion": weak.tolist()}}, 0.2).startswith("untrusted")
    assert judge_standing({"A": {"qwk": 0.75, "confusion": few.tolist()}}, 0.6).startswith("untrusted")  # point: 0.75
    assert judge_standing({"A": {"qwk": 0.8}}, 0.2).startswith("unmeasured")  # no confusion: no bound
    assert judge_standing(None, 0.2).startswith("unmeasured")


def test_agreement_is_keyed_by_judge_and_rubric(tmp_path):
    import json

    from core.rubric import load_rubric
    from policy.evaluation.independent import judge_scorers, load_agreement

    path = tmp_path / "agreement.json"
    path.write_text(json.dumps({"rubric": {"name": "mrbench"}, "dimensions": {"Mistake_Identification": {
        "human_llm": {"llm:stub": {"qwk": 0.9, "n": 10, "confusion": [[5, 0], [0, 5]]}}}}}))
    agreement = load_agreement(str(path))
    assert set(agreement) == {("stub", "mrbench")}
    spec = "local?model=smollm2-135m-instruct&name=stub"
    on_mrbench = judge_scorers([spec], load_rubric("mrbench"), agreement)[0]
    on_hpc = judge_scorers([spec], load_rubric("hpc"), agreement)[0]
    assert on_mrbench.agreement and on_hpc.agreement is None  # checked on MRBench's rubric, not on HPC's
