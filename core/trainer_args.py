"""What every training run shares: TrainingArguments options whose names differ across the transformers versions
this project supports, and the rule that a run without an optimiser step saves nothing.

transformers 5.23 renamed `gradient_checkpointing(_kwargs)` to `activation_checkpointing(_kwargs)` (the old names
stay as deprecated aliases there); 5.0-5.22 know only the old names and stop on the new ones with
`TypeError: unexpected keyword argument`. Both the RM's `TrainingArguments` and TRL's `GRPOConfig` (a subclass)
take what `checkpointing_args` returns, so one call site works on every supported version."""
from __future__ import annotations

import dataclasses
from functools import cache

from transformers import TrainerCallback

from core.errors import BadInput


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


class NoOptimizerSteps(BadInput):
    """A training run that would take, or took, no optimiser step: its model would be the untrained one."""


class RequireOptimizerSteps(TrainerCallback):
    """Stops a run with no optimiser step before anything is saved: at the start when the trainer plans none (e.g.
    epochs <= 0), and at the end when none was taken. `options` names the config values that set the length."""

    def __init__(self, options: str):
        self.options = options

    def _stop(self, what: str):
        raise NoOptimizerSteps(f"training {what} 0 optimiser steps ({self.options}); no model is saved")

    def on_train_begin(self, args, state, control, **kwargs):
        if state.max_steps < 1:
            self._stop("would take")

    def on_train_end(self, args, state, control, **kwargs):
        if state.global_step < 1:
            self._stop("took")
