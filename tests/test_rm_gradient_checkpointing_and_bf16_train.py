"""`hpc_rm train --gradient-checkpointing true --dtype bfloat16 --lora.r 8` (the GPU smoke's flags) trains on a
decoder backbone: bf16 weights, finite loss, heads and adapter move, and the backbone's layers really recompute in
the backward pass (checkpointing is delegated to the backbone)."""
import argparse
import math

import torch

from core.config import add_arguments, build_config
from core.rubric import load_rubric
from core.trainer_args import is_checkpointing
from hpc_rm.data import make_collator
from hpc_rm.train import TrainConfig, _train, build_model
from tests.test_rm_train_score_resume import synthetic_items


def test_checkpointed_bf16_lora_training_runs_and_recomputes(tiny_causal_lm, tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    cfg = build_config(TrainConfig, parser.parse_args([
        "--backbone", tiny_causal_lm, "--rubric", "hpc", "--epochs", "1", "--batch-size", "8", "--max-length", "48",
        "--progress", "false", "--checkpoints", "false", "--learning-rate", "1e-3",
        "--gradient-checkpointing", "true", "--dtype", "bfloat16", "--lora.r", "8"]))
    rubric = load_rubric("hpc")
    items = synthetic_items(16)
    initial = {k: v.clone() for k, v in build_model(cfg, rubric).heads.state_dict().items()}  # same seed
    rm, trainer = _train(cfg, items, rubric, tmp_path / "ckpt")

    assert trainer.args.bf16 and trainer.state.global_step == 2
    assert is_checkpointing(rm)
    assert {p.dtype for n, p in rm.backbone.named_parameters() if "lora_" not in n} == {torch.bfloat16}
    assert math.isfinite(trainer.state.log_history[-1]["train_loss"])
    moved = max(float((rm.heads.state_dict()[k].float() - v.float()).abs().max()) for k, v in initial.items())
    assert moved > 0
    assert any(float(p.detach().abs().max()) > 0 for n, p in rm.named_parameters() if "lora_B" in n)

    # One training step by hand, counting the forwards of the first decoder layer's MLP: 2 with checkpointing
    # (forward, and the layer's recompute in backward), 1 without.
    # (A forward hook does not see the recompute in torch 2.13, so the forward itself is wrapped.)
    mlp = rm._inner_backbone().layers[0].mlp
    calls, forward = [], mlp.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    mlp.forward = counted
    batch = make_collator(rm.tokenizer)([trainer.train_dataset[i] for i in range(2)])
    batch = {k: v for k, v in batch.items() if k not in ("labels", "groups")}

    def step() -> int:
        calls.clear()
        rm.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = rm(**batch)
        sum(o.float().sum() for o in outputs.values()).backward()
        return len(calls)

    assert step() == 2
    rm.gradient_checkpointing_disable()  # the name every supported transformers has
    assert step() == 1
