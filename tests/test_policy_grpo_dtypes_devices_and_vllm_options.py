"""GRPO at scale, what can be checked on CPU: the policy and its reference model load in `policy_dtype` (through
TRL's `model_init_kwargs`); the reward model goes to the device it is given (the local rank's) in `rm_dtype`
(auto: bf16 on CUDA, fp32 on CPU); the vLLM options reach TRL's GRPOConfig; a ZeRO-3 config that would save
unloadable shards is refused; a LoRA run's saved policy is the base with the adapter merged."""
from __future__ import annotations

import pytest
import torch

from core.schema import PromptItem, StudentProfile, write_jsonl

BASE = {"beta": 0.04, "loss_type": "grpo", "out": "/tmp/unused"}


@pytest.mark.parametrize("dtype, device, want_device, want_dtype", [
    ("auto", "cuda:1", "cuda:1", torch.bfloat16),    # rank 1's GPU, not device 0
    ("auto", "cuda:0", "cuda:0", torch.bfloat16),
    ("auto", "cpu", "cpu", torch.float32),            # the CPU demo scores in fp32 as before
    ("float32", "cuda:3", "cuda:3", torch.float32),
    ("bfloat16", "cpu", "cpu", torch.bfloat16),
])
def test_rm_placement_follows_the_given_device(dtype, device, want_device, want_dtype):
    from core.reward_client import rm_placement

    got_device, got_dtype = rm_placement(dtype, device)
    assert got_device == torch.device(want_device) and got_dtype == want_dtype


def test_rm_loads_on_the_device_in_the_dtype(tiny_encoder, tmp_path):
    import numpy as np

    from core.reward_client import load_scoring_rm
    from core.reward_model import HPCRewardModel

    HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=64).save_pretrained(tmp_path / "rm")
    fp32 = load_scoring_rm(str(tmp_path / "rm"), "cpu", "auto")
    bf16 = load_scoring_rm(str(tmp_path / "rm"), torch.device("cpu"), "bfloat16")
    assert {p.dtype for p in fp32.parameters()} == {torch.float32}
    assert {p.dtype for p in bf16.backbone.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in bf16.heads.parameters()} == {torch.float32}  # pooling and heads stay fp32
    assert {p.device.type for p in bf16.parameters()} == {"cpu"}
    contexts, responses = ["Student: 3 + 4 = 8?"] * 2, ["Count again.", "What is 3 + 4?"]
    a, b = fp32.score(contexts, responses), bf16.score(contexts, responses)
    assert all(np.abs(a[d] - b[d]).max() < 0.05 for d in a)


def test_policy_dtype_reaches_model_init_kwargs():
    from core.config import load_config
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import trl_args

    assert trl_args(load_config(GRPORunConfig, overrides=BASE), [1.0]).model_init_kwargs == {"dtype": "float32"}
    for dtype in ("bfloat16", "auto"):
        args = trl_args(load_config(GRPORunConfig, overrides={**BASE, "policy_dtype": dtype}), [1.0])
        assert args.model_init_kwargs == {"dtype": dtype}


def test_shipped_demo_config_trains_fp32_master_weights():
    from core.config import load_config
    from policy.train.config import GRPORunConfig

    assert load_config(GRPORunConfig, "configs/policy/tiny.yaml").policy_dtype == "float32"
    assert load_config(GRPORunConfig, "configs/policy/7b.yaml").policy_dtype == "bfloat16"


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "rl.jsonl"
    profile = StudentProfile(grade="5th grade", interests=["football"])
    write_jsonl(path, [PromptItem(id=f"p{i}", source="gsm8k", problem_id=f"q{i}", kind="single_turn",
                                  profile=profile, problem=f"What is {i} + 5?", reference_solution=f"#### {i + 5}")
                       for i in range(2)])
    return str(path)


def test_bf16_policy_and_reference_model_are_built_in_bf16(tiny_causal_lm, prompts, tmp_path):
    from core.config import load_config
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import build_trainer

    cfg = load_config(GRPORunConfig, overrides={
        **BASE, "policy": tiny_causal_lm, "reward_model": "", "prompts": prompts, "out": str(tmp_path),
        "policy_dtype": "bfloat16", "extra_rewards": {"length_penalty": {}}, "num_generations": 2,
        "prompts_per_step": 1})
    trainer, _ = build_trainer(cfg)
    assert trainer.accelerator.unwrap_model(trainer.model).dtype == torch.bfloat16
    assert trainer.ref_model is not None and next(trainer.ref_model.parameters()).dtype == torch.bfloat16


def test_vllm_options_reach_the_grpo_config():
    from core.config import load_config
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import trl_args

    cfg = load_config(GRPORunConfig, overrides={**BASE, "vllm": {
        "enabled": True, "mode": "colocate", "max_model_length": 2048, "enable_sleep_mode": True,
        "gpu_memory_utilization": 0.5, "tensor_parallel_size": 2, "server_base_url": "http://node2:8000",
        "server_timeout": 900}})
    args = trl_args(cfg, [1.0])
    assert args.use_vllm and args.vllm_mode == "colocate"
    assert args.vllm_max_model_length == 2048 and args.vllm_enable_sleep_mode is True
    assert args.vllm_gpu_memory_utilization == 0.5 and args.vllm_tensor_parallel_size == 2
    assert args.vllm_server_base_url == "http://node2:8000" and args.vllm_server_timeout == 900
    off = trl_args(load_config(GRPORunConfig, overrides=BASE), [1.0])
    assert not off.use_vllm and off.vllm_max_model_length is None and off.vllm_enable_sleep_mode is False


