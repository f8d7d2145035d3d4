"""`make gpu-smoke` on a machine without CUDA: refused in one line unless `--device cpu`, which runs the same stages
(tiny random Qwen2 policy and RM; hpc_rm train with bf16 + LoRA + gradient checkpointing, hpc_rm score, two GRPO
steps, policy eval) as real subprocesses and prints one line per stage. The GPU run itself is not tested here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_smoke.py"


def test_refused_without_cuda_unless_cpu_is_asked_for():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: gpu-smoke: no CUDA device here")
    assert "--device cpu" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_cpu_mode_runs_every_stage(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--work", str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for stage in ("build-models", "rm-train", "rm-score", "grpo", "eval"):
        assert any(line.startswith(stage) and line.rstrip().endswith("ok") for line in lines), stage
    assert "gpu-smoke: every stage passed" in done.stdout
    summary = json.loads((tmp_path / "gpu_smoke.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["build-models", "rm-train", "rm-score", "grpo", "eval"]
    assert all(s["exit"] == 0 for s in summary["stages"]) and summary["device"] == "cpu"
    assert all(s["gpu"] is None and s["host_mib"] > 0 for s in summary["stages"][1:])
    # what each stage wrote: a LoRA RM, scores, a policy from two GRPO steps, an eval report
    from transformers import AutoConfig

    assert (tmp_path / "scored.jsonl").read_text().count("\n") == 32
    assert AutoConfig.from_pretrained(tmp_path / "policy").model_type == "qwen2"
    run = json.loads((tmp_path / "grpo" / "run.json").read_text())
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["prompts"] == 2 and Path(run["policy"]).exists()
