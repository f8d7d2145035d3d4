"""Memory plans of the stages that only run models forward: LLM-judge labelling, candidate generation and the
policy evaluation (the builders of pipeline/plan.py's BUILDERS for annotate, mrbench_label, generate and eval)."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

import yaml

from pipeline.memory_formulas import Item, billions, dtype_bytes
from pipeline.model_sizes import model_shape
from pipeline.plan import StageMemory, _causal_inference, _overhead, rm_model
from pipeline.stages import PipelineConfig, StageSettings, grpo_values, stage_values


def _local_judges(specs: list[str] | str) -> list[dict]:
    judges = []
    for spec in [specs] if isinstance(specs, str) else specs:
        base, _, query = spec.partition("?")
        path = Path(base) if Path(base).exists() else Path("configs/judges") / f"{base}.yaml"
        data = yaml.safe_load(path.read_text()) if path.exists() else {"backend": base}
        data.update({k: (v if k == "model" else yaml.safe_load(v)) for k, v in parse_qsl(query)})
        if data.get("backend") == "local":
            judges.append(data)
    return judges


def build_label(cfg: PipelineConfig, name: str, memory: StageMemory) -> None:
    values = stage_values(cfg, name)
    judges = _local_judges(values.get("judges", ["local"]))
    if not judges:
        memory.notes.append("judges over an API (openai): no model on this machine's GPUs")
        return
    for judge in judges:
        plan = _causal_inference(cfg, memory, judge.get("model", "smollm2-135m-instruct"), judge.get("dtype"),
                                 int(judge.get("batch_size", 8)),
                                 int(judge.get("max_context_tokens", 512)) + int(judge.get("max_response_tokens", 256)),
                                 0, role=f"local judge {judge.get('name', '')}".strip())
        _overhead(cfg, plan)
    memory.roles[:] = [max(memory.roles, key=lambda r: r.total)]  # judges run one after another: the largest counts


def build_generate(cfg: PipelineConfig, name: str, memory: StageMemory) -> None:
    values = stage_values(cfg, name)
    local = [g.split(":", 1)[1] for g in values.get("generators", ["local:smollm2-135m-instruct"])
             if g.startswith("local:")]
    if not local:
        memory.notes.append("generators over an API or human turns: no model on this machine's GPUs")
        return
    plans = [_causal_inference(cfg, memory, model, values.get("dtype", "auto"), int(values.get("batch_size", 8)),
                               512, int(values.get("max_new_tokens", 128))) for model in local]
    for plan in plans:
        plan.notes.append("prompt length assumed 512 tokens")
        _overhead(cfg, plan)
    memory.roles[:] = [max(plans, key=lambda p: p.total)]  # one generator at a time


def build_eval(cfg: PipelineConfig, name: str, memory: StageMemory) -> None:
    values = stage_values(cfg, name)
    if name == "compare":  # compare's evaluation settings, with its GRPO config's policy
        values = values.get("eval") or {}
    grpo = grpo_values(cfg, "compare" if name == "compare" else "grpo")
    launcher = cfg.stages.get(name, StageSettings()).launcher
    spread = 1
    if values.get("device") == "spread":
        spread = len(launcher.devices.split(",")) if launcher.devices else cfg.hardware.gpus_per_node
    new_tokens = int(values.get("max_new_tokens") or grpo.get("max_completion_length", 64))
    prompt = int(values.get("max_prompt_tokens") or grpo.get("max_prompt_tokens") or cfg.hardware.prompt_tokens)
    plan = _causal_inference(cfg, memory, grpo.get("policy", "smollm2-135m-instruct"), values.get("dtype", "auto"),
                             int(values.get("batch_size", 16)), prompt, new_tokens, copies=2, spread_over=spread)
    plan.notes.append("base and tuned policy are held together (GSM8K perplexity, win rates)")
    for rm_stage in ("rm", "mrbench_rm"):
        shape, params, _ = rm_model(cfg, rm_stage)
        plan.items.append(Item(f"RM of the {rm_stage} stage", dtype_bytes("auto") * params / spread, f"{billions(shape)} backbone in bf16"
                               + (f" / {spread} GPUs" if spread > 1 else "")))
    for judge in _local_judges(values.get("judges", [])):
        jshape = model_shape(judge.get("model", "smollm2-135m-instruct"))
        plan.items.append(Item(f"judge {judge.get('model')}", dtype_bytes(judge.get("dtype")) * jshape.params / spread,
                               "local judge weights"))
    _overhead(cfg, plan)
