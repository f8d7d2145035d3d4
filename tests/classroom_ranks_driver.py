"""Launched by torchrun from tests (not collected by pytest): the classroom's `rollout_func` on every rank, where rank
0's dialogues end in the first tutor turn and rank 1's run to max_turns. The tutor's generate stands in for vLLM's
server mode / ZeRO-3's generate: a collective on every call that also requires equal sequence counts across ranks (as
TRL slices vLLM's results). Each rank writes how many generate calls it made to --out/rank<N>.json.

    torchrun --nproc_per_node 2 tests/classroom_ranks_driver.py --prompts FILE --out DIR
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Student:
    def complete(self, chats, max_new_tokens):
        return ["I think it is \\boxed{4}" for _ in chats]


class GatheringTrainer:
    """What rollout_func reads from a GRPOTrainer, over torch.distributed (gloo)."""

    def __init__(self, tokenizer, rank: int, world: int):
        import torch

        self.tokenizer, self.rank, self.calls = tokenizer, rank, 0
        self.accelerator = SimpleNamespace(num_processes=world, device=torch.device("cpu"), gather=self._gather)
        self.model = SimpleNamespace(training=True)
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}

    def _gather(self, tensor):
        import torch
        import torch.distributed as dist

        parts = [torch.zeros_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        return torch.cat(parts)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations):
        import torch

        from policy.classroom.config import END_MARKER

        self.calls += 1
        counts = self._gather(torch.tensor([len(prompt_ids)]))
        if len(set(counts.tolist())) != 1:
            raise RuntimeError(f"generate call {self.calls}: ranks sent {counts.tolist()} sequences (vLLM's results "
                               "are sliced by equal counts)")
        say = f"Well done. {END_MARKER}" if self.rank == 0 else "What do you get if you take 3 away?"
        ids = self.tokenizer(say, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        return [list(ids) for _ in prompt_ids], None


def main() -> None:
    import torch.distributed as dist
    from transformers import AutoTokenizer

    from policy.classroom.config import DialogueOptions, StudentOptions
    from policy.classroom.dialogue import Classroom

    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    tokenizer = AutoTokenizer.from_pretrained(str(ROOT / "data" / "tokenizers" / "smollm2-135m-instruct"))
    room = Classroom(tokenizer, Student(), DialogueOptions(max_turns=3, opening="tutor"),
                     StudentOptions(solve_attempts=1), "You are a tutor.", [tokenizer.eos_token_id])
    rows = room.rows(args.prompts)
    trainer = GatheringTrainer(tokenizer, rank, world)
    out = room.rollout_func([row["prompt"] for row in rows[:2]], trainer)
    turns = [sum(t["role"] == "tutor" for t in d["turns"]) for d in out["dialogue"]]
    Path(args.out, f"rank{rank}.json").write_text(json.dumps({"generate_calls": trainer.calls, "tutor_turns": turns}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
