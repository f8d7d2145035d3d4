"""`python -m pipeline plan --config FILE [--json]`: before a GPU hour is spent, the memory one GPU needs in every
stage, from each stage's own YAML, against the machines in the pipeline config's `hardware` section.

Where each number comes from (also printed next to it):
- model shapes and parameter counts: the model's config.json when it resolves locally (transformers.AutoConfig, no
  weights), else the table in pipeline/model_sizes.py (the hub models the shipped configs name);
- weights, gradients and optimizer states: the ZeRO paper's mixed-precision Adam count, 2 + 2 + 12 bytes per trained
  parameter (Rajbhandari et al. 2020), partitioned by ZeRO stage the way DeepSpeed's own estimators
  `estimate_zero2_model_states_mem_needs` (4P + 16P/N; 2P with CPU offload) and
  `estimate_zero3_model_states_mem_needs` (4 x largest layer + 18P/N; + 2P/N with optimizer offload; the CPU side
  16-18 bytes per parameter x 1.5) compute them; LoRA trains only the adapters (fp32, 16 bytes per adapter
  parameter), the frozen base stays in its load dtype;
- activations: Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models"), bytes per
  token and layer, for a SwiGLU decoder without dropout under flash/SDPA attention (no s^2 terms): 16h + 8i (their
  34h + 5as/h for a GeLU encoder with stored attention scores); with gradient checkpointing every layer keeps only
  its 2h-byte input and one layer is recomputed at a time;
- vLLM: its share is gpu_memory_utilization x GPU memory, holding the weights (split over tensor-parallel GPUs),
  `vllm_overhead_gb`, and a KV cache of 2 x layers x kv_heads x head_dim x 2 bytes per token (kv heads split over
  the tensor-parallel GPUs), which must hold at least one sequence of the context window or vLLM refuses to start.
Not counted: temporary buffers of fused kernels, the LM head's logits (TRL 1.16 fuses the LM head into its log-prob
pass), memory fragmentation beyond `overhead_gb`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from core.config import is_url
from pipeline.memory_formulas import (GB, KORTHIKANTI, KV_FORMULA, Item, Zero, activations, billions, dtype_bytes,
                                      inference_activations, lora_dropout_bytes_per_token, model_states)
from pipeline.model_sizes import ModelShape, model_shape
from pipeline.stages import PipelineConfig, StageSettings, grpo_values, stage_values


@dataclass
class GpuPlan:
    """One kind of GPU in a stage (a training process, a vLLM server GPU, ...): what it holds and whether it fits."""

    role: str
    gpus: int
    capacity: float
    items: list[Item] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Peak: the larger of the update phase and the generation phase (equal when nothing is phase-bound)."""
        both = sum(i.bytes for i in self.items if i.phase == "both")
        update = sum(i.bytes for i in self.items if i.phase == "update")
        generation = sum(i.bytes for i in self.items if i.phase == "generation")
        return both + max(update, generation)

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity and all(ok for _, ok in self.checks)

    def as_dict(self) -> dict:
        return {
            "role": self.role, "gpus": self.gpus, "capacity_gb": round(self.capacity / GB, 2),
            "total_gb": round(self.total / GB, 2), "fits": self.fits,
            "items": [{"name": i.name, "gb": round(i.bytes / GB, 3), "source": i.source, "phase": i.phase}
                      for i in self.items],
            "checks": [{"check": text, "ok": ok} for text, ok in self.checks], "notes": self.notes,
        }


@dataclass
class StageMemory:
    stage: str
    launcher: str
    processes: int
    gpus_available: int
    roles: list[GpuPlan] = field(default_factory=list)
    cpu_bytes: float = 0.0
    cpu_capacity: float | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # launch shapes the hardware cannot hold
    estimated: bool = True

    @property
    def gpus_needed(self) -> int:
        return sum(r.gpus for r in self.roles)

    @property
    def fits(self) -> bool:
        cpu_ok = self.cpu_capacity is None or self.cpu_bytes <= self.cpu_capacity
        return (self.gpus_needed <= self.gpus_available and cpu_ok and not self.problems
                and all(r.fits for r in self.roles))

    def as_dict(self) -> dict:
        return {
            "stage": self.stage, "launcher": self.launcher, "processes": self.processes,
            "gpus_needed": self.gpus_needed, "gpus_available": self.gpus_available, "fits": self.fits,
            "estimated": self.estimated, "cpu_gb_per_node": round(self.cpu_bytes / GB, 1),
            "cpu_capacity_gb": None if self.cpu_capacity is None else round(self.cpu_capacity / GB, 1),
            "roles": [r.as_dict() for r in self.roles], "notes": self.notes, "problems": self.problems,
        }


