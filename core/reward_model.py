"""HPC-RM: a backbone (encoder or decoder) with one head per rubric dimension, saved as a self-describing folder.

Heads:
- "ordinal": a softmax over the dimension's ordered levels, trained with class-weighted cross-entropy and read
  as its expected value (a score in [0, max_level]); the discrete level is the most probable one.
- "regression": one output squashed into [0, max_level] by a sigmoid, trained with class-weighted squared error;
  the discrete level is the rounded score.
Pooling: for encoders the mean over all tokens next to the mean over the response's tokens ("mean_pair": the
labels are about the response, read in its context), or the plain mean; for decoders the last non-pad token.

Folder layout (everything scoring needs): `rm_config.json` (RMSpec: backbone, rubric, heads, aggregation
weights, lengths, training config), `backbone/` (full weights + tokenizer) or `adapter/` (LoRA) + `tokenizer/`,
and `heads.safetensors`.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from core.errors import ModelNotFoundError
from core.models import is_encoder, load_tokenizer, resolve_model
from core.rubric import Rubric, load_rubric
from core.schema import write_json
from core.reward_encoding import encode_pairs, pad_batch

HeadKind = Literal["ordinal", "regression"]
Pooling = Literal["mean_pair", "mean", "last"]
# Scoring pads a batch of 2+ pairs to a multiple of this many tokens: PyTorch's CPU flash attention runs odd
# lengths ~1.5x slower (bf16, 32 x 12 heads: 7-10 ms at 100-125 tokens, ~5 ms padded to a multiple of 16).
# A single pair is not padded: its attention is ~1% of its time, and padding would add work to every layer.
SCORING_LENGTH_MULTIPLE = 16


class LoraSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(0, ge=0, description="LoRA rank; 0 = full fine-tuning (right for small backbones)")
    alpha: int = Field(32, description="LoRA alpha (scaling = alpha / r)")
    dropout: float = Field(0.05, description="LoRA dropout")
    target_modules: list[str] | str = Field("all-linear", description="modules LoRA adapts (peft syntax)")


class RMSpec(BaseModel):
    """Everything needed to rebuild a reward model; stored as rm_config.json."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    backbone: str = Field(description="registry name, hub id or path of the backbone it was built from")
    decoder: bool = Field(description="True for decoder backbones (they need 'last' pooling)")
    pooling: Pooling = Field("mean_pair", description="how token states become one vector")
    rubric: Rubric
    head: HeadKind = "ordinal"
    head_hidden: int = Field(0, description="0: linear heads; >0: one hidden layer of this width per head")
    freeze_backbone: bool = Field(False, description="train the heads only (backbone weights stay pretrained)")
    weights: dict[str, float] = Field(description="aggregation weights per dimension")
    max_length: int = 512
    max_response_tokens: int = 192
    read_context: bool = Field(True, description="False: the context is not read, the response is scored alone")
    dropout: float = 0.1
    lora: LoraSpec = Field(default_factory=LoraSpec)
    training: dict = Field(default_factory=dict, description="the training config used, for the record")
    level_logit_shift: dict[str, list[float]] = Field(
        default_factory=dict, description="per dimension, added to the ordinal head's logits before the argmax that "
        "picks a level (set by training from the label frequencies; see hpc_rm.data.level_logit_shift); scores "
        "are not affected")


def check_rm_folder(path: str | Path) -> Path:
    """The folder, or ModelNotFoundError (bad input: one error line) when it holds no reward model."""
    path = Path(path)
    if not (path / "rm_config.json").exists():
        raise ModelNotFoundError(str(path), f"reward model {str(path)!r}: not a reward model folder (no "
                                            f"rm_config.json; `python -m hpc_rm train` writes one)")
    return path


def read_rm_spec(path: str | Path) -> "RMSpec":
    """A reward model folder's spec (rubric, backbone, heads) without loading any weights."""
    return RMSpec.model_validate_json((check_rm_folder(path) / "rm_config.json").read_text())


def _check_weights(rubric: Rubric, weights: dict[str, float]) -> dict[str, float]:
    if set(weights) != set(rubric.names):
        raise ValueError(f"weights must name exactly the dimensions {rubric.names}, got {sorted(weights)}")
    return {name: float(weights[name]) for name in rubric.names}


def _load_backbone(name_or_path: str, lora: LoraSpec, dtype: torch.dtype):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(resolve_model(name_or_path), dtype=dtype)
    if lora.r > 0:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
        ))
    return model


