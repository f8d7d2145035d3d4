"""`make dry-run CONFIG=configs/paper.yaml` (and `python -m pipeline run --dry-run`) shows each GPU stage's launcher
command line and the servers it needs started first; a GRPO config that names a served RM by URL is not handed the
run's RM folder; the tiny demo stays all plain python."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import load_config
from pipeline.stages import PipelineConfig, plan_stages

REPO = Path(__file__).resolve().parent.parent


def dry_run(config: str) -> str:
    out = subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", config, "--dry-run"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def stage_block(stdout: str, stage: str) -> str:
    """The dry-run lines of one stage: from its `[i/n] stage:` header to the next header."""
    start = stdout.index(f"] {stage}: ")
    end = stdout.find("\n[", start)
    return stdout[start:] if end < 0 else stdout[start:end]


def test_paper_dry_run_shows_accelerate_and_the_servers():
    out = dry_run("configs/paper.yaml")
    grpo = stage_block(out, "grpo")
    assert ("-m accelerate.commands.launch --config_file configs/policy/accelerate_8gpu.yaml --num_processes 8 "
            "-m policy grpo --config configs/policy/paper.yaml") in grpo
    assert "--reward-model" not in grpo  # the GRPO config names the served RM by its URL
    assert ("needs running first: CUDA_VISIBLE_DEVICES=0,1,2,3 trl vllm-serve --model Qwen/Qwen2.5-72B-Instruct "
            "--tensor-parallel-size 4 --gpu-memory-utilization 0.9 --max-model-len 2048") in grpo
    assert "needs running first: CUDA_VISIBLE_DEVICES=4 python -m hpc_rm serve --model runs/paper/rm" in grpo
    rm = stage_block(out, "rm")
    assert "--config_file configs/accelerate/zero3.yaml --num_processes 8 -m hpc_rm train" in rm


def test_7b_dry_run_pins_one_gpu_through_torchrun():
    out = dry_run("configs/7b.yaml")
    for stage in ("rm", "grpo"):
        block = stage_block(out, stage)
        assert "env CUDA_VISIBLE_DEVICES=0 " in block
        assert "-m torch.distributed.run --nproc-per-node 1 --standalone -m " in block
    assert "--reward-model runs/7b/rm" in stage_block(out, "grpo")  # a local RM folder: the run's own


def test_tiny_stays_plain_python():
    cfg = load_config(PipelineConfig, REPO / "configs" / "tiny.yaml")
    for plan in plan_stages(cfg).values():
        assert plan.argv[0] == sys.executable and plan.argv[1] == "-m" and not plan.servers, plan.argv


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_dry_run_shows_the_paper_launchers():
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    out = subprocess.run(["make", "-s", "--no-print-directory", "dry-run", "CONFIG=configs/paper.yaml"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "accelerate.commands.launch" in out.stdout and "trl vllm-serve" in out.stdout
