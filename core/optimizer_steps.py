"""The rule every training run keeps: a run without an optimiser step saves nothing (its model would be the
untrained one, e.g. an RM with random heads that GRPO would then optimise against). A callback, so the RM's
transformers Trainer and TRL's GRPOTrainer share it; its own module, since it imports transformers' trainer code
and config modules that import core.trainer_args must stay light."""
from __future__ import annotations

from transformers import TrainerCallback

from core.errors import BadInput


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