class HPCRewardModel(nn.Module):
    def __init__(self, spec: RMSpec, backbone: nn.Module, tokenizer):
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.tokenizer = tokenizer
        tokenizer.truncation_side = "left"  # keep the end of the dialogue if a context still overflows
        if spec.decoder and spec.pooling != "last":
            raise ValueError(f"decoder backbone {spec.backbone}: pooling must be 'last', not {spec.pooling!r}")
        self.pooled_size = backbone.config.hidden_size * (2 if spec.pooling == "mean_pair" else 1)
        self.dropout = nn.Dropout(spec.dropout)
        self.heads = nn.ModuleDict({d.name: self._make_head(len(d.levels)) for d in spec.rubric.dimensions})
        if spec.freeze_backbone:
            self.backbone.requires_grad_(False)
        # Stored with the weights so a checkpoint is complete; read by the loss.
        self.max_levels = {d.name: d.max_score for d in spec.rubric.dimensions}

    def _head_width(self, n_levels: int) -> int:
        return n_levels if self.spec.head == "ordinal" else 1

    def _make_head(self, n_levels: int) -> nn.Module:
        n_out = self._head_width(n_levels)
        if self.spec.head_hidden <= 0:
            return nn.Linear(self.pooled_size, n_out)
        return nn.Sequential(nn.Linear(self.pooled_size, self.spec.head_hidden), nn.GELU(),
                             nn.Dropout(self.spec.dropout), nn.Linear(self.spec.head_hidden, n_out))

    # -- construction / persistence ------------------------------------------------------------------------------
    @classmethod
    def from_backbone(cls, backbone: str, rubric: Rubric | str, weights: dict[str, float] | None = None, *,
                      head: HeadKind = "ordinal", head_hidden: int = 0, pooling: Pooling | None = None,
                      freeze_backbone: bool = False, max_length: int = 512, max_response_tokens: int = 192,
                      read_context: bool = True, dropout: float = 0.1, lora: LoraSpec | None = None,
                      dtype: str = "float32", training: dict | None = None) -> "HPCRewardModel":
        """Untrained heads on a pretrained backbone, for any rubric (pooling defaults to the backbone's kind)."""
        rubric = load_rubric(rubric) if isinstance(rubric, (str, Path)) else rubric
        decoder = not is_encoder(str(backbone))
        spec = RMSpec(
            backbone=str(backbone), decoder=decoder, pooling=pooling or ("last" if decoder else "mean_pair"),
            rubric=rubric, head=head, head_hidden=head_hidden, freeze_backbone=freeze_backbone,
            weights=_check_weights(rubric, weights or rubric.default_weights()), max_length=max_length,
            max_response_tokens=max_response_tokens, read_context=read_context, dropout=dropout,
            lora=lora or LoraSpec(), training=training or {},
        )
        model = _load_backbone(spec.backbone, spec.lora, getattr(torch, dtype))
        return cls(spec, model, load_tokenizer(spec.backbone))

    def save_pretrained(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.spec.lora.r > 0:
            self.backbone.save_pretrained(path / "adapter")
            self.tokenizer.save_pretrained(path / "tokenizer")
        else:
            self.backbone.save_pretrained(path / "backbone")
            self.tokenizer.save_pretrained(path / "backbone")
        heads = {k: v.detach().cpu().contiguous() for k, v in self.heads.state_dict().items()}
        tmp = path / ".heads.safetensors.tmp"
        save_file(heads, str(tmp))
        os.replace(tmp, path / "heads.safetensors")  # a reader never sees half a file
        write_json(path / "rm_config.json", json.loads(self.spec.model_dump_json()))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "HPCRewardModel":
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        path = Path(path)
        spec = read_rm_spec(path)
        if spec.lora.r > 0:
            from peft import PeftModel

            base = AutoModel.from_pretrained(resolve_model(spec.backbone), dtype=torch.float32)
            backbone = PeftModel.from_pretrained(base, path / "adapter")
            tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
        else:
            backbone = AutoModel.from_pretrained(path / "backbone", dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(path / "backbone")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = cls(spec, backbone, tokenizer)
        model.heads.load_state_dict(load_file(path / "heads.safetensors"))
        return model.to(device).eval()

    # -- properties the policy stage reads -----------------------------------------------------------------------
    @property
    def rubric(self) -> Rubric:
        return self.spec.rubric

    @property
    def dimensions(self) -> list[str]:
        return self.spec.rubric.names

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.spec.weights)

    # -- forward -------------------------------------------------------------------------------------------------
    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor,
             response_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.spec.pooling == "last":  # last non-pad token; works for right or left padding
            positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
            last = (attention_mask * positions).argmax(dim=1)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

        def masked_mean(mask):
            mask = mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

        pooled = masked_mean(attention_mask)
        if self.spec.pooling == "mean_pair":
            pooled = torch.cat([pooled, masked_mean(response_mask if response_mask is not None else attention_mask)], -1)
        return pooled

    def embed(self, input_ids, attention_mask, token_type_ids=None, response_mask=None) -> torch.Tensor:
        """The pooled vector the heads read."""
        # Scoring a batch without padding passes no mask: eager transformers drops an all-ones mask itself, a
        # compiled graph cannot, so it is dropped here.
        unpadded = not torch.is_grad_enabled() and bool(attention_mask.all())
        inputs = {"input_ids": input_ids, "attention_mask": None if unpadded else attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.backbone(**inputs).last_hidden_state.float()  # pool and run the heads in fp32
        return self.pool(hidden, attention_mask, response_mask)

    def cast_backbone(self, dtype: torch.dtype) -> "HPCRewardModel":
        """For inference: cast the backbone's weights (bf16 halves weight traffic and runs on the CPU's bf16 units
        where present); pooling and heads stay fp32. Returns self."""
        self.backbone.to(dtype)
        return self

    def compile_backbone(self) -> "HPCRewardModel":
        """For inference: compile the backbone with TorchInductor (`torch.compile`), its weights frozen as
        constants under no-grad. That fuses the element-wise work (GELU, layer norms, residual adds: a third of
        eager bf16 time) and pre-packs the matmul weights. Shapes are dynamic: batches of 2+ pairs of any length
        compile once with padding and once without, a single pair once more (~10-20 s each for MiniLM on
        2 cores). Needs a C++ compiler on CPU. Call it last, after `cast_backbone` and any training. Parameter
        names are unchanged, so the folder still saves and loads. Returns self."""
        import torch._inductor.config as inductor_config
        from torch._inductor.cpp_builder import get_cpp_compiler
        from torch._inductor.exc import InvalidCxxCompiler

        if next(self.backbone.parameters()).device.type == "cpu":
            try:  # fail here with a plain message, not inside the first scored batch
                get_cpp_compiler()
            except InvalidCxxCompiler as err:
                raise RuntimeError(f"compiling the backbone (hpc_rm score --compile true) needs a C++ compiler for "
                                   f"TorchInductor on CPU; none found among {inductor_config.cpp.cxx}. Install one "
                                   "(e.g. apt install g++) or score without --compile.") from err
        # Set globally: passing options={"freezing": True} to torch.compile gave 118-161 pairs/s in torch 2.13,
        # eager 147, the global flag 167-203 (synthetic MiniLM batches). Freezing only touches no-grad graphs.
        inductor_config.freezing = True
        self.backbone.compile(dynamic=True)
        return self

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, response_mask=None,
                pooled=None) -> dict[str, torch.Tensor]:
        """Raw head outputs per dimension: level logits (ordinal) or one pre-sigmoid value (regression).
        `pooled` (from `embed`) skips the backbone: a frozen backbone's vectors are computed once."""
        if pooled is None:
            if self.spec.freeze_backbone:
                with torch.no_grad():
                    pooled = self.embed(input_ids, attention_mask, token_type_ids, response_mask)
            else:
                pooled = self.embed(input_ids, attention_mask, token_type_ids, response_mask)
        pooled = self.dropout(pooled)
        return {name: head(pooled) for name, head in self.heads.items()}

    def scores_from_outputs(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Continuous scores in [0, max_level] per dimension."""
        scores = {}
        for name, out in outputs.items():
            if self.spec.head == "ordinal":
                levels = torch.arange(out.shape[-1], device=out.device, dtype=out.dtype)
                scores[name] = (out.softmax(-1) * levels).sum(-1)
            else:
                scores[name] = torch.sigmoid(out.squeeze(-1)) * self.max_levels[name]
        return scores

    def levels_from_outputs(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Discrete predicted level per dimension."""
        if self.spec.head == "ordinal":
            shift = self.spec.level_logit_shift
            return {name: (out + out.new_tensor(shift[name]) if name in shift else out).argmax(-1)
                    for name, out in outputs.items()}
        return {name: s.round().long() for name, s in self.scores_from_outputs(outputs).items()}

    # -- inference -----------------------------------------------------------------------------------------------
    def encode(self, contexts: list[str], responses: list[str]) -> list[dict[str, list[int]]]:
        if not self.spec.read_context:
            contexts = [""] * len(responses)
        return encode_pairs(self.tokenizer, contexts, responses, decoder=self.spec.decoder,
                            max_length=self.spec.max_length, max_response_tokens=self.spec.max_response_tokens)

    @contextmanager
    def _eval_mode(self):
        """Eval mode inside, the previous mode after. Toggles only a model in training mode: walking every
        submodule costs ~2 ms, 8% of scoring one pair at a time."""
        was_training = self.training
        if was_training:
            self.eval()
        try:
            yield
        finally:
            if was_training:
                self.train()

    def _batches(self, features: list[dict[str, list[int]]], batch_size: int, progress: bool, desc: str):
        """(indices, padded batch on the model's device), longest pairs first so each batch has little padding."""
        from tqdm.auto import tqdm

        order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]), reverse=True)
        device = next(self.parameters()).device
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", disable=not progress):
            idx = order[start:start + batch_size]
            multiple = SCORING_LENGTH_MULTIPLE if len(idx) > 1 else 1
            batch = pad_batch(self.tokenizer, [features[i] for i in idx], multiple_of=multiple)
            yield idx, {k: v.to(device) for k, v in batch.items()}

    @torch.no_grad()
    def embed_pairs(self, contexts: list[str], responses: list[str], batch_size: int = 32,
                    progress: bool = False) -> torch.Tensor:
        """Pooled vectors in input order (eval mode), e.g. to train heads on a frozen backbone."""
        features = self.encode(contexts, responses)
        pooled = torch.zeros(len(features), self.pooled_size)
        with self._eval_mode():
            for idx, batch in self._batches(features, batch_size, progress, "embedding"):
                pooled[idx] = self.embed(**batch).cpu()
        return pooled

    @torch.no_grad()
    def predict_outputs(self, contexts: list[str], responses: list[str], batch_size: int = 32,
                        progress: bool = False) -> dict[str, torch.Tensor]:
        """Raw head outputs per dimension in input order (ordinal: logits over levels); length-sorted batches."""
        features = self.encode(contexts, responses)
        outputs = {d.name: torch.zeros(len(features), self._head_width(len(d.levels)))
                   for d in self.spec.rubric.dimensions}
        with self._eval_mode():
            for idx, batch in self._batches(features, batch_size, progress, "scoring"):
                for name, value in self(**batch).items():
                    outputs[name][idx] = value.float().cpu()
        return outputs

    def predict(self, contexts: list[str], responses: list[str], batch_size: int = 32,
                progress: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(scores, levels) per dimension in input order; length-sorted dynamic batches."""
        return self.readout(self.predict_outputs(contexts, responses, batch_size, progress))

    @torch.no_grad()
    def pooled_outputs(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs from vectors made by `embed_pairs` (only the heads run)."""
        device = next(self.heads.parameters()).device
        with self._eval_mode():
            return {k: v.float().cpu() for k, v in self(pooled=pooled.to(device)).items()}

    def predict_pooled(self, pooled: torch.Tensor) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(scores, levels) from vectors made by `embed_pairs`."""
        return self.readout(self.pooled_outputs(pooled))

    def readout(self, outputs: dict[str, torch.Tensor]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(scores, levels) per dimension as numpy arrays from raw head outputs."""
        scores = {k: v.float().cpu().numpy() for k, v in self.scores_from_outputs(outputs).items()}
        levels = {k: v.cpu().numpy() for k, v in self.levels_from_outputs(outputs).items()}
        return scores, levels

    def score(self, contexts: list[str], responses: list[str], batch_size: int = 32,
              progress: bool = False) -> dict[str, np.ndarray]:
        """Score per dimension, each in [0, max_level], in input order."""
        return self.predict(contexts, responses, batch_size=batch_size, progress=progress)[0]

    def reward(self, preds: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
        """Weighted sum of the per-dimension scores (weights default to the model's aggregation weights)."""
        weights = _check_weights(self.rubric, weights) if weights is not None else self.spec.weights
        return sum(weights[name] * np.asarray(preds[name], dtype=np.float64) for name in self.dimensions)
