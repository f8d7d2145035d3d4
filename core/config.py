"""Configs: pydantic models where every field carries a description; YAML files and CLI flags override them.

One place defines each option: `add_arguments(parser, Cls)` generates `--field-name` flags (help = the field's
description, nested models as `--section.field`), and `build_config(Cls, args)` merges defaults < YAML file
(`--config FILE`) < flags, then validates. Errors name the file and the field.
"""
from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base for every config: unknown keys are errors (a typo in YAML must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ConfigError(ValueError):
    pass


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
            help_text = (field.description or "") + (f" (default: {shown})" if default is not None else "")
            out.append((key, help_text, field))
    return out


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


def load_yaml(path: Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def validate(cls: type[C], data: dict, source: str) -> C:
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        lines = [f"{source}: invalid config"]
        for e in err.errors():
            lines.append(f"  field {'.'.join(str(x) for x in e['loc'])}: {e['msg']}")
        raise ConfigError("\n".join(lines)) from None


def load_config(cls: type[C], path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> C:
    """defaults < YAML file < overrides (dotted keys)."""
    data = load_yaml(Path(path)) if path else {}
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    return validate(cls, data, str(path) if path else "command line")


def build_config(cls: type[C], args: argparse.Namespace) -> C:
    """Merge the flags added by `add_arguments` over the YAML file and validate."""
    plain_strings = {key for key, _, field in _flags(cls) if field.annotation in (str, Path, str | None, Path | None)}
    overrides = {}
    for dest, raw in vars(args).items():
        if dest.startswith("cfg:") and raw is not None:
            key = dest[4:]
            # Strings stay strings ("no" is a model name, not False); everything else parses as YAML (lists, numbers).
            overrides[key] = raw if key in plain_strings else yaml.safe_load(raw)
    return load_config(cls, getattr(args, "config", None), overrides)


def run_cli(cls: type[C], argv: list[str] | None, prog: str, description: str | None, run):
    """A stage command's `main`: flags over the YAML config, validate, `run(cfg)`; bad input (config, data or a
    missing file) ends in one `error: ...` line naming the file and field instead of a traceback.
    Returns (cfg, run's result)."""
    from core.schema import DataError  # schema does not import config; kept local to stay that way

    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, cls)
    try:
        cfg = build_config(cls, parser.parse_args(argv))
        return cfg, run(cfg)
    except (ConfigError, DataError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")


def dump_config(config: BaseModel) -> str:
    return yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=False)