def lora_r_of(values: dict) -> int:
    lora = values.get("lora") or {}
    if "enabled" in lora:  # GRPO's LoraOptions: enabled + r (default 16)
        return int(lora.get("r", 16)) if lora.get("enabled") else 0
    return int(lora.get("r", 0))  # the RM's LoraSpec: r = 0 means full fine-tuning


def lora_dropout_extra(shape, values: dict) -> float:
    """Activation bytes per layer and token that LoRA dropout adds (both LoRA configs default to dropout 0.05 on
    all-linear)."""
    lora = values.get("lora") or {}
    return lora_dropout_bytes_per_token(shape, lora_r_of(values), float(lora.get("dropout", 0.05)),
                                        lora.get("target_modules", "all-linear"))


def rm_model(cfg: PipelineConfig, rm_stage: str) -> tuple[ModelShape, int, dict]:
    """The RM a stage loads (the run's `rm_stage` output): its backbone's shape, its parameter count (backbone plus
    LoRA adapters) and the stage's values."""
    values = stage_values(cfg, rm_stage)
    shape = model_shape(values.get("backbone", "minilm-l6"))
    return shape, shape.params + shape.lora_params(lora_r_of(values)), values


# ----------------------------------------------------------------------------------------------- stages
NO_GPU = {"data": "reads and writes JSONL only", "mrbench_human": "converts a JSON file",
          "agreement": "statistics on two label files"}


def plan_stage(cfg: PipelineConfig, name: str) -> StageMemory:
    settings = cfg.stages.get(name, StageSettings())
    hw = cfg.hardware
    launcher = settings.launcher
    label = launcher.kind
    if launcher.kind != "python":
        label += f" x{launcher.processes}" + (f" x{launcher.nnodes} nodes" if launcher.nnodes > 1 else "")
    memory = StageMemory(name, label, launcher.world_size, hw.nodes * hw.gpus_per_node,
                         cpu_capacity=None if hw.cpu_memory_gb is None else hw.cpu_memory_gb * GB)
    if launcher.processes > hw.gpus_per_node:
        memory.problems.append(f"{launcher.processes} processes per node, hardware.gpus_per_node is "
                               f"{hw.gpus_per_node}")
    if launcher.nnodes > hw.nodes:
        memory.problems.append(f"{launcher.nnodes} nodes, hardware.nodes is {hw.nodes}")
    builder = BUILDERS.get(name)
    if name in NO_GPU:
        memory.notes.append(f"no model on a GPU ({NO_GPU[name]})")
        return memory
    if builder is None:
        memory.estimated = False
        memory.notes.append("not estimated: the plan does not model this stage yet")
        return memory
    builder(cfg, name, memory)
    return memory


def _process(cfg: PipelineConfig, memory: StageMemory, role: str, gpus: int) -> GpuPlan:
    plan = GpuPlan(role, gpus, cfg.hardware.gpu_memory_gb * GB)
    memory.roles.append(plan)
    return plan


def _overhead(cfg: PipelineConfig, plan: GpuPlan) -> None:
    plan.items.append(Item("CUDA context, NCCL, fragmentation", cfg.hardware.overhead_gb * GB, "hardware.overhead_gb"))


def training_world(cfg: PipelineConfig, name: str) -> tuple[int, int]:
    """(processes, nodes) that train: the stage's launcher, or for the sweep the `launcher` command it starts each
    run with (`torchrun --nproc_per_node N`, `accelerate launch --num_processes N`; empty: one process)."""
    launcher = cfg.stages.get(name, StageSettings()).launcher
    if name not in ("sweep", "compare"):  # these start each run with their own `launcher` command
        return launcher.world_size, launcher.nnodes
    found = re.search(r"--(?:nproc[_-]per[_-]node|num[_-]processes)[ =](\d+)", str(stage_values(cfg, name).get(
        "launcher") or ""))
    return (int(found.group(1)) if found else 1), 1


