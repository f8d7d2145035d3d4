"""Configs: pydantic models where every field carries a description; YAML files and CLI flags override them.

One place defines each option: `add_arguments(parser, Cls)` generates `--field-name` flags (help = the field's
description, nested models as `--section.field`), and `build_config(Cls, args)` merges defaults < YAML file
(`--config FILE`) < flags, then validates. Errors name the file and the field.
"""
from __future__ import annotations

import argparse
import json
import typing
from collections.abc import Hashable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.cli import ArgumentParser
from core.errors import BadInput, exits_on_bad_input, note_config
from core.schema import read_text


def is_url(value: object) -> bool:
    """True for an `http://` or `https://` address (any case), e.g. a reward model served by `hpc_rm serve` where a
    config may also name a folder. Here, light to import, so the pipeline can ask without loading torch."""
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))

C = TypeVar("C", bound="Config")

# A seed option: numpy (which transformers.set_seed seeds) takes 0 .. 2**32 - 1 and stops with a traceback otherwise.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class Config(BaseModel):
    """Base for every config: unknown keys are errors (a typo in YAML must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ConfigError(BadInput, ValueError):
    """A config file or flag the command cannot use; the message names the file and key (or the flag)."""


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _flags(cls: type[BaseModel], prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted key, help, field) for every leaf field of cls."""
    out = []
    for name, field in cls.model_fields.items():
        key = prefix + name
        sub = _nested_model(field.annotation)
        if sub is not None and typing.get_origin(field.annotation) not in (list, dict):
            out.extend(_flags(sub, key + "."))
        else:
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            shown = str(default) if isinstance(default, Path) else repr(default)
            notes = [*_bounds(field), *([f"default: {shown}"] if default is not None else [])]
            out.append((key, (field.description or "") + (f" ({'; '.join(notes)})" if notes else ""), field))
    return out


def _bounds(field) -> list[str]:
    """The field's bounds as --help shows them, e.g. ['>= 0', '< 1']."""
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return [f"{sign} {getattr(m, name)}" for m in field.metadata for name, sign in signs.items()
            if getattr(m, name, None) is not None]


def add_arguments(parser: argparse.ArgumentParser, cls: type[BaseModel], config_file: bool = True) -> None:
    """Add `--config FILE` and one `--dotted.name` flag per config field; values are parsed as YAML scalars."""
    if config_file:
        parser.add_argument("--config", type=Path, default=None, help="YAML file overriding the defaults")
    group = parser.add_argument_group(cls.__name__)
    for key, help_text, field in _flags(cls):
        # A bare boolean flag (`--admin`) means true; `--admin false` still works.
        bare = {"nargs": "?", "const": "true"} if field.annotation is bool else {}
        group.add_argument(
            "--" + key.replace("_", "-"), dest="cfg:" + key, default=None, metavar="VALUE",
            help=help_text.replace("%", "%%"), **bare,
        )


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
    tree[parts[-1]] = value


class _DuplicateKey(Exception):
    def __init__(self, key, first: int, again: int):
        super().__init__(f"key {key!r} appears twice (lines {first} and {again}); keep one")
        self.line = again


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is an error: PyYAML keeps the last
    value without a word. A merge (`<<: *base`) may still override the keys it brings in."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                if isinstance(key, Hashable) and key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen.setdefault(key, line)
        return super().construct_mapping(node, deep)


def load_yaml(path: Path) -> dict:
    """A YAML config file as a dict: UTF-8 (a BOM is allowed), a mapping at the top, no key written twice."""
    path = Path(path)
    try:
        data = yaml.load(read_text(path, ConfigError), Loader=_StrictLoader) or {}
    except _DuplicateKey as err:
        raise ConfigError(f"{path}:{err.line}: invalid YAML: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_problem(path, err)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _yaml_problem(path: Path, err: yaml.YAMLError) -> str:
    """One line: file, line and what the parser expected (PyYAML's own text spans several lines)."""
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{where}: invalid YAML: {problem}" + (f" (column {mark.column + 1})" if mark is not None else "")


def validate(cls: type[C], data: dict, source: str, flags: frozenset[str] = frozenset()) -> C:
    """Validate, or raise one ConfigError line naming each bad key: `--flag-name` for a key set by a flag,
    `field a.b` for one from the file (`source`)."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        problems, from_file = [], False
        for e in err.errors():
            key = ".".join(str(x) for x in e["loc"])
            flag = next((f for f in flags if key == f or key.startswith(f + ".")), None)
            if flag is not None:  # `seeds.1` was set by --seeds: "flag --seeds (1)"
                part = f" ({key[len(flag) + 1:]})" if key != flag else ""
                problems.append(f"flag --{flag.replace('_', '-')}{part}: {e['msg']} (got {e['input']!r})")
            else:
                problems.append(f"field {key}: {e['msg']}")
                from_file = True
        where = source if from_file else "command line"
        raise ConfigError(f"{where}: invalid config: " + "; ".join(problems)) from None


def load_config(cls: type[C], path: Path | str | None = None, overrides: dict[str, Any] | None = None,
                flags: frozenset[str] = frozenset()) -> C:
    """defaults < YAML file < overrides (dotted keys); `flags`: the override keys a user typed as flags."""
    data = load_yaml(Path(path)) if path else {}
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    return validate(cls, data, str(path) if path else "command line", flags)


def build_config(cls: type[C], args: argparse.Namespace) -> C:
    """Merge the flags added by `add_arguments` over the YAML file and validate."""
    plain_strings = {key for key, _, field in _flags(cls) if field.annotation in (str, Path, str | None, Path | None)}
    overrides = {}
    for dest, raw in vars(args).items():
        if dest.startswith("cfg:") and raw is not None:
            key = dest[4:]
            # Strings stay strings ("no" is a model name, not False); everything else parses as YAML (lists, numbers).
            overrides[key] = raw if key in plain_strings else yaml.safe_load(raw)
    path = getattr(args, "config", None)
    config = load_config(cls, path, overrides, frozenset(overrides))
    note_config(_config_strings(config, set(overrides), path))
    return config


def _config_strings(config: BaseModel, flags: set[str], path: Path | None) -> list[tuple[str, str]]:
    """(where, value) of each string in the config, where = 'flag --x' or 'field x in FILE' (for error lines)."""
    found = []

    def walk(value, key):
        if isinstance(value, dict):
            for name, sub in value.items():
                walk(sub, f"{key}.{name}" if key else str(name))
        elif isinstance(value, list):
            for sub in value:
                walk(sub, key)
        elif isinstance(value, str):
            flag = next((f for f in flags if key == f or key.startswith(f + ".")), None)
            where = f"flag --{flag.replace('_', '-')}" if flag else f"field {key}" + (f" in {path}" if path else "")
            found.append((where, value))

    walk(config.model_dump(mode="json"), "")
    return found


def run_cli(cls: type[C], argv: list[str] | None, prog: str, description: str | None, run):
    """A stage command's `main`: flags over the YAML config, validate, `run(cfg)`; bad input (core.errors.BadInput:
    config, data, model name) ends in one `error: ...` line naming the file and field instead of a traceback.
    Returns (cfg, run's result)."""
    parser = ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, cls)
    with exits_on_bad_input():
        cfg = build_config(cls, parser.parse_args(argv))
        return cfg, run(cfg)


def dump_config(config: BaseModel) -> str:
    return yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=False)
