"""`--average-epochs N`: the saved RM's weights are the mean of the weights at the last N epoch ends, and a run
resumed from a checkpoint between those epochs ends with the same mean."""
import shutil

import pytest
import torch
from safetensors.torch import load_file

from core.rubric import load_rubric
from hpc_rm.averaging import STATE_FILE
from hpc_rm.train import TrainConfig, train_reward_model
from tests.test_rm_train_score_resume import synthetic_items


def _config(tiny_encoder, **kw) -> TrainConfig:
    return TrainConfig(backbone=tiny_encoder, rubric="hpc", epochs=3, average_epochs=2, batch_size=8,
                       max_length=48, progress=False, head_learning_rate=0.01, learning_rate=1e-3, **kw)


def _trainable(rm) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in rm.named_parameters() if p.requires_grad}


def test_saved_weights_are_the_mean_of_the_last_epoch_ends_and_survive_resume(tiny_encoder, tmp_path):
    items, rubric = synthetic_items(48), load_rubric("hpc")
    ckpt = tmp_path / "ckpt"
    rm = train_reward_model(_config(tiny_encoder), items, rubric, ckpt)
    assert rm.train_metrics["averaged_epochs"] == [2, 3]
    averaged = _trainable(rm)
    # 48 items / batch 8 = 6 steps per epoch: the kept checkpoints are the ends of epochs 2 and 3.
    epoch2, epoch3 = (load_file(ckpt / f"checkpoint-{s}" / "model.safetensors") for s in (12, 18))
    moved = 0
    for name, value in averaged.items():
        assert torch.allclose(value, (epoch2[name] + epoch3[name]) / 2, atol=1e-6), name
        moved += not torch.allclose(epoch2[name], epoch3[name])
    assert moved > 0  # the two snapshots differ, so the check above is not vacuous

    # A crash after epoch 2: resuming from its checkpoint must pick up the running mean saved with it.
    assert (ckpt / "checkpoint-12" / STATE_FILE).exists()
    shutil.rmtree(ckpt / "checkpoint-18")
    resumed = train_reward_model(_config(tiny_encoder, resume=True), items, rubric, ckpt)
    assert resumed.train_metrics["averaged_epochs"] == [2, 3]
    for name, value in _trainable(resumed).items():
        assert torch.allclose(value, averaged[name], atol=1e-5), name


def test_averaging_is_refused_under_zero3(tmp_path):
    config = tmp_path / "zero3.json"
    config.write_text('{"zero_optimization": {"stage": 3}}')
    with pytest.raises(ValueError, match="ZeRO-3"):
        TrainConfig(average_epochs=2, deepspeed=str(config))
