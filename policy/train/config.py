"""The GRPO run's options, defined once: YAML files in configs/policy/ and `--flags` both fill `GRPORunConfig`.

`beta` (the KL coefficient) and `loss_type` have no defaults on purpose: TRL's default beta is 0, which silently
drops the KL penalty, so every config must say what it wants.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config import Config, Seed
from core.trainer_args import deepspeed_settings
from policy.prompts import DEFAULT_SYSTEM_PROMPT
from policy.train.rewards import validate_extra_params

LossType = Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"]


class LoraOptions(Config):
    enabled: bool = Field(False, description="train LoRA adapters (peft) instead of all weights")
    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    target_modules: list[str] | str = Field("all-linear", description="modules LoRA adapts (peft syntax)")


class VLLMOptions(Config):
    """Passed through to TRL for GPU users; vLLM does not run on this CPU machine."""

    enabled: bool = Field(False, description="generate rollouts with vLLM (GPU only)")
    mode: Literal["colocate", "server"] = Field("colocate", description="vLLM in the training process or a server")
    server_host: str = Field("0.0.0.0", description="host of `trl vllm-serve` (server mode)")
    server_port: int = Field(8000, ge=1, le=65535, description="port of `trl vllm-serve` (server mode)")
    server_base_url: str | None = Field(None, description="base URL of `trl vllm-serve`, e.g. http://node2:8000 "
                                                          "(server mode; replaces server_host and server_port)")
    server_timeout: float = Field(240.0, gt=0, description="seconds to wait for the vLLM server to come up "
                                                           "(server mode; a 72B model takes minutes to load)")
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="GPU memory share for vLLM (colocate)")
    tensor_parallel_size: int = Field(1, ge=1, description="tensor parallel size for vLLM (colocate)")
    max_model_length: int | None = Field(
        None, ge=1, description="vLLM's context window in tokens (colocate): at least the longest prompt plus "
                                "max_completion_length. None: the model's own (32k for Qwen2.5), and vLLM refuses "
                                "to start when its memory share cannot hold one sequence that long")
    enable_sleep_mode: bool = Field(False, description="colocate: vLLM offloads its weights and frees its KV cache "
                                                       "while the policy trains, and wakes up for each generation "
                                                       "(more memory for the update, some transfer time per step)")


class GRPORunConfig(Config):
    # what to train, on what
    policy: str = Field("smollm2-135m-instruct", description="policy model: registry name, hub id or local folder")
    reward_model: str = Field("runs/demo/rm", description="HPC-RM folder written by `python -m hpc_rm train`, or "
                                                          "the http(s):// address of `python -m hpc_rm serve`")
    policy_dtype: Literal["float32", "bfloat16", "auto"] = Field(
        "float32", description="dtype the policy (and the reference model) is loaded in: float32 keeps fp32 master "
                               "weights (the CPU demo); bfloat16 halves weight memory (GPU runs: with LoRA, or with "
                               "DeepSpeed, which keeps fp32 optimizer copies); auto: the checkpoint's own dtype")
    rm_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="dtype of a local reward model's backbone, placed on this process's device (the local "
                            "rank's GPU): auto is bfloat16 on CUDA and float32 on CPU; a served RM (URL) has its "
                            "own --dtype")
    prompts: str = Field("runs/demo/data/rl.jsonl", description="PromptItem JSONL: the `rl` split")
    max_prompts: int | None = Field(None, ge=1, description="use only the first N prompts (None: all)")
    max_prompt_tokens: int | None = Field(
        None, ge=1, description="cut longer dialogues (rendered chat) to this many tokens by dropping their oldest "
                                "turns; the problem, profile and last turn stay (TRL does not truncate prompts)"
    )
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="tutor system prompt; the profile is appended")
    out: str = Field("runs/demo/policy", description="output folder: checkpoints, final policy, logs")
    # reward
    weights: dict[str, float] | None = Field(
        None, description="weight per RM dimension, e.g. {Helpfulness: 0.4, ...}; None: the RM's own weights"
    )
    extra_rewards: dict[str, dict] = Field(
        default_factory=dict,
        description="extra rewards by registry name with their parameters, e.g. {answer_leak: {penalty: 1.0, "
                    "mode: soft}, length_penalty: {target_tokens: 160}}",
    )
    rm_batch_size: int = Field(32, ge=1, description="reward-model batch size")
    # GRPO objective
    beta: float = Field(ge=0, description="KL coefficient against the reference model (required: TRL's default 0 "
                                          "drops the KL term)")
    loss_type: LossType = Field(description="TRL loss formulation (required), e.g. grpo, dr_grpo, dapo")
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="advantage scaling in TRL")
    multi_objective_aggregation: Literal["sum_then_normalize", "normalize_then_sum"] = Field(
        "sum_then_normalize", description="weighted sum then normalise, or normalise each reward in its group first"
    )
    epsilon: float = Field(0.2, gt=0, description="clipping range of the policy ratio")
    num_iterations: int = Field(1, ge=1, description="policy updates per generated batch")
    # optimisation
    learning_rate: float = Field(1e-6, gt=0, description="AdamW learning rate")
    max_steps: int = Field(20, ge=1, description="optimizer steps")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps")
    prompts_per_step: int = Field(4, ge=1, description="distinct prompts per device per micro-batch")
    num_generations: int = Field(4, ge=2, description="completions per prompt (the GRPO group)")
    steps_per_generation: int = Field(
        1, ge=1, description="optimizer steps served by one generation call (larger = bigger generation batches)"
    )
    gradient_accumulation_steps: int = Field(1, ge=1, description="micro-batches per optimizer step")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory in the policy update")
    bf16: bool = Field(False, description="bf16 mixed precision for the policy update")
    seed: Seed = Field(0, description="random seed")
    # generation
    max_completion_length: int = Field(64, ge=1, description="tokens generated per completion")
    temperature: float = Field(1.0, gt=0, description="sampling temperature for rollouts")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling for rollouts")
    rollout_dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="dtype of the policy copy that samples rollouts with transformers generate "
                               "(bfloat16: about half the weight traffic per token on CPU; the update stays fp32)"
    )
    rollout_sampler: Literal["torch", "inverse_cdf"] = Field(
        "inverse_cdf", description="how a token is drawn from the softmax: torch.multinomial, or inverse CDF (one "
                                   "random number per row instead of one per vocabulary entry; same distribution)"
    )
    cache_implementation: str | None = Field(None, description="KV cache for transformers generate, e.g. 'static'")
    vllm: VLLMOptions = Field(default_factory=VLLMOptions, description="vLLM rollouts (GPU users)")
    lora: LoraOptions = Field(default_factory=LoraOptions, description="LoRA adapters (peft)")
    deepspeed: dict | str | None = Field(
        None, description="DeepSpeed config: a JSON file path or the config inline (GPU users, with accelerate)"
    )
    # bookkeeping
    logging_steps: int = Field(1, ge=1, description="log metrics every N steps")
    report_to: list[str] = Field(default_factory=list, description="trackers for long runs, as transformers' "
                                                                   "report_to: tensorboard, wandb, ...; empty: "
                                                                   "train_log.jsonl only")
    save_steps: int = Field(10, ge=1, description="write a checkpoint every N steps")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept")
    keep_checkpoints: bool = Field(False, description="keep the resume checkpoints once the run finished (each "
                                                      "holds the optimizer state: 1.6 GB for a 135M policy)")
    resume: bool = Field(True, description="continue from the newest checkpoint in `out` if there is one")

    @field_validator("extra_rewards")
    @classmethod
    def _known_extras(cls, value: dict[str, dict]) -> dict[str, dict]:
        validate_extra_params(value)
        return value

    @model_validator(mode="after")
    def _rollout_copy_needs_plain_generate(self) -> "GRPORunConfig":
        if self.rollout_dtype != "float32" and (self.vllm.enabled or self.deepspeed is not None):
            raise ValueError("rollout_dtype applies to transformers generate in one process: set it to float32 "
                             "with vLLM (which has its own dtype) or DeepSpeed")
        return self

    @model_validator(mode="after")
    def _zero3_saves_a_loadable_policy(self) -> "GRPORunConfig":
        zero = deepspeed_settings(self.deepspeed).get("zero_optimization") or {}  # inline or a JSON file
        if zero.get("stage") == 3 and zero.get("stage3_gather_16bit_weights_on_model_save") is not True:
            raise ValueError("deepspeed: ZeRO-3 needs zero_optimization.stage3_gather_16bit_weights_on_model_save: "
                             "true, or the final policy is saved as DeepSpeed shards that transformers cannot load")
        return self

    @field_validator("weights")
    @classmethod
    def _weights_nonnegative(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and (not value or any(w < 0 for w in value.values())):
            raise ValueError("weights must be non-negative and name at least one dimension")
        return value


def check_run_inputs(cfg: GRPORunConfig, check_rm: bool = True) -> GRPORunConfig:
    """Stop on bad input before a model loads or `out` is touched: the prompts file (every line valid), the policy
    name and (unless the caller brings its own RM) the reward-model folder (a served RM's URL is checked when its
    client starts, before the policy loads); each names the file and line, or the model and its flag
    (core.errors)."""
    from core.models import check_model_exists
    from core.reward_client import is_url
    from core.reward_config import check_rm_folder
    from core.schema import PromptItem, read_jsonl

    read_jsonl(cfg.prompts, PromptItem)
    check_model_exists(cfg.policy)
    if check_rm and cfg.reward_model and not is_url(cfg.reward_model):  # a URL is checked when the client starts
        check_rm_folder(cfg.reward_model)
    return cfg