def test_zero3_without_gathered_save_is_refused():
    from core.config import ConfigError, load_config
    from policy.train.config import GRPORunConfig

    zero3 = {"zero_optimization": {"stage": 3}}
    with pytest.raises(ConfigError, match="stage3_gather_16bit_weights_on_model_save"):
        load_config(GRPORunConfig, overrides={**BASE, "deepspeed": zero3})
    zero3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = True
    assert load_config(GRPORunConfig, overrides={**BASE, "deepspeed": zero3}).deepspeed == zero3


def test_zero3_json_file_without_gathered_save_is_refused(tmp_path):
    """The same check reads a DeepSpeed JSON file named by path (how configs name them), not only an inline dict."""
    import json

    from core.config import ConfigError, load_config
    from policy.train.config import GRPORunConfig

    path = tmp_path / "zero3.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    with pytest.raises(ConfigError, match="stage3_gather_16bit_weights_on_model_save"):
        load_config(GRPORunConfig, overrides={**BASE, "deepspeed": str(path)})
    assert load_config(GRPORunConfig, overrides={**BASE, "deepspeed": "configs/deepspeed/zero3.json"}).deepspeed
    with pytest.raises(ConfigError, match="deepspeed config .*missing.json: cannot read it"):
        load_config(GRPORunConfig, overrides={**BASE, "deepspeed": str(tmp_path / "missing.json")})


def test_lora_run_saves_the_base_with_the_adapter_merged(tiny_causal_lm, tiny_encoder, prompts, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.config import load_config
    from core.reward_model import HPCRewardModel
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import run_grpo

    HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=64).save_pretrained(tmp_path / "rm")
    cfg = load_config(GRPORunConfig, overrides={
        **BASE, "policy": tiny_causal_lm, "reward_model": str(tmp_path / "rm"), "prompts": prompts,
        "out": str(tmp_path / "run"), "num_generations": 2, "prompts_per_step": 2, "max_steps": 1,
        "max_completion_length": 6, "learning_rate": 0.05, "rollout_sampler": "torch", "save_steps": 1,
        "keep_checkpoints": True, "lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0}})
    assert run_grpo(cfg)["steps"] == 1
    policy = tmp_path / "run" / "policy"
    assert not (policy / "adapter_config.json").exists() and (policy / "config.json").exists()
    saved = AutoModelForCausalLM.from_pretrained(policy).state_dict()
    base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    assert any(not torch.equal(p, base.state_dict()[n]) for n, p in saved.items()), "the update was lost"
    # The adapter as trained (the step's checkpoint holds it), merged by peft, gives the same weights.
    merged = PeftModel.from_pretrained(base, tmp_path / "run" / "checkpoint-1").merge_and_unload().state_dict()
    assert set(merged) == set(saved)
    for name, value in merged.items():
        torch.testing.assert_close(saved[name], value)


def test_zero3_context_is_lifted_while_the_rm_loads():
    """Under a ZeRO-3 TrainingArguments transformers would build the RM inside zero.Init (partitioned weights no
    engine gathers); `whole_models_under_zero3` lifts that for the RM's load only."""
    from transformers.integrations import deepspeed as hf_deepspeed

    from policy.train.grpo import whole_models_under_zero3

    class Zero3:
        def is_zero3(self):
            return True

    config, saved = Zero3(), hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.set_hf_deepspeed_config(config)
    try:
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
        with whole_models_under_zero3():
            assert not hf_deepspeed.is_deepspeed_zero3_enabled()
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def test_build_trainer_loads_the_rm_on_the_trainers_device_in_rm_dtype(tiny_causal_lm, tiny_encoder, prompts,
                                                                        tmp_path, monkeypatch):
    import policy.train.grpo
    from core.config import load_config
    from core.reward_model import HPCRewardModel
    from policy.train.config import GRPORunConfig

    HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=64).save_pretrained(tmp_path / "rm")
    calls, real = [], policy.train.grpo.load_reward_model

    def recording(path, device=None, dtype="auto"):
        calls.append((device, dtype))
        return real(path, device, dtype)

    monkeypatch.setattr(policy.train.grpo, "load_reward_model", recording)
    cfg = load_config(GRPORunConfig, overrides={
        **BASE, "policy": tiny_causal_lm, "reward_model": str(tmp_path / "rm"), "prompts": prompts,
        "out": str(tmp_path / "run"), "num_generations": 2, "prompts_per_step": 1, "rm_dtype": "bfloat16"})
    trainer, cache = policy.train.grpo.build_trainer(cfg)
    assert calls == [(trainer.args.device, "bfloat16")] and trainer.args.device == trainer.accelerator.device
    assert {p.dtype for p in cache.rm.backbone.parameters()} == {torch.bfloat16}
    assert trainer.args.reward_weights == [0.4, 0.3, 0.3]
