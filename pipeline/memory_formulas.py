"""The memory formulas of the plan (pipeline/plan.py, whose docstring says where each comes from): bytes per weight,
activations per token and layer (Korthikanti et al. 2022, adapted), and per-GPU model states by ZeRO stage and
offload (the ZeRO paper's count, partitioned as DeepSpeed's estimators do)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.config import ConfigError
from pipeline.model_sizes import ModelShape

GB = 1e9
ZERO_PAPER = "ZeRO paper 2+2+12 B/param"
KORTHIKANTI = "Korthikanti et al. 2022"
KV_FORMULA = "2 x layers x kv_heads x head_dim x 2 B per token"


@dataclass
class Item:
    name: str
    bytes: float
    source: str = ""
    phase: str = "both"  # "update" (training step only), "generation" (rollouts/scoring only) or "both"



def dtype_bytes(name: str | None, default: int = 2) -> int:
    """Bytes per weight: float32 4; bfloat16, float16 and auto (bf16 on a GPU) 2."""
    if name is None:
        return default
    return 4 if str(name) in {"float32", "fp32", "torch.float32"} else 2


def billions(shape: ModelShape) -> str:
    return f"{shape.params / 1e9:.2f}B" if shape.params >= 1e9 else f"{shape.params / 1e6:.0f}M"


def layer_bytes_per_token(shape: ModelShape, seq_len: int) -> float:
    """Activation bytes one layer stores per token for the backward pass (Korthikanti et al. 2022, adapted)."""
    h, i = shape.hidden, shape.intermediate
    if shape.encoder:  # GeLU MLP with dropout, eager attention keeps the s x s scores: 34h + 5as, MLP scaled to i
        return 18 * h + 4 * i + 5 * shape.heads * seq_len
    return 16 * h + 8 * i  # SwiGLU, no dropout, flash/SDPA attention


# Input width of each linear module LoRA can adapt, by name (decoders: Qwen2/Llama; encoders: BERT, whose "dense"
# modules are the attention output (h), intermediate (h) and output (i) ones).
_LORA_INPUTS = {"q_proj": "h", "k_proj": "h", "v_proj": "h", "o_proj": "h", "gate_proj": "h", "up_proj": "h",
                "down_proj": "i", "query": "h", "key": "h", "value": "h", "dense": "2h+i"}


def lora_dropout_bytes_per_token(shape: ModelShape, r: int, dropout: float, targets) -> float:
    """Per layer and token, what peft's LoRA dropout keeps for the backward pass: for each adapted linear, its input
    after dropout (2 B in bf16) and the dropout mask (1 B), i.e. 3 B x the sum of the adapted modules' input widths.
    Nothing without LoRA or with dropout 0. For Qwen2.5-7B with all-linear targets that is 18h + 3i = 121 kB, +58%
    over the layer's own 16h + 8i."""
    if r <= 0 or dropout <= 0:
        return 0.0
    h, i = shape.hidden, shape.intermediate
    if targets == "all-linear":
        width = (5 * h + i) if shape.encoder else (6 * h + i)
    else:
        names = [targets] if isinstance(targets, str) else list(targets)
        sizes = {"h": h, "i": i, "2h+i": 2 * h + i}
        width = sum(sizes[_LORA_INPUTS[n.rsplit(".", 1)[-1]]] for n in names if n.rsplit(".", 1)[-1] in _LORA_INPUTS)
    return 3.0 * width


def activations(shape: ModelShape, sequences: int, seq_len: int, lora_extra: float = 0.0) -> tuple[float, float]:
    """(without, with) gradient checkpointing, bytes for one micro-batch on one GPU; `lora_extra` is
    `lora_dropout_bytes_per_token` (per layer and token, stored like the layer's own activations)."""
    tokens = sequences * seq_len
    per = layer_bytes_per_token(shape, seq_len) + lora_extra
    return shape.layers * tokens * per, shape.layers * tokens * 2 * shape.hidden + tokens * per


def inference_activations(shape: ModelShape, sequences: int, seq_len: int) -> float:
    """A forward pass without gradients keeps about one layer's activations alive at a time."""
    return sequences * seq_len * layer_bytes_per_token(shape, seq_len)


