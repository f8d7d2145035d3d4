"""Model shapes for the memory plan, offline: a model's own `config.json` when it resolves to a local folder (read
through `transformers.AutoConfig`, no weights), otherwise a small table of the hub models the shipped configs name,
copied from their published config.json files on the Hugging Face hub."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "distilbert", "electra", "mpnet",
                 "modernbert"}


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool = False
    encoder: bool = False  # BERT-like (GeLU MLP, learned positions) instead of a SwiGLU decoder
    max_positions: int = 32768  # max_position_embeddings: vLLM's context window unless max_model_len says less
    qkv_bias: bool = True  # Qwen2 has biases on q, k and v; Llama (attention_bias false) has none
    type_vocab: int = 2  # encoders: token type embeddings
    source: str = ""  # where the numbers come from

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def params(self) -> int:
        """Parameter count from the shape. Decoders (Qwen2/Llama): q/k/v with biases as Qwen2 has them, o, a gated
        MLP (3 matrices), two RMSNorms per layer, embeddings and an untied LM head. Encoders: BERT's layout."""
        h, i, L, V = self.hidden, self.intermediate, self.layers, self.vocab
        kv = self.kv_heads * self.head_dim
        if self.encoder:  # embeddings (+ positions, token types, LayerNorm), layers, pooler
            per_layer = 4 * h * h + 4 * h + 2 * h * i + i + h + 4 * h
            return (V + self.max_positions + self.type_vocab) * h + 2 * h + L * per_layer + h * h + h
        bias = (h + 2 * kv) if self.qkv_bias else 0
        per_layer = h * h + 2 * h * kv + bias + h * h + 3 * h * i + 2 * h
        return V * h * (1 if self.tied_embeddings else 2) + L * per_layer + h

    @property
    def largest_layer_params(self) -> int:
        """The largest single module (DeepSpeed's `largest_layer_params`): the embedding or the LM head for LLMs."""
        return max(self.vocab * self.hidden, self.hidden * self.intermediate)

    def lora_params(self, r: int) -> int:
        """LoRA adapters on every linear layer of the blocks (peft's `all-linear`, which leaves the LM head out):
        r x (in + out) per adapted matrix."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        if self.encoder:
            per_layer = 4 * (h + h) + (h + i) + (i + h)
        else:
            per_layer = 2 * (h + h) + 2 * (h + kv) + 2 * (h + i) + (i + h)
        return r * per_layer * self.layers

    def kv_bytes_per_token(self, dtype_bytes: int = 2, tensor_parallel: int = 1) -> int:
        """vLLM's KV cache per token on one GPU: 2 (K and V) x layers x kv heads x head dim x dtype bytes, the kv
        heads split over the tensor-parallel GPUs (at least one head each)."""
        heads = max(1, -(-self.kv_heads // tensor_parallel))
        return 2 * self.layers * heads * self.head_dim * dtype_bytes

    def as_dict(self) -> dict:
        return {**asdict(self), "params": self.params, "head_dim": self.head_dim}


def _qwen(layers, hidden, intermediate, heads, kv_heads, max_positions) -> ModelShape:
    return ModelShape(layers, hidden, intermediate, heads, kv_heads, 152064, False, max_positions=max_positions,
                      source="table: the model's published config.json")


# num_hidden_layers, hidden_size, intermediate_size, num_attention_heads, num_key_value_heads, vocab_size (152064),
# tie_word_embeddings (false) and max_position_embeddings of each model's config.json on huggingface.co. Parameter
# counts from these shapes: 7,615,616,512 / 32,763,876,352 / 72,706,203,648, the model cards' 7.61B, 32.5B, 72.7B.
KNOWN_MODELS: dict[str, ModelShape] = {
    "Qwen/Qwen2.5-7B": _qwen(28, 3584, 18944, 28, 4, 131072),
    "Qwen/Qwen2.5-7B-Instruct": _qwen(28, 3584, 18944, 28, 4, 32768),
    "Qwen/Qwen2.5-32B": _qwen(64, 5120, 27648, 40, 8, 131072),
    "Qwen/Qwen2.5-32B-Instruct": _qwen(64, 5120, 27648, 40, 8, 32768),
    "Qwen/Qwen2.5-72B": _qwen(80, 8192, 29568, 64, 8, 131072),
    "Qwen/Qwen2.5-72B-Instruct": _qwen(80, 8192, 29568, 64, 8, 32768),
    # the classroom's student and judge (configs/policy/classroom_paper.yaml): 14.77B and 8.03B parameters
    "Qwen/Qwen2.5-14B-Instruct": _qwen(48, 5120, 13824, 40, 8, 32768),
    "meta-llama/Llama-3.1-8B-Instruct": ModelShape(32, 4096, 14336, 32, 8, 128256, False, max_positions=131072,
                                                   qkv_bias=False, source="table: the model's published config.json"),
    # The registry's models (core.models) as the registry loads them, for a GPU machine where their wheels are not
    # installed; where they are, their own config.json is read instead (a test checks the two agree). The Qwen
    # coders' GGUF conversion unties the LM head (630M / 1.78B parameters instead of the hub's 494M / 1.54B).
    "smollm2-135m-instruct": ModelShape(30, 576, 1536, 9, 3, 49152, True, max_positions=8192, qkv_bias=False,
                                        source="table: SmolLM2-135M-Instruct's config.json"),
    "minilm-l6": ModelShape(6, 384, 1536, 12, 12, 30522, encoder=True, max_positions=512,
                            source="table: all-MiniLM-L6-v2's config.json"),
    "qwen2.5-coder-0.5b-instruct": ModelShape(24, 896, 4864, 14, 2, 151936, False, max_positions=32768,
                                              source="table: Qwen2.5-Coder-0.5B-Instruct's config.json"),
    "qwen2.5-coder-1.5b-instruct": ModelShape(28, 1536, 8960, 12, 2, 151936, False, max_positions=32768,
                                              source="table: Qwen2.5-Coder-1.5B-Instruct's config.json"),
}


def _from_config(config, source: str) -> ModelShape:
    encoder = config.model_type in ENCODER_TYPES
    heads = config.num_attention_heads
    return ModelShape(
        layers=config.num_hidden_layers, hidden=config.hidden_size, intermediate=config.intermediate_size,
        heads=heads, kv_heads=getattr(config, "num_key_value_heads", None) or heads, vocab=config.vocab_size,
        tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)), encoder=encoder, source=source,
        max_positions=int(getattr(config, "max_position_embeddings", 0) or 32768),
        qkv_bias=config.model_type == "qwen2" or bool(getattr(config, "attention_bias", False)),
        type_vocab=int(getattr(config, "type_vocab_size", 2) or 0),
    )


def _local_folder(name: str) -> Path | None:
    """A local folder holding config.json for this name, without converting or downloading anything: a path, an
    embedded registry model already unpacked or converted, or a hub id in the local hub cache."""
    from core.models import EMBEDDED, _package_dir, cache_dir

    path = Path(name).expanduser()
    if (path / "config.json").exists():
        return path
    entry = EMBEDDED.get(name)
    if entry is not None:
        candidates = [cache_dir() / name, cache_dir() / name / getattr(entry, "inner", "")]
        if hasattr(entry, "package"):
            try:
                candidates.append(_package_dir(entry) / entry.file)
            except FileNotFoundError:
                pass
        return next((c for c in candidates if (c / "config.json").exists()), None)
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(name, "config.json")
        except Exception:  # a malformed id: not in the cache
            found = None
        if isinstance(found, str):
            return Path(found).parent
    return None


def model_shape(name: str) -> ModelShape:
    """The shape of a model by registry name, path or hub id: its local config.json if it resolves locally, else the
    table of known hub models; otherwise a ConfigError that says how to make it known."""
    folder = _local_folder(name)
    if folder is not None:
        from transformers import AutoConfig

        return _from_config(AutoConfig.from_pretrained(folder, local_files_only=True), f"config.json ({folder})")
    if name in KNOWN_MODELS:
        return KNOWN_MODELS[name]
    from core.config import ConfigError

    raise ConfigError(f"model {name!r}: no local config.json and not in the plan's table of known models "
                      f"({', '.join(KNOWN_MODELS)}); download its config.json (or the model) first, or add it to "
                      f"pipeline/model_sizes.py")
