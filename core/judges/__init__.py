"""LLM judges: a small interface and a registry, so a new kind of judge is one new class.

A judge has a name and scores (item, sample) jobs on a rubric, handing each finished `RawLabel` to a
callback as soon as it exists (the caller appends it to a resumable log). Backends register themselves
with `@register("kind")`; `build_judge(spec)` reads a spec such as `local`, `openai`,
`configs/judges/my-judge.yaml` or `local?model=/path/to/model&batch_size=2` (YAML file or name in
configs/judges/, then query-string overrides).
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl

import yaml
from pydantic import BaseModel, Field

from core.config import Config, ConfigError, load_yaml, validate
from core.rubric import Rubric
from core.schema import LabeledItem

JUDGE_DIR = Path(__file__).resolve().parent.parent.parent / "configs" / "judges"
BACKEND_MODULES = {"openai": "core.judges.openai_judge", "local": "core.judges.local_judge"}


class JudgeConfig(Config):
    """Fields every judge has; each backend's config adds its own."""

    backend: str = Field(description="which registered judge class runs this config (local, openai, ...)")
    name: str = Field("", description="judge name; labels are written as annotator 'llm:<name>' (default: spec name)")


class RawLabel(BaseModel):
    """One judge's answer for one sample of one item: a line of DIR/raw.jsonl."""

    item_id: str
    rubric_hash: str
    judge: str
    sample: int
    status: str = Field(description="'ok' or 'failed'")
    scores: dict[str, int] | None = None
    rationale: dict[str, str] | None = Field(None, description="per-dimension reason (API judges)")
    probs: dict[str, list[float]] | None = Field(None, description="per-dimension level probabilities (local judge)")
    expected: dict[str, float] | None = Field(None, description="probability-weighted level (local judge)")
    error: str | None = None
    attempts: int = 1
    tokens: int = 0

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.item_id, self.rubric_hash, self.judge, self.sample)


@dataclass(frozen=True)
class JudgeJob:
    item: LabeledItem
    sample: int


class Judge(ABC):
    """Scores items on a rubric. Subclasses set `config_cls` and implement `label`."""

    config_cls: ClassVar[type[JudgeConfig]] = JudgeConfig

    def __init__(self, config: JudgeConfig):
        self.config = config
        self.name = config.name
        # counters for the end-of-run summary; backends add their own keys
        self.stats: dict[str, float] = {"calls": 0, "failures": 0, "retries": 0, "tokens": 0}

    @abstractmethod
    def label(self, jobs: list[JudgeJob], rubric: Rubric, record: Callable[[RawLabel], None]) -> None:
        """Score every job; call `record` once per job (status ok or failed) as soon as it is done."""


JUDGES: dict[str, type[Judge]] = {}


def register(backend: str):
    def add(cls: type[Judge]) -> type[Judge]:
        JUDGES[backend] = cls
        return cls

    return add


def judge_class(backend: str) -> type[Judge]:
    if backend not in JUDGES and backend in BACKEND_MODULES:
        importlib.import_module(BACKEND_MODULES[backend])  # backends import heavy libraries only when used
    if backend not in JUDGES:
        raise ConfigError(f"unknown judge backend {backend!r} (known: {sorted(set(JUDGES) | set(BACKEND_MODULES))})")
    return JUDGES[backend]


def load_judge_config(spec: str) -> JudgeConfig:
    """`NAME_OR_YAML[?key=value&...]` -> the backend's validated config."""
    base, _, query = spec.partition("?")
    path = Path(base)
    if not path.exists() and (JUDGE_DIR / f"{base}.yaml").exists():
        path = JUDGE_DIR / f"{base}.yaml"
    if path.exists():
        data, source = load_yaml(path), str(path)
    elif base in BACKEND_MODULES or base in JUDGES:
        data, source = {"backend": base}, f"judge spec {spec!r}"
    else:
        raise ConfigError(f"judge spec {spec!r}: no file {base!r} and no {JUDGE_DIR}/{base}.yaml")
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        data[key] = value if key in {"name", "model", "base_url", "api_key_env"} else yaml.safe_load(value)
    data.setdefault("name", path.stem if path.exists() else base)
    if "backend" not in data:
        raise ConfigError(f"{source}: field backend: required (one of {sorted(BACKEND_MODULES)})")
    return validate(judge_class(data["backend"]).config_cls, data, source)


def build_judges(specs: list[str]) -> list[Judge]:
    judges = []
    for spec in specs:
        config = load_judge_config(spec)
        judges.append(judge_class(config.backend)(config))
    names = [j.name for j in judges]
    if len(set(names)) != len(names):
        raise ConfigError(f"judge names must be unique, got {names}; give each a name (e.g. 'local?name=local-b')")
    return judges
