"""What the baselines (best-of-n, RM-filtered SFT, DPO, SFT) share with `policy grpo`, defined once.

- `TrainOptions`: the run options every method takes, built from `GRPORunConfig`'s own field definitions (the
  policy and its dtype, the reward model, the prompts, LoRA, DeepSpeed, bf16, report_to, ...), so a YAML key means
  the same thing, with the same bounds and help, in every method; each method adds only its own fields.
- `trainer_args`: TRL's SFTConfig/DPOConfig from those options (model dtype, LoRA via `peft_config`, DeepSpeed,
  checkpointing, report_to), in the same way `policy.train.grpo.trl_args` builds GRPOConfig.
- `train_and_save`: train, refuse a run without optimizer steps, save a policy that plain transformers loads
  (LoRA merged; `grpo.save_policy`), write run.json and train_log.jsonl in the layout `policy eval` reads.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from pydantic import Field, create_model

from core.config import Config, dump_config
from core.schema import write_json, write_jsonl, write_text
from policy.train.config import GRPORunConfig

SHARED_FIELDS = (
    "policy", "reward_model", "policy_dtype", "rm_dtype", "prompts", "max_prompts", "max_prompt_tokens",
    "system_prompt", "weights", "rm_batch_size", "learning_rate", "warmup_steps", "gradient_accumulation_steps",
    "gradient_checkpointing", "bf16", "seed", "max_completion_length", "temperature", "top_p", "lora", "deepspeed",
    "logging_steps", "report_to",
)

_Shared = create_model(  # the fields themselves (type, default, bounds, help) are GRPORunConfig's
    "_Shared", __base__=Config,
    **{name: (GRPORunConfig.model_fields[name].annotation, GRPORunConfig.model_fields[name]) for name in SHARED_FIELDS},
)


class TrainOptions(_Shared):
    """Options of every baseline method; each method's config subclasses it."""

    out: str = Field("runs/demo/baseline", description="output folder: the policy (or responses) and its logs")
    batch_size: int = Field(8, ge=1, description="sequences per device per optimizer micro-batch")
    sample_batch_size: int = Field(16, ge=1, description="batch size for sampling and RM scoring")
    max_steps: int = Field(20, ge=1, description="optimizer steps (per iteration where the method iterates)")


def lora_config(cfg: TrainOptions):
    from policy.train.grpo import lora_config as grpo_lora

    return grpo_lora(cfg)


def trainer_args(cfg: TrainOptions, config_class, out: Path, **extra):
    """TRL arguments (SFTConfig, DPOConfig) from the shared options; `extra` are the method's own."""
    import torch

    from core.trainer_args import checkpointing_args

    return config_class(
        output_dir=str(out), model_init_kwargs={"dtype": cfg.policy_dtype}, learning_rate=cfg.learning_rate,
        max_steps=cfg.max_steps, warmup_steps=cfg.warmup_steps, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, **checkpointing_args(cfg.gradient_checkpointing),
        bf16=cfg.bf16, seed=cfg.seed, deepspeed=cfg.deepspeed, logging_steps=cfg.logging_steps,
        save_strategy="no", report_to=cfg.report_to or "none", use_cpu=not torch.cuda.is_available(), **extra,
    )


def train_and_save(trainer, cfg: TrainOptions, out: Path, summary: dict) -> dict:
    """Train, save `out/policy` (loadable by AutoModelForCausalLM), run.json (what `policy eval --run` reads) and
    train_log.jsonl; returns the summary."""
    from core.models import resolve_model
    from policy.train.grpo import save_policy

    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    policy_dir = save_policy(trainer, out, cfg)
    if not trainer.accelerator.is_main_process:
        return {}
    write_jsonl(out / "train_log.jsonl", trainer.state.log_history)
    for leftover in out.glob("checkpoint-*"):
        shutil.rmtree(leftover)
    summary = {"policy": str(policy_dir), "base_policy": resolve_model(cfg.policy), "base_policy_name": cfg.policy,
               "reward_model": cfg.reward_model, "weights": cfg.weights, "steps": trainer.state.global_step,
               "train_seconds": round(seconds, 1), "system_prompt": cfg.system_prompt, **summary,
               "config": json.loads(cfg.model_dump_json())}
    write_json(out / "run.json", summary)
    return summary


def start_run(cfg: Config, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", dump_config(cfg))
