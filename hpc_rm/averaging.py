"""Average the trainable weights over the ends of the last N epochs: an ensemble along one run, at no cost at
scoring time (the saved RM is one model).

Fine-tuning a small encoder on a few thousand labels is noisy from epoch to epoch; snapshots of one run lie in one
basin, so their mean is a valid model that is usually at least as good as the last one (stochastic weight
averaging, Izmailov et al. 2018). Only parameters that train are averaged, so with LoRA only the adapters and
heads are. The running mean is saved inside each checkpoint, so a resumed run averages the same epochs.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import TrainerCallback

STATE_FILE = "weight_average.pt"


class EpochWeightAverage(TrainerCallback):
    def __init__(self, model: torch.nn.Module, last_epochs: int, total_epochs: float):
        self.model, self.last_epochs = model, last_epochs
        self.n_epoch_ends = math.ceil(total_epochs)  # a fractional last epoch still ends once
        self.mean: dict[str, torch.Tensor] = {}
        self.epochs: list[int] = []

    def _trainable(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad}

    def on_epoch_end(self, args, state, control, **kwargs):
        epoch = math.ceil(state.epoch - 1e-6)
        if epoch <= self.n_epoch_ends - self.last_epochs or epoch in self.epochs:
            return
        self.epochs.append(epoch)
        for name, value in self._trainable().items():
            mean = self.mean.setdefault(name, torch.zeros_like(value, dtype=torch.float32))
            mean += (value.float() - mean) / len(self.epochs)

    def on_save(self, args, state, control, **kwargs):
        if self.epochs and state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            tmp = folder / (STATE_FILE + ".tmp")
            torch.save({"epochs": self.epochs, "mean": self.mean}, tmp)
            tmp.replace(folder / STATE_FILE)

    def load(self, checkpoint: str | Path) -> None:
        """Pick up the running mean saved with `checkpoint` (none yet if it is before the averaged epochs)."""
        path = Path(checkpoint) / STATE_FILE
        if path.exists():
            saved = torch.load(path)
            self.epochs, self.mean = saved["epochs"], saved["mean"]

    def apply(self) -> list[int]:
        """Copy the mean into the model; returns the epochs it averages."""
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, mean in self.mean.items():
                params[name].copy_(mean.to(params[name].dtype))
        return self.epochs