def _training(cfg, memory, shape, *, weight_bytes, lora_r, zero, sequences, seq_len, checkpointing, role,
              lora_extra=0.0):
    world, nodes = training_world(cfg, memory.stage)
    memory.processes = world
    plan = _process(cfg, memory, role, world)
    states, cpu = model_states(shape, weight_bytes=weight_bytes, lora_r=lora_r, zero=zero, world=world, nodes=nodes)
    plan.items += states
    memory.cpu_bytes += cpu
    without, with_ckpt = activations(shape, sequences, seq_len, lora_extra)
    used = with_ckpt if checkpointing else without
    plan.items.append(Item(f"activations ({'with' if checkpointing else 'without'} gradient checkpointing)", used,
                           f"{KORTHIKANTI}: {sequences} seq x {seq_len} tokens"
                           + (" + LoRA dropout inputs and masks" if lora_extra else ""), phase="update"))
    plan.notes.append(f"activations: {without / GB:.1f} GB without gradient checkpointing, {with_ckpt / GB:.1f} GB "
                      f"with it ({sequences} sequences x {seq_len} tokens per micro-batch)")
    plan.notes.append(f"model: {billions(shape)} params, {shape.layers} layers, hidden {shape.hidden} "
                      f"[{shape.source}]")
    if cpu:
        plan.notes.append(f"CPU memory per node for offloaded states: {cpu / GB:.0f} GB (DeepSpeed estimator, x1.5 "
                          "buffer factor)")
    return plan


def build_rm_training(cfg: PipelineConfig, name: str, memory: StageMemory, values: dict | None = None) -> None:
    values = stage_values(cfg, name) if values is None else values
    shape = model_shape(values.get("backbone", "minilm-l6"))
    weight_bytes = dtype_bytes(values.get("dtype", "float32"))
    if values.get("freeze_backbone"):
        plan = _process(cfg, memory, "process", 1)
        plan.items.append(Item("frozen backbone weights", weight_bytes * shape.params, "pooled once, no gradients"))
        plan.items.append(Item("activations (forward only)", inference_activations(
            shape, int(values.get("batch_size", 16)), int(values.get("max_length", 256))), KORTHIKANTI))
        _overhead(cfg, plan)
        return
    plan = _training(cfg, memory, shape, weight_bytes=weight_bytes, lora_r=lora_r_of(values),
                     zero=Zero.read(values.get("deepspeed")), sequences=int(values.get("batch_size", 16)),
                     seq_len=int(values.get("max_length", 256)),
                     checkpointing=bool(values.get("gradient_checkpointing", False)), role="training process",
                     lora_extra=lora_dropout_extra(shape, values))
    _overhead(cfg, plan)


def build_consistency(cfg: PipelineConfig, name: str, memory: StageMemory) -> None:
    build_rm_training(cfg, name, memory, stage_values(cfg, name).get("train") or {})


