"""A reward model sharded over 2 processes with FSDP2 (gloo on CPU: each rank holds half of it) and saved from the
gathered full state dict (what `Trainer.save_model` hands `save_pretrained` under FSDP FULL_STATE_DICT, and
under ZeRO-3 with 16-bit gathering) reloads with the scores the sharded model computed: the files hold the real
weights, not the empty local shards. With LoRA the folder holds only the adapter and the heads."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from tests.rm_torchrun_driver import PROBES

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("lora_r", [0, 4])
def test_sharded_model_saved_from_gathered_state_reloads_equal(tiny_encoder, tmp_path, lora_r):
    out, scores_file = tmp_path / "rm", tmp_path / "sharded.json"
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [exe, "--nproc_per_node", "2", "--master_port", str(29533 + lora_r), str(ROOT / "tests" / "rm_fsdp_driver.py"),
         "--backbone", tiny_encoder, "--out", str(out), "--scores", str(scores_file), "--lora-r", str(lora_r)],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    sharded = json.loads(scores_file.read_text())
    assert sharded["world_size"] == 2 and 0.45 < sharded["local_fraction"] < 0.55  # really sharded
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert all(f.get_slice(k).get_shape() and 0 not in f.get_slice(k).get_shape() for k in keys)  # no empty shards
    if lora_r:
        assert all(k.startswith("heads.") or "lora_" in k for k in keys) and any("lora_B" in k for k in keys)
    else:
        assert any(k.startswith("backbone.") for k in keys)
    from core.reward_model import HPCRewardModel

    reloaded = HPCRewardModel.from_pretrained(out).score([c for c, _ in PROBES], [r for _, r in PROBES])
    for name, values in sharded["scores"].items():
        np.testing.assert_allclose(reloaded[name], values, atol=1e-5, rtol=0)
