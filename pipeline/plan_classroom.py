"""The plan's classroom stages (pipeline/plan.py's formulas and helpers): the tutor's training processes, with TRL's
colocated vLLM, and the GPUs of the student's and the judges' `vllm serve` where the config places them
(`student.server`, `judges.server`); the evaluation's tutor, one at a time, and its eval judges' server."""
from __future__ import annotations

from pipeline.memory_formulas import Item, Zero, dtype_bytes
from pipeline.model_sizes import model_shape
from pipeline.plan import (GpuPlan, StageMemory, _causal_inference, _colocated_vllm, _overhead, _reference_model,
                           _training, _vllm_server, lora_dropout_extra, lora_r_of)
from pipeline.stages import PipelineConfig, stage_values


def micro_batch(values: dict) -> int:
    """Dialogues per device per pass: `micro_batch`, else prompts_per_step x num_generations (the GRPO config's)."""
    return int(values.get("micro_batch") or int(values.get("prompts_per_step", 4)) * int(values.get("num_generations",
                                                                                                     4)))


def served_models(cfg: PipelineConfig, memory: StageMemory, values: dict, batch: int, seq_len: int,
                  sections: tuple[tuple[str, dict], ...], plan: GpuPlan) -> None:
    """A vLLM server GPU per placed OpenAI-compatible student or judge; a local one's weights on the stage's GPU."""
    for what, options in sections:
        if options.get("backend", "local") == "local":
            shape = model_shape(options.get("model", "smollm2-135m-instruct"))
            plan.items.append(Item(f"local {what} weights", dtype_bytes(options.get("dtype", "bfloat16"))
                                   * shape.params, f"{what}.model [{shape.source}]"))
            continue
        model, placement = (options.get("openai") or {}).get("model", ""), options.get("server")
        if not placement:
            memory.notes.append(f"{what} served elsewhere ({what}.server not set): its GPUs are not counted")
            continue
        tp = int(placement.get("tensor_parallel_size", 1))
        _vllm_server(cfg, memory, f"{what} vLLM server GPU (TP={tp}, devices {placement.get('devices', '?')})",
                     what, model_shape(model), tp, float(placement.get("gpu_memory_utilization", 0.9)),
                     int(placement.get("max_model_len", 12000)), batch, seq_len)


def build_classroom(cfg: PipelineConfig, name: str, memory: StageMemory) -> None:
    values = stage_values(cfg, name)
    shape = model_shape(values.get("policy", "smollm2-135m-instruct"))
    zero = Zero.read(values.get("deepspeed"))
    weight_bytes = dtype_bytes(values.get("policy_dtype", "float32"))
    micro = micro_batch(values)
    seq_len = int((values.get("dialogue") or {}).get("max_dialogue_tokens", 4096))  # a whole dialogue is one sequence
    plan = _training(cfg, memory, shape, weight_bytes=weight_bytes, lora_r=lora_r_of(values), zero=zero,
                     sequences=micro, seq_len=seq_len, checkpointing=bool(values.get("gradient_checkpointing", False)),
                     role="tutor training process", lora_extra=lora_dropout_extra(shape, values))
    plan.notes.append(f"a whole dialogue is one sequence: dialogue.max_dialogue_tokens {seq_len}, {micro} per pass")
    _reference_model(plan, values, shape, zero, memory.processes, weight_bytes)
    generation = micro * int(values.get("steps_per_generation", 1))
    vllm = values.get("vllm") or {}
    if vllm.get("enabled") and vllm.get("mode", "colocate") == "colocate":
        _colocated_vllm(cfg, plan, vllm, shape, generation, seq_len)
    elif not vllm.get("enabled"):
        plan.notes.append("tutor turns with transformers generate on the training GPU (KV cache not counted)")
    if values.get("reward_model"):
        plan.notes.append("the HPC-RM heads (reward_model) are not counted")
    served_models(cfg, memory, values, generation * memory.processes, seq_len,
                  (("student", values.get("student") or {}), ("judges", values.get("judges") or {})), plan)
    _overhead(cfg, plan)


def build_classroom_eval(cfg: PipelineConfig, name: str, memory: StageMemory) -> None:
    values, run = stage_values(cfg, name), stage_values(cfg, "classroom")
    dialogue = run.get("dialogue") or {}
    prompt = int(dialogue.get("max_dialogue_tokens", 4096))
    plan = _causal_inference(cfg, memory, run.get("policy", "smollm2-135m-instruct"), "auto",
                             int(values.get("batch_size", 16)), prompt, int(run.get("max_completion_length", 64)),
                             role="evaluation process")
    plan.notes.append("base and tuned tutor are loaded one after the other")
    served_models(cfg, memory, values, int(values.get("batch_size", 16)), prompt,
                  (("student", run.get("student") or {}), ("judges", values.get("judges") or run.get("judges")
                                                           or {})), plan)
    _overhead(cfg, plan)
