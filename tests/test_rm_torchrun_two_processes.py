"""Two-process training (torchrun, DDP over gloo on CPU) saves through `Trainer.save_model` (the path that gathers
ZeRO-3 shards on GPUs), and the folder reloaded with `from_pretrained` scores exactly like the model the training
process held in memory."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from core.schema import write_jsonl
from tests.rm_torchrun_driver import PROBES
from tests.test_rm_train_score_resume import synthetic_items

ROOT = Path(__file__).resolve().parent.parent


def torchrun(port: int, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([exe, "--nproc_per_node", "2", "--master_port", str(port), *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_two_process_training_saves_through_the_trainer_and_reloads_equal(tiny_encoder, tmp_path):
    labels = tmp_path / "labels.jsonl"
    write_jsonl(labels, synthetic_items(16))
    out, scores_file = tmp_path / "rm", tmp_path / "in_memory.json"
    result = torchrun(29517, str(ROOT / "tests" / "rm_torchrun_driver.py"), "--scores", str(scores_file), "--",
                      "--labels", str(labels), "--backbone", tiny_encoder, "--out", str(out), "--epochs", "1",
                      "--batch-size", "4", "--max-length", "48", "--progress", "false", "--head-learning-rate", "0.05")
    assert result.returncode == 0, result.stderr[-3000:]
    in_memory = json.loads(scores_file.read_text())
    assert in_memory["world_size"] == 2
    state = json.loads((out / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2  # 16 items / (2 ranks x 4) = 2 steps: the data was split between ranks
    # The transformers layout, written by the trainer's save path and moved into place; no leftovers.
    assert {"config.json", "model.safetensors", "train_config.yaml"} <= {p.name for p in out.iterdir()}
    assert not (out / ".saving").exists() and not (out / "training_args.bin").exists()
    assert json.loads((out / "config.json").read_text())["model_type"] == "hpc_reward"
    from core.reward_model import HPCRewardModel

    reloaded = HPCRewardModel.from_pretrained(out).score([c for c, _ in PROBES], [r for _, r in PROBES])
    fresh = HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=48, max_response_tokens=128)
    untrained = fresh.score([c for c, _ in PROBES], [r for _, r in PROBES])
    assert set(reloaded) == set(in_memory["scores"]) == {"Helpfulness", "Personalization", "Creativity"}
    for name, values in in_memory["scores"].items():
        np.testing.assert_allclose(reloaded[name], values, atol=1e-5, rtol=0)
    # ...and it is the trained model, not a fresh one (training moved the scores).
    assert max(np.abs(reloaded[n] - untrained[n]).max() for n in reloaded) > 1e-3
