"""Launched by torchrun from tests (not collected by pytest): the reward model sharded with FSDP2 (`fully_shard`,
gloo on CPU), trained one step, then saved the way `Trainer.save_model` saves an FSDP model with
FULL_STATE_DICT: the full state dict gathered from the shards on every rank (`get_model_state_dict`, as
accelerate's `get_state_dict` does), then `save_pretrained(state_dict=...)` in the main process.

accelerate only turns FSDP on for accelerators (on CPU its Trainer runs plain DDP), so this drives the shard,
gather and save steps directly; the model code under test (the state_dict it is handed, LoRA filtering, the folder
it writes, from_pretrained) is the same.

    torchrun --nproc_per_node 2 tests/rm_fsdp_driver.py --backbone DIR --out DIR --scores FILE [--lora-r N]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.rm_torchrun_driver import PROBES  # noqa: E402


def main() -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor
    from transformers import set_seed

    from core.reward_config import LoraSpec
    from core.reward_model import HPCRewardModel

    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--lora-r", type=int, default=0)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    set_seed(0)  # the same initial model on every rank
    rm = HPCRewardModel.from_backbone(args.backbone, "hpc", max_length=48, max_response_tokens=16,
                                      lora=LoraSpec(r=args.lora_r, target_modules=["query", "value"]))
    mesh = init_device_mesh("cpu", (world,))
    for layer in rm._inner_backbone().encoder.layer:
        fully_shard(layer, mesh=mesh)
    fully_shard(rm, mesh=mesh)
    params = list(rm.parameters())
    local_fraction = (sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in params)
                      / sum(p.numel() for p in params))

    # One step, each rank on its own pair: gradients are reduced across ranks, each rank updates its shard.
    optimizer = torch.optim.AdamW([p for p in params if p.requires_grad], lr=0.05)
    context, response = PROBES[rank % len(PROBES)]
    _, batch = next(rm._batches(rm.encode([context], [response]), 1, False, ""))
    rm.train()
    sum(out.float().sum() for out in rm(**batch).values()).backward()
    optimizer.step()
    rm.eval()

    scores = rm.score([c for c, _ in PROBES], [r for _, r in PROBES])  # every rank: the forward gathers shards
    state = get_model_state_dict(rm, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        rm.save_pretrained(args.out, state_dict=state)
        args.scores.write_text(json.dumps({"world_size": world, "local_fraction": local_fraction,
                                           "scores": {k: v.tolist() for k, v in scores.items()}}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
