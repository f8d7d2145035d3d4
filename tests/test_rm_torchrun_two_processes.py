"""`torchrun --nproc_per_node 2 -m hpc_rm train` runs the Trainer as 2-rank DDP on CPU and saves one model."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from core.schema import write_jsonl
from tests.test_rm_train_score_resume import synthetic_items


def test_two_process_training_saves_a_working_model(tiny_encoder, tmp_path):
    labels = tmp_path / "labels.jsonl"
    write_jsonl(labels, synthetic_items(16))
    out = tmp_path / "rm"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", "29517", "-m", "hpc_rm", "train",
         "--labels", str(labels), "--backbone", tiny_encoder, "--out", str(out), "--epochs", "1",
         "--batch-size", "4", "--max-length", "48", "--progress", "false"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2
    state = json.loads((out / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2  # 16 items / (2 ranks x 4) = 2 steps: the data was split between ranks
    from core.reward_model import HPCRewardModel

    scores = HPCRewardModel.from_pretrained(out).score(["Student: 2+2?"], ["What is 2+1?"])
    assert set(scores) == {"Helpfulness", "Personalization", "Creativity"}
