"""`torchrun --nproc_per_node 2 -m policy grpo` runs GRPO data-parallel on CPU (gloo): both ranks train, the reward
model sits on each rank's own device, and the policy saved through `trainer.save_model` (the gathering path) loads
with plain transformers."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from core.schema import PromptItem, StudentProfile, write_jsonl


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_grpo_saves_a_policy_that_transformers_loads(tiny_causal_lm, tiny_encoder, tmp_path):
    from core.reward_model import HPCRewardModel

    rm = tmp_path / "rm"
    HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=64).save_pretrained(rm)
    profile = StudentProfile(grade="5th grade", interests=["football"])
    write_jsonl(tmp_path / "rl.jsonl", [
        PromptItem(id=f"p{i}", source="gsm8k", problem_id=f"q{i}", kind="single_turn", profile=profile,
                   problem=f"Sam has {i + 7} apples and gives away 3. How many are left?",
                   reference_solution=f"#### {i + 4}") for i in range(4)])
    out = tmp_path / "grpo"
    config = tmp_path / "grpo.yaml"
    config.write_text(yaml.safe_dump({
        "policy": tiny_causal_lm, "reward_model": str(rm), "prompts": str(tmp_path / "rl.jsonl"), "out": str(out),
        "beta": 0.04, "loss_type": "grpo", "max_steps": 2, "prompts_per_step": 1, "num_generations": 2,
        "max_completion_length": 6, "learning_rate": 1e-2, "save_steps": 10, "rollout_sampler": "torch",
    }))
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    started = time.perf_counter()
    result = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "policy", "grpo",
         "--config", str(config)], capture_output=True, text=True, timeout=300, env=env)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads((out / "run.json").read_text())
    assert summary["steps"] == 2 and summary["processes"] == 2
    logs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    step = next(log for log in logs if "rewards/Helpfulness/mean" in log)
    # Each rank generates for its own prompt: 2 ranks x 1 prompt x 2 completions are gathered for the step.
    assert step["num_tokens"] > 0
    assert not list(out.glob(".policy*")), "the temporary save folder was left behind"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out / "policy")
    base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    changed = [n for n, p in model.state_dict().items() if not (p == base.state_dict()[n]).all()]
    assert changed, "the saved policy equals the base: training or saving lost the update"
    assert (out / "policy" / "tokenizer_config.json").exists()
    print(f"\n2-process torchrun GRPO, 2 steps: {seconds:.1f} s")
