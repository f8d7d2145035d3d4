"""TrainingArguments options whose names differ across the transformers versions this project supports.

transformers 5.23 renamed `gradient_checkpointing(_kwargs)` to `activation_checkpointing(_kwargs)` (the old names
stay as deprecated aliases there); 5.0-5.22 know only the old names and stop on the new ones with
`TypeError: unexpected keyword argument`. Both the RM's `TrainingArguments` and TRL's `GRPOConfig` (a subclass)
take what `checkpointing_args` returns, so one call site works on every supported version."""
from __future__ import annotations

import dataclasses
from functools import cache


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
