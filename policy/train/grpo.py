"""`python -m policy grpo --config configs/policy/tiny.yaml`: GRPO on the weighted HPC reward with a KL penalty.

TRL's GRPOTrainer does the work. This module turns a `GRPORunConfig` into its arguments: one reward function per
reward-model head (sharing one RM forward per batch) plus the configured extras, `reward_weights` in the same
order, explicit `beta` and `loss_type`, prompts from the `rl` split through the policy's chat template. It adds
timing of each step's generation and reward scoring to TRL's logged metrics, saves a policy that loads with plain
transformers (LoRA adapters merged), and writes `run.json` + `train_log.jsonl` for `python -m policy eval`.

At scale: the policy and TRL's reference model load in `policy_dtype` (TRL's `model_init_kwargs`); a local reward
model sits on each rank's own device in `rm_dtype` (bf16 on CUDA), loaded after the trainer arguments set up the
distributed state; a large one is served by `python -m hpc_rm serve` and named by URL. The final policy is saved
through `trainer.save_model` on every rank (the path that gathers ZeRO-3 shards).
"""
from __future__ import annotations

import contextlib
import copy
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from trl import GRPOConfig, GRPOTrainer

from core.config import ConfigError, dump_config, run_cli
from core.models import load_tokenizer, resolve_model
from core.sampling import inverse_cdf_sampling
from core.schema import write_json, write_jsonl, write_text
from core.optimizer_steps import RequireOptimizerSteps
from core.trainer_args import checkpointing_args
from policy.train.config import GRPORunConfig, check_run_inputs
from policy.prompts import load_prompt_rows
from policy.train.rewards import HeadReward, RewardSetup, build_reward_functions, validate_extra_params

FINAL_POLICY = "policy"  # subfolder of `out` holding the trained policy


class TimedGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that logs the seconds spent generating (`time/generate_s`) and scoring (`time/reward_s`), and
    can sample rollouts from a lower-precision copy of the policy (`rollout_dtype`) with a cheaper sampler
    (`rollout_sampler`, see annotation/sampling.py).

    Why the copy: token-by-token decoding on CPU reads every weight once per token, so it is bound by memory
    traffic, not by FLOPs; bf16 weights halve that traffic and use the CPU's bf16 matrix units. The update and the
    log-probabilities of the loss stay in fp32. This is the trade-off vLLM users make (bf16 sampler, fp32 trainer).
    """

    def __init__(self, *args, rollout_dtype: torch.dtype | None = None, inverse_cdf: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.rollout_dtype = rollout_dtype
        self.inverse_cdf = inverse_cdf
        self._rollout_model = None
        self._rollout_synced_step = -1

    def _timed(self, name: str, started: float) -> None:
        mode = "train" if self.model.training else "eval"
        self._metrics[mode][f"time/{name}_s"].append(time.perf_counter() - started)

    def rollout_model(self) -> torch.nn.Module:
        """The low-precision copy of the policy, refreshed from the trained weights when a step changed them."""
        policy = self.accelerator.unwrap_model(self.model_wrapped)
        if self._rollout_model is None:
            rollout = copy.deepcopy(policy)
            # Accelerate's mixed precision replaces `forward` on the instance with a wrapper whose closure holds the
            # *policy's* bound forward; deepcopy keeps that closure, so the copy would run the fp32 policy under
            # autocast. Drop it: the copy's weights are already in the rollout dtype and need no autocast.
            rollout.__dict__.pop("forward", None)
            rollout.__dict__.pop("_original_forward", None)
            # Weights keep requires_grad=True on purpose (generation runs under no_grad anyway): with it False,
            # torch.matmul stops folding the prefill's strided [batch, 1, hidden] slice into one mm and runs a bmm
            # on a batch-expanded copy of the 49k x 576 output matrix (0.5 s per rollout batch of 8, profiled).
            self._rollout_model = rollout.to(self.rollout_dtype).eval()
        elif self._rollout_synced_step != self.state.global_step:
            with torch.no_grad():
                for target, source in zip(self._rollout_model.parameters(), policy.parameters(), strict=True):
                    target.copy_(source)
        self._rollout_synced_step = self.state.global_step
        return self._rollout_model

    def _generate_single_turn(self, *args, **kwargs):
        started = time.perf_counter()
        with inverse_cdf_sampling() if self.inverse_cdf else contextlib.nullcontext():
            if self.rollout_dtype is None:
                out = super()._generate_single_turn(*args, **kwargs)
            else:
                # TRL's generation path unwraps `model_wrapped`; point it at the copy for this call only.
                wrapped, self.model_wrapped = self.model_wrapped, self.rollout_model()
                try:
                    out = super()._generate_single_turn(*args, **kwargs)
                finally:
                    self.model_wrapped = wrapped
        self._timed("generate", started)
        return out

    def _calculate_rewards(self, *args, **kwargs):
        started = time.perf_counter()
        out = super()._calculate_rewards(*args, **kwargs)
        self._timed("reward", started)
        return out


def load_reward_model(path: str, device: str | torch.device | None = None, dtype: str = "auto"):
    """The reward model to score with: a folder on `device` (None: this process's accelerate device, the local
    rank's GPU in a distributed run) with its backbone in `dtype` (auto: bf16 on CUDA, fp32 on CPU), or the client
    of an `hpc_rm serve` URL (core/reward_client.py)."""
    from core.reward_client import load_scoring_rm

    return load_scoring_rm(path, device, dtype)


@contextlib.contextmanager
def whole_models_under_zero3():
    """Models built inside load whole on every rank. Once a ZeRO-3 `TrainingArguments` exists, transformers builds
    every `from_pretrained` model under DeepSpeed's `zero.Init` (parameters partitioned across ranks); the reward
    model is no DeepSpeed engine's model, so its partitioned weights would never be gathered for a forward. It is
    replicated instead (in rm_dtype on the local rank's GPU), or served by `hpc_rm serve` when it is too large."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def rm_reads_less_warning(rm, max_completion_length: int) -> str | None:
    """A warning when the RM would read fewer response tokens than the policy may write (counted in the RM's own
    tokenizer, so only roughly comparable): the reward would never see the end of a long completion."""
    reads = rm.spec.max_response_tokens
    if reads >= max_completion_length:
        return None
    return (f"warning: the reward model reads only the first {reads} response tokens but the policy may write "
            f"{max_completion_length}: the reward never sees the rest of a long completion; retrain the RM with "
            f"--max-response-tokens {max_completion_length} (and a larger --max-length) or lower max_completion_length")


def reward_weights_for(cfg: GRPORunConfig, rm) -> dict[str, float]:
    """The config's weights, checked against the RM's dimensions (None: the RM's own aggregation weights)."""
    weights = cfg.weights if cfg.weights is not None else rm.weights
    if set(weights) != set(rm.dimensions):
        raise ConfigError(f"field weights: must name exactly the reward model's dimensions {rm.dimensions} "
                          f"(got {sorted(weights)})")
    return {d: float(weights[d]) for d in rm.dimensions}


def trl_args(cfg: GRPORunConfig, reward_weights: list[float] | None) -> GRPOConfig:
    """TRL's arguments. The policy (and TRL's reference model) load in `policy_dtype` through `model_init_kwargs`."""
    extra = {}
    if cfg.vllm.enabled:
        extra = dict(use_vllm=True, vllm_mode=cfg.vllm.mode, vllm_server_host=cfg.vllm.server_host,
                     vllm_server_port=cfg.vllm.server_port, vllm_server_base_url=cfg.vllm.server_base_url,
                     vllm_server_timeout=cfg.vllm.server_timeout,
                     vllm_gpu_memory_utilization=cfg.vllm.gpu_memory_utilization,
                     vllm_tensor_parallel_size=cfg.vllm.tensor_parallel_size,
                     vllm_max_model_length=cfg.vllm.max_model_length,
                     vllm_enable_sleep_mode=cfg.vllm.enable_sleep_mode)
    return GRPOConfig(
        model_init_kwargs={"dtype": cfg.policy_dtype},
        output_dir=cfg.out, beta=cfg.beta, loss_type=cfg.loss_type, reward_weights=reward_weights,
        scale_rewards=cfg.scale_rewards, multi_objective_aggregation=cfg.multi_objective_aggregation,
        epsilon=cfg.epsilon, num_iterations=cfg.num_iterations, learning_rate=cfg.learning_rate,
        max_steps=cfg.max_steps, warmup_steps=cfg.warmup_steps,
        # the classroom's `micro_batch` (dialogues per pass) decouples the pass from the GRPO group size
        per_device_train_batch_size=getattr(cfg, "micro_batch", None) or cfg.prompts_per_step * cfg.num_generations,
        num_generations=cfg.num_generations, steps_per_generation=cfg.steps_per_generation,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        **checkpointing_args(cfg.gradient_checkpointing), bf16=cfg.bf16, seed=cfg.seed,
        max_completion_length=cfg.max_completion_length, temperature=cfg.temperature, top_p=cfg.top_p,
        cache_implementation=cfg.cache_implementation, deepspeed=cfg.deepspeed,
        logging_steps=cfg.logging_steps, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, report_to=cfg.report_to or "none",
        use_cpu=not torch.cuda.is_available(), remove_unused_columns=False, **extra,
    )


def lora_config(cfg: GRPORunConfig):
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")


def build_trainer(cfg: GRPORunConfig, rm=None, *, tokenizer=None, rows: list[dict] | None = None,
                  rollout_func=None, head_reward=HeadReward, services: dict | None = None,
                  ) -> tuple[TimedGRPOTrainer, object]:
    """(trainer, shared RM cache or None). `rm` may be passed in (tests, sweeps); by default it is loaded from the
    config (no RM when `cfg.reward_model` is None). The classroom passes its own rows, `rollout_func`, per-turn
    head rewards and the services its rewards call (policy/classroom/run.py)."""
    from datasets import Dataset

    args = trl_args(cfg, None)  # first: it sets up the distributed state, so `args.device` is this rank's device
    if rm is None and cfg.reward_model:
        with whole_models_under_zero3():
            rm = load_reward_model(cfg.reward_model, args.device, cfg.rm_dtype)
    weights = reward_weights_for(cfg, rm) if rm is not None else {}
    if rm is not None and (warning := rm_reads_less_warning(rm, cfg.max_completion_length)):
        print(warning, file=sys.stderr)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg.policy)
    eos_ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    funcs, reward_weights, cache = build_reward_functions(
        rm, weights, validate_extra_params(cfg.extra_rewards),
        RewardSetup(max_completion_length=cfg.max_completion_length, eos_token_ids=eos_ids, services=services or {}),
        rm_batch_size=cfg.rm_batch_size, head_reward=head_reward,
    )
    if not funcs:
        raise ConfigError("no reward: give a reward model or at least one of extra_rewards")
    if rows is None:
        rows = load_prompt_rows(cfg.prompts, cfg.system_prompt, cfg.max_prompts, tokenizer, cfg.max_prompt_tokens)
    args.reward_weights = reward_weights
    trainer = TimedGRPOTrainer(
        # A path, not a loaded model: TRL loads it with `model_init_kwargs` (policy_dtype), and with beta > 0 builds
        # the reference model from it the same way.
        model=resolve_model(cfg.policy), reward_funcs=funcs, args=args,
        train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=lora_config(cfg),
        rollout_dtype=None if cfg.rollout_dtype == "float32" else getattr(torch, cfg.rollout_dtype),
        inverse_cdf=cfg.rollout_sampler == "inverse_cdf", rollout_func=rollout_func,
        callbacks=[RequireOptimizerSteps(f"max_steps {cfg.max_steps}")],
    )
    return trainer, cache


def save_policy(trainer: GRPOTrainer, out: Path, cfg: GRPORunConfig) -> Path:
    """Full weights + tokenizer in out/policy, loadable with plain transformers. Call it on EVERY rank: it saves
    through `trainer.save_model`, the path that gathers ZeRO-3 shards (a collective), into a temporary folder that
    the main process renames into place once all ranks are done. LoRA: the trainer saves the adapter; the main
    process merges it into the base model read from disk (the trained model may be sharded) and saves that."""
    accelerator = trainer.accelerator
    final, tmp = out / FINAL_POLICY, out / f".{FINAL_POLICY}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if (tmp / "adapter_config.json").exists():
            merge_adapter(tmp, resolve_model(cfg.policy), cfg.policy_dtype, trainer.processing_class)
        (tmp / "training_args.bin").unlink(missing_ok=True)
        if not (tmp / "config.json").exists() or not any(tmp.glob("*.safetensors")):
            raise RuntimeError(f"the trainer saved no loadable policy in {tmp} (files: "
                               f"{sorted(p.name for p in tmp.iterdir())})")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    accelerator.wait_for_everyone()
    return final


def merge_adapter(folder: Path, base: str, dtype: str, tokenizer) -> None:
    """Replace the LoRA adapter saved in `folder` by the base model with the adapter merged into it."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype if dtype == "auto" else getattr(torch, dtype))
    merged = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    target = folder.with_name(folder.name + ".merged")
    shutil.rmtree(target, ignore_errors=True)
    merged.save_pretrained(target)
    tokenizer.save_pretrained(target)
    shutil.rmtree(folder)
    target.rename(folder)


def last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out)) if out.is_dir() else None


def run_grpo(cfg: GRPORunConfig, rm=None, build=build_trainer) -> dict:
    """Train, save the policy and the logs; returns the run summary (also written as out/run.json).
    `build(cfg, rm) -> (trainer, cache)` makes the trainer (the classroom passes its own)."""
    check_run_inputs(cfg, check_rm=rm is None)
    trainer, cache = build(cfg, rm)  # loads the models: bad input has stopped by now, and `out` is untouched
    out = Path(cfg.out)
    main_process = trainer.accelerator.is_main_process
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", dump_config(cfg))
    resume = last_checkpoint(out) if cfg.resume else None
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - started
    policy_dir = save_policy(trainer, out, cfg)  # every rank: the save gathers sharded weights
    if not main_process:
        return {}
    write_jsonl(out / "train_log.jsonl", trainer.state.log_history)
    if not cfg.keep_checkpoints:  # only needed to resume; the finished policy is saved above
        for checkpoint in out.glob("checkpoint-*"):
            shutil.rmtree(checkpoint)
    summary = {
        "policy": str(policy_dir), "base_policy": resolve_model(cfg.policy), "base_policy_name": cfg.policy,
        "reward_model": cfg.reward_model, "weights": reward_weights_for(cfg, cache.rm) if cache else None,
        "reward_functions": list(trainer.reward_func_names), "reward_weights": list(trainer.args.reward_weights),
        "beta": cfg.beta, "loss_type": cfg.loss_type, "steps": trainer.state.global_step,
        "processes": trainer.accelerator.num_processes,
        "resumed_from": resume, "train_seconds": round(seconds, 1), "rm_forwards": cache.forwards if cache else 0,
        "system_prompt": cfg.system_prompt, "config": json.loads(cfg.model_dump_json()),
    }
    write_json(out / "run.json", summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    _, summary = run_cli(GRPORunConfig, argv, "python -m policy grpo", __doc__.split("\n")[0], run_grpo)
    if summary:
        print(f"saved policy to {summary['policy']} after {summary['steps']} steps ({summary['train_seconds']} s)")