def _vllm_kv_check(plan: GpuPlan, shape: ModelShape, share: float, tp: int, hw, need_tokens: int,
                   batch_sequences: int, seq_len: int) -> None:
    weights = 2 * shape.params / tp
    kv_free = share - weights - hw.vllm_overhead_gb * GB
    per_token = shape.kv_bytes_per_token(2, tp)
    plan.checks.append((f"vLLM KV cache {max(kv_free, 0) / GB:.1f} GB holds one {need_tokens}-token sequence "
                        f"({need_tokens * per_token / GB:.2f} GB at {per_token} B/token: {KV_FORMULA})",
                        kv_free >= need_tokens * per_token))
    if kv_free > 0:
        fit = int(kv_free // (per_token * seq_len))
        plan.notes.append(f"vLLM: weights {weights / GB:.1f} GB/GPU (TP={tp}), KV cache for {fit} sequences of "
                          f"{seq_len} tokens at once; a generation batch has {batch_sequences}")


def _vllm_server(cfg, memory, role: str, what: str, shape: ModelShape, tp: int, utilization: float, need: int,
                 batch: int, seq_len: int) -> GpuPlan:
    """A GPU of a `vllm serve` (or `trl vllm-serve`) process: bf16 weights split over TP, overhead, KV cache."""
    hw = cfg.hardware
    splan = _process(cfg, memory, role, tp)
    share = utilization * hw.gpu_memory_gb * GB
    weights = 2 * shape.params / tp
    splan.items.append(Item(f"{what} weights (bf16)", weights, f"2 B x params / TP [{shape.source}]"))
    splan.items.append(Item("vLLM activations, CUDA graphs", hw.vllm_overhead_gb * GB, "hardware.vllm_overhead_gb"))
    splan.items.append(Item("KV cache (rest of the share)", max(share - weights - hw.vllm_overhead_gb * GB, 0),
                            f"gpu_memory_utilization {utilization} x {hw.gpu_memory_gb:g} GB minus the above"))
    splan.checks.append((f"weights {weights / GB:.1f} GB fit in vLLM's share {share / GB:.1f} GB",
                         weights + hw.vllm_overhead_gb * GB <= share))
    _vllm_kv_check(splan, shape, share, tp, hw, need, batch, seq_len)
    return splan


def _colocated_vllm(cfg, plan: GpuPlan, vllm: dict, shape: ModelShape, batch: int, seq_len: int) -> None:
    """TRL's colocated vLLM on a training GPU: its share, in the generation phase only when it sleeps."""
    hw = cfg.hardware
    tp = int(vllm.get("tensor_parallel_size", 1))
    share = float(vllm.get("gpu_memory_utilization", 0.3)) * hw.gpu_memory_gb * GB
    asleep = bool(vllm.get("enable_sleep_mode", False))
    plan.items.append(Item("vLLM share (colocate)", share, f"gpu_memory_utilization x {hw.gpu_memory_gb:g} GB"
                           + ("; asleep during the update" if asleep else ""),
                           phase="generation" if asleep else "both"))
    need = int(vllm.get("max_model_length") or shape.max_positions)  # vLLM's default: the model's context
    _vllm_kv_check(plan, shape, share, tp, hw, need, batch * tp, seq_len)


def _reference_model(plan: GpuPlan, grpo: dict, shape: ModelShape, zero, world: int, weight_bytes: int) -> None:
    """TRL's reference model when beta > 0: a copy (partitioned under ZeRO-3), none with LoRA."""
    if float(grpo.get("beta", 0)) > 0 and not lora_r_of(grpo):
        ref_bytes = (2 * shape.params / world) if zero.stage == 3 else weight_bytes * shape.params
        plan.items.append(Item("reference model (beta > 0)", ref_bytes,
                               "ZeRO-3 partitioned like the policy" if zero.stage == 3 else "a full copy"))
    elif float(grpo.get("beta", 0)) > 0:
        plan.notes.append("reference model: the base weights with the LoRA adapters disabled (no extra copy)")


def build_grpo(cfg: PipelineConfig, name: str, memory: StageMemory) -> None:
    hw = cfg.hardware
    grpo = grpo_values(cfg, name)
    settings = cfg.stages.get(name, StageSettings())
    shape = model_shape(grpo.get("policy", "smollm2-135m-instruct"))
    lora_r = lora_r_of(grpo)
    zero = Zero.read(grpo.get("deepspeed"))
    weight_bytes = dtype_bytes(grpo.get("policy_dtype", "float32"))
    prompt = grpo.get("max_prompt_tokens") or hw.prompt_tokens
    completion = int(grpo.get("max_completion_length", 64))
    seq_len = prompt + completion
    per_device = int(grpo.get("prompts_per_step", 4)) * int(grpo.get("num_generations", 4))
    plan = _training(cfg, memory, shape, weight_bytes=weight_bytes, lora_r=lora_r, zero=zero, sequences=per_device,
                     seq_len=seq_len, checkpointing=bool(grpo.get("gradient_checkpointing", False)),
                     role="training process", lora_extra=lora_dropout_extra(shape, grpo))
    if not grpo.get("max_prompt_tokens"):
        plan.notes.append(f"prompt length assumed {hw.prompt_tokens} tokens (no max_prompt_tokens in the config)")
    world = memory.processes  # set by _training
    launcher = settings.launcher
    if launcher.kind == "python" and name == "grpo":
        if launcher.devices is not None and len(launcher.devices.split(",")) > 1:
            memory.problems.append(f"one python process sees GPUs {launcher.devices}: TRL refuses DataParallel "
                                   "(n_gpu > 1); use kind torchrun or accelerate, one process per GPU")
        elif launcher.devices is None and hw.gpus_per_node > 1:
            memory.notes.append("one python process on a multi-GPU machine: set launcher.devices (e.g. '0') or "
                                "CUDA_VISIBLE_DEVICES, or TRL sees several GPUs and refuses DataParallel")
    _reference_model(plan, grpo, shape, zero, world, weight_bytes)
    vllm = grpo.get("vllm") or {}
    generation_batch = per_device * int(grpo.get("steps_per_generation", 1))
    if vllm.get("enabled") and vllm.get("mode", "colocate") == "colocate":
        _colocated_vllm(cfg, plan, vllm, shape, generation_batch, seq_len)
    elif vllm.get("enabled"):
        if not any(s.kind == "vllm" for s in settings.servers):
            plan.notes.append("vLLM server mode: add a `servers: [{kind: vllm, ...}]` entry so the plan counts it")
    else:
        plan.notes.append("rollouts with transformers generate on the training GPU (KV cache not counted)")
    # The reward model: a copy on every training GPU, or a server on its own GPU.
    rm_url = is_url(grpo.get("reward_model"))
    rm_shape, rm_params, rm_values = rm_model(cfg, "rm")
    rm_len = int(rm_values.get("max_length", 256))
    if rm_url:
        plan.notes.append(f"reward model served at {grpo.get('reward_model')}: no copy on the training GPUs")
    else:
        plan.items.append(Item("RM copy", dtype_bytes(grpo.get("rm_dtype", "auto")) * rm_params, f"{billions(rm_shape)} backbone in "
                               f"{grpo.get('rm_dtype', 'auto')} (auto: bf16 on GPU) [{rm_shape.source}]"))
        plan.items.append(Item("RM scoring activations", inference_activations(
            rm_shape, int(grpo.get("rm_batch_size", 32)), rm_len), f"{KORTHIKANTI}, one layer, no gradients",
            phase="generation"))
    _overhead(cfg, plan)
    for server in settings.servers:
        if server.kind == "vllm":
            _vllm_server(cfg, memory, f"vLLM server GPU (TP={server.tensor_parallel_size})", "policy", shape,
                         server.tensor_parallel_size, server.gpu_memory_utilization,
                         int(server.max_model_len or seq_len), generation_batch * world, seq_len)
        else:
            splan = _process(cfg, memory, "RM server GPU", 1)
            batch = int(server.batch_size or grpo.get("rm_batch_size", 32))
            splan.items.append(Item("RM weights", dtype_bytes("auto") * rm_params,
                                    f"{billions(rm_shape)} backbone in bf16 [{rm_shape.source}]"))
            splan.items.append(Item("scoring activations", inference_activations(rm_shape, batch, rm_len),
                                    f"{KORTHIKANTI}, one layer, {batch} pairs x {rm_len} tokens"))
            _overhead(cfg, splan)
    if rm_url and not any(s.kind == "rm" for s in settings.servers):
        plan.notes.append("the RM server is not listed under `servers`: its GPU is not counted")


def _causal_inference(cfg, memory, model: str, dtype: str | None, batch: int, prompt: int, new_tokens: int,
                      copies: int = 1, spread_over: int = 1, role: str = "process") -> GpuPlan:
    shape = model_shape(model)
    plan = _process(cfg, memory, role, spread_over)
    b = dtype_bytes(dtype)
    plan.items.append(Item(f"{model} weights" + (f" x{copies}" if copies > 1 else ""),
                           copies * b * shape.params / spread_over, f"{b} B x {billions(shape)} params"
                           + (f" / {spread_over} GPUs (device spread)" if spread_over > 1 else "")
                           + f" [{shape.source}]"))
    seq = prompt + new_tokens
    plan.items.append(Item("KV cache (transformers generate)", batch * seq * shape.kv_bytes_per_token(b) / spread_over,
                           f"{batch} seq x {seq} tokens x {KV_FORMULA}"))
    prefill = inference_activations(shape, batch, prompt) / spread_over
    plan.items.append(Item("activations (prefill, one layer)", prefill, KORTHIKANTI))
    return plan


def build_compare(cfg: PipelineConfig, name: str, memory: StageMemory) -> None:
    from pipeline.plan_methods import build_compare as build

    build(cfg, name, memory)


BUILDERS = {"rm": build_rm_training, "mrbench_rm": build_rm_training, "consistency": build_consistency,
            "grpo": build_grpo, "sweep": build_grpo, "compare": build_compare}

from pipeline.plan_classroom import build_classroom, build_classroom_eval  # noqa: E402 (uses the helpers above)
from pipeline.plan_inference import build_eval, build_generate, build_label  # noqa: E402 (likewise)

BUILDERS.update(classroom=build_classroom, classroom_eval=build_classroom_eval, annotate=build_label,
                mrbench_label=build_label, generate=build_generate, eval=build_eval)


# ----------------------------------------------------------------------------------------------- output
def memory_plan(cfg: PipelineConfig, stages: list[str]) -> dict:
    plans = [plan_stage(cfg, name) for name in stages]
    hw = cfg.hardware
    return {
        "name": cfg.name, "fits": all(p.fits for p in plans),
        "hardware": json.loads(hw.model_dump_json()),
        "stages": [p.as_dict() for p in plans],
    }


from pipeline.plan_render import render  # noqa: E402,F401 (the CLI's and tests' entry point)
