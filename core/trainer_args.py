"""TrainingArguments options whose names differ across the transformers versions this project supports.

transformers 5.23 renamed `gradient_checkpointing(_kwargs)` to `activation_checkpointing(_kwargs)` (the old names
stay as deprecated aliases there); 5.0-5.22 know only the old names and stop on the new ones with
`TypeError: unexpected keyword argument`. Both the RM's `TrainingArguments` and TRL's `GRPOConfig` (a subclass)
take what `checkpointing_args` returns, so one call site works on every supported version."""
from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path


@cache
def _training_argument_names() -> frozenset[str]:
    from transformers import TrainingArguments

    return frozenset(f.name for f in dataclasses.fields(TrainingArguments))


def checkpointing_args(enabled: bool, kwargs: dict | None = None) -> dict:
    """{activation|gradient}_checkpointing(_kwargs) for the installed transformers: the new names where they
    exist, else the old ones."""
    prefix = "activation" if "activation_checkpointing" in _training_argument_names() else "gradient"
    args = {f"{prefix}_checkpointing": enabled}
    if kwargs is not None:
        args[f"{prefix}_checkpointing_kwargs"] = kwargs
    return args


def is_checkpointing(model) -> bool:
    """Whether activation checkpointing is on for a transformers model, under either version's name."""
    flag = getattr(model, "is_activation_checkpointing", None)
    return bool(getattr(model, "is_gradient_checkpointing", False) if flag is None else flag)


def deepspeed_settings(deepspeed: dict | str | Path | None) -> dict:
    """A `deepspeed` option as transformers takes it (an inline dict or a JSON file's path) read into a dict ({} for
    None), so a check of its contents sees a file's settings too. A missing or broken file is a ValueError naming it
    (config validators turn it into an error naming the field)."""
    if deepspeed is None:
        return {}
    if isinstance(deepspeed, dict):
        return deepspeed
    path = Path(deepspeed)
    try:
        return json.loads(path.read_text())
    except OSError as err:
        raise ValueError(f"deepspeed config {path}: cannot read it ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"deepspeed config {path}: not JSON (line {err.lineno}: {err.msg})") from None