@dataclass
class Zero:
    stage: int = 0
    offload_optimizer: bool = False
    offload_param: bool = False

    @classmethod
    def read(cls, deepspeed) -> "Zero":
        """From a GRPO/RM config's `deepspeed`: an inline dict or a JSON file path (None: no DeepSpeed)."""
        if deepspeed is None:
            return cls()
        if isinstance(deepspeed, (str, Path)):
            path = Path(deepspeed)
            if not path.exists():
                raise ConfigError(f"deepspeed config {path} not found")
            deepspeed = json.loads(path.read_text())
        zero = deepspeed.get("zero_optimization") or {}

        def offloaded(key):
            return (zero.get(key) or {}).get("device", "none") in {"cpu", "nvme"}

        stage = zero.get("stage", 0)
        if not isinstance(stage, int):
            raise ConfigError(f"deepspeed zero_optimization.stage: {stage!r}; the plan needs a number (0-3)")
        return cls(stage, offloaded("offload_optimizer"), offloaded("offload_param"))

    def describe(self) -> str:
        if self.stage == 0:
            return "no ZeRO"
        off = [k for k, on in (("optimizer", self.offload_optimizer), ("params", self.offload_param)) if on]
        return f"ZeRO-{self.stage}" + (f", {' + '.join(off)} offloaded to CPU" if off else "")


def model_states(shape: ModelShape, *, weight_bytes: int, lora_r: int, zero: Zero, world: int,
                 nodes: int) -> tuple[list[Item], float]:
    """Per-GPU weights, gradients, optimizer states (and ZeRO-3 gather buffers); CPU bytes per node for offload."""
    P = shape.params
    lora = lora_r > 0
    T = shape.lora_params(lora_r) if lora else P
    N = max(world, 1)
    ds = zero.stage > 0
    w = 2 if ds else weight_bytes  # DeepSpeed keeps bf16/fp16 weights; its fp32 copies are optimizer state
    src = f"DeepSpeed estimator, {zero.describe()}, N={N}" if ds else ZERO_PAPER
    items: list[Item] = []
    base = "frozen base weights" if lora else "weights"
    if zero.stage == 3:
        items.append(Item(base, 0 if zero.offload_param else w * P / N, f"{w}P/N ({src})" if not zero.offload_param
                          else "offloaded to CPU"))
    else:
        items.append(Item(base, w * P, f"{w} B x {billions(shape)} params"))
    if lora:
        grad_b, opt_b, what = 4, 12, f"LoRA r={lora_r}: {T / 1e6:.1f}M fp32 adapter params"
    else:
        grad_b, opt_b, what = (4, 8, "fp32 AdamW") if (w == 4 and not ds) else (2, 12, ZERO_PAPER)
    if zero.offload_optimizer:
        grads = optim = 0.0
        gsrc = osrc = f"offloaded to CPU ({src})"
    else:
        if zero.stage >= 3:
            grads, gsrc = 4 * T / N, f"4T/N ({src})"
        elif zero.stage == 2:
            grads, gsrc = 2 * T + 4 * T / N, f"2T + 4T/N ({src})"
        else:
            grads, gsrc = grad_b * T, f"{grad_b} B x trained params ({what})"
        optim = opt_b * T / (N if zero.stage >= 1 else 1)
        osrc = f"{opt_b}T" + ("/N" if zero.stage >= 1 else "") + f" ({what if not ds else src})"
    items.append(Item("gradients", grads, gsrc, phase="update"))
    items.append(Item("optimizer states", optim, osrc))  # kept between steps, like the weights
    if zero.stage == 3:
        items.append(Item("ZeRO-3 gather buffers", 4 * shape.largest_layer_params,
                          "4 x largest layer params (DeepSpeed estimator)"))
    cpu = 0.0
    if zero.offload_optimizer:
        if zero.stage == 3:
            cpu = T * (18 if zero.offload_param else 16) / nodes * 1.5
        else:
            cpu = T * max(4 * N, 16) * 1.5
    return items, cpu
