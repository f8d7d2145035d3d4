"""Training shows its dialogues: every `transcripts_every` optimiser steps the main process appends a few whole
dialogues of the latest rollout (turns, the student's final solutions, the judges' verdicts, each reward and the
weighted total) to `<out>/transcripts.jsonl`, so a user sees what the tutor is learning while it trains.

The rewards come from TRL's own log of the last generation batch (`trainer._logs["rewards"]`, gathered over ranks
in rank order, so this rank's dialogues are the first slice of the batch)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import TrainerCallback


class TranscriptWriter(TrainerCallback):
    def __init__(self, classroom, path: Path, every: int, per_write: int):
        self.classroom, self.path, self.every, self.per_write = classroom, Path(path), every, per_write
        self.trainer = None  # set once the trainer exists
        self.written_steps: list[int] = []

    def rows(self, step: int) -> list[dict]:
        records = self.classroom.last_records
        trainer = self.trainer
        world = trainer.accelerator.num_processes
        names = list(trainer._logs["rewards"])
        per_name = {name: list(trainer._logs["rewards"][name])[-len(records) * world:][:len(records)]
                    for name in names}
        weights = dict(zip(trainer.reward_func_names, trainer.reward_weights.tolist(), strict=True))
        out = []
        for k, record in enumerate(records[:self.per_write]):
            rewards = {name: None if math.isnan(values[k]) else values[k]  # NaN: the function did not score it
                       for name, values in per_name.items() if k < len(values)}
            total = sum(weights.get(name, 0.0) * value for name, value in rewards.items() if value is not None)
            out.append({"step": step, "id": record["id"], "persona": record.get("persona"),
                        "opening": record["opening"], "turns": record["turns"], "solutions": record["solutions"],
                        "verdicts": record.get("verdicts"), "rewards": rewards, "reward_total": total})
        return out

    def on_step_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or self.trainer is None or state.global_step % self.every:
            return
        if not self.classroom.last_records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:  # appended line by line: a partial file stays readable
            for row in self.rows(state.global_step):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.written_steps.append(state.global_step)
