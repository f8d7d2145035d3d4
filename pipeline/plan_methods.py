"""`python -m pipeline plan` for the `compare` stage (issue #30): its methods run one after another in their own
processes, so the stage needs the GPU memory of its largest method. GRPO is counted as the grpo stage is
(`plan.build_grpo`, from compare's GRPO config); RFT and SFT as supervised training of the policy on `batch_size`
sequences of `max_length` tokens; DPO the same with two sequences (chosen and rejected) per pair plus its reference
model (a full copy without LoRA; with LoRA the base with the adapters off); RFT, DPO and best-of-n also sample with
transformers generate and hold the training RM; the scoring holds the base and one tuned policy, the training RM
and the independent RM, as the eval stage does."""
from __future__ import annotations

from pathlib import Path

from core.config import load_yaml
from pipeline.memory_formulas import GB, Item, Zero, billions, dtype_bytes, inference_activations, KORTHIKANTI
from pipeline.model_sizes import model_shape
from pipeline.stages import PipelineConfig, stage_values

SUPERVISED = {"rft": 1, "sft": 1, "dpo": 2}  # sequences per example in a micro-batch


def method_values(cfg: PipelineConfig, method: str) -> dict:
    path = (stage_values(cfg, "compare").get("configs") or {}).get(method)
    return load_yaml(Path(path)) if path and Path(path).exists() else {}


def _rm_items(cfg: PipelineConfig, plan, values: dict) -> None:
    from pipeline.plan import rm_model

    shape, params, rm_values = rm_model(cfg, "rm")
    plan.items.append(Item("training RM (sampling phase)", dtype_bytes(values.get("rm_dtype", "auto")) * params,
                           f"{billions(shape)} backbone [{shape.source}]", phase="generation"))
    plan.items.append(Item("RM scoring activations", inference_activations(
        shape, int(values.get("sample_batch_size", 16)), int(rm_values.get("max_length", 256))), KORTHIKANTI,
        phase="generation"))


def build_supervised(cfg: PipelineConfig, memory, method: str, values: dict):
    from pipeline.plan import _overhead, _training, lora_dropout_extra, lora_r_of

    shape = model_shape(values.get("policy", "smollm2-135m-instruct"))
    lora_r = lora_r_of(values)
    plan = _training(cfg, memory, shape, weight_bytes=dtype_bytes(values.get("policy_dtype", "float32")),
                     lora_r=lora_r, zero=Zero.read(values.get("deepspeed")),
                     sequences=int(values.get("batch_size", 8)) * SUPERVISED[method],
                     seq_len=int(values.get("max_length", 512)),
                     checkpointing=bool(values.get("gradient_checkpointing", False)),
                     role=f"training process ({method})", lora_extra=lora_dropout_extra(shape, values))
    if method == "dpo" and not lora_r:
        plan.items.append(Item("DPO reference model", dtype_bytes(values.get("policy_dtype", "float32")) * shape.params,
                               "a full copy of the base"))
    elif method == "dpo":
        plan.notes.append("DPO reference: the base with the LoRA adapters disabled (no extra copy)")
    if method in ("rft", "dpo"):
        _rm_items(cfg, plan, values)
    _overhead(cfg, plan)


def build_bon(cfg: PipelineConfig, memory, values: dict):
    from pipeline.plan import _causal_inference, _overhead

    plan = _causal_inference(cfg, memory, values.get("policy", "smollm2-135m-instruct"),
                             values.get("policy_dtype", "auto"), int(values.get("sample_batch_size", 16)),
                             int(values.get("max_prompt_tokens") or cfg.hardware.prompt_tokens),
                             int(values.get("max_completion_length", 64)), role="best-of-n sampling")
    _rm_items(cfg, plan, values)
    _overhead(cfg, plan)


def build_compare(cfg: PipelineConfig, name: str, memory) -> None:
    from pipeline.plan import build_grpo
    from pipeline.plan_inference import build_eval

    methods = stage_values(cfg, name).get("methods") or ["bon", "rft", "dpo", "sft", "grpo"]
    for method in methods:
        values = method_values(cfg, method)
        if method == "grpo":
            first = len(memory.roles)
            build_grpo(cfg, name, memory)
            memory.roles[first].role += " (grpo)"
        elif method == "bon":
            build_bon(cfg, memory, values)
        else:
            build_supervised(cfg, memory, method, values)
    build_eval(cfg, name, memory)
    memory.roles[-1].role = "scoring (base + one tuned policy, both RMs)"
    largest = max(memory.roles, key=lambda r: r.total)
    memory.notes.append("methods run one after another in their own processes: "
                        + ", ".join(f"{r.role} {r.total / GB:.1f} GB" for r in memory.roles)
                        + f"; the largest counts ({largest.role})")
    memory.roles[:] = [largest]
