"""`make gpu-smoke`: the GPU path of every trainable stage, end to end on tiny random models, in minutes.

Builds a tiny random Qwen2-architecture policy (Qwen2ForCausalLM) and reward-model backbone (Qwen2Model) locally
(transformers `Qwen2Config`, 2 layers, SmolLM2's tokenizer and chat template from the registry; no hub), writes a
few synthetic labels and prompts, then runs the real CLIs as subprocesses, one after the other:

  rm-train   python -m hpc_rm train  --dtype bfloat16 --lora.r 8 --gradient-checkpointing true
  rm-score   python -m hpc_rm score  --bf16 true
  grpo       python -m policy grpo   --max-steps 2 --bf16 true --policy-dtype bfloat16 (float32 on cpu)
  eval       python -m policy eval   --device cuda   (base vs tuned, RM scores, KL, GSM8K perplexity)

and prints each stage's wall time, peak GPU memory and peak host memory. Peak GPU memory is what PyTorch's caching
allocator reports in the stage's own process: each stage runs through this script's `--run-module` wrapper, which
calls the module's `main` and then reads `torch.cuda.max_memory_allocated()` / `max_memory_reserved()` over every
visible device (memory outside PyTorch's allocator, e.g. the CUDA context, is not counted). Any failing stage, or a
total over `--budget-s` (8 minutes), exits non-zero; so does, on a GPU run, a stage that allocated no GPU memory at all
(it ran on the CPU).

Without CUDA it refuses (exit 2) unless `--device cpu` is given; then the same stages run on the CPU
(CUDA_VISIBLE_DEVICES is emptied for the stages, `policy eval --device cpu`), which is what CI runs
(tests/test_gpu_smoke_cpu_mode_runs_every_stage.py).

    python benchmarks/gpu_smoke.py                 # on a GPU machine (make gpu-smoke)
    python benchmarks/gpu_smoke.py --device cpu    # the same stages on CPU (make gpu-smoke DEVICE=cpu)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WRAPPER_FLAG = "--run-module"


def run_module_and_report(module: str, report_path: str, argv: list[str]) -> None:
    """Child side: run `python -m module argv...` in this process, then write its peak memory to report_path."""
    sys.argv = [module] + argv
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code not in (None, 0) and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    finally:
        import torch

        gpu = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            gpu = {"allocated_mib": max(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count()))
                   / 2**20,
                   "reserved_mib": max(torch.cuda.max_memory_reserved(d) for d in range(torch.cuda.device_count()))
                   / 2**20,
                   "device": torch.cuda.get_device_name(0)}
        host_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        Path(report_path).write_text(json.dumps({"gpu": gpu, "host_mib": host_mib}))
    sys.exit(code)


# -- inputs -------------------------------------------------------------------------------------------------------
def build_models(work: Path) -> dict[str, str]:
    """A tiny random Qwen2 policy and RM backbone with SmolLM2's tokenizer (its chat template), saved locally."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Model

    from core.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True, use_sliding_window=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    paths = {}
    for name, cls in (("policy", Qwen2ForCausalLM), ("rm_backbone", Qwen2Model)):
        torch.manual_seed(0)
        path = work / name
        cls(config).save_pretrained(path)
        tokenizer.save_pretrained(path)
        paths[name] = str(path)
    return paths


def write_data(work: Path) -> dict[str, str]:
    """Synthetic labels (the level is written in the response) and a few tutoring prompts."""
    from core.schema import LabeledItem, PromptItem, StudentProfile, Turn, write_jsonl

    words = {0: "wrong lazy", 1: "partly okay", 2: "excellent clear hint"}
    labels = [LabeledItem(id=f"smoke:{k // 2}:{k % 2}", context=f"## Dialogue so far\nStudent: question {k}",
                          response=f"{words[k % 3]} answer number {k}", annotator="human:smoke",
                          scores={d: k % 3 for d in ("Helpfulness", "Personalization", "Creativity")},
                          meta={"group": f"g{k // 2}"}) for k in range(32)]
    profile = StudentProfile(grade="5th grade", interests=["football"], misconception="adds instead of subtracting")
    prompts = [PromptItem(id=f"p{i}", source="gsm8k", problem_id=f"q{i}", kind="multi_turn" if i % 2 else "single_turn",
                          profile=profile, problem=f"Sam has {i + 7} apples and gives away 3. How many are left?",
                          turns=[Turn(role="student", text=f"Is it {i + 10}?")] if i % 2 else [],
                          reference_solution=f"{i + 7} - 3 = {i + 4}\n#### {i + 4}") for i in range(8)]
    paths = {"labels": work / "labels.jsonl", "rl": work / "rl.jsonl", "eval": work / "eval.jsonl"}
    write_jsonl(paths["labels"], labels)
    write_jsonl(paths["rl"], prompts[:6])
    write_jsonl(paths["eval"], prompts[6:])
    return {k: str(v) for k, v in paths.items()}


def stages(work: Path, models: dict, data: dict, device: str) -> list[tuple[str, str, list[str]]]:
    """(name, module, argv) of every stage, in order."""
    rm, grpo = str(work / "rm"), str(work / "grpo")
    return [
        ("rm-train", "hpc_rm", ["train", "--labels", data["labels"], "--backbone", models["rm_backbone"], "--out", rm,
                                "--rubric", "hpc", "--epochs", "1", "--batch-size", "8", "--max-length", "64",
                                "--max-response-tokens", "32", "--dtype", "bfloat16", "--lora.r", "8",
                                "--gradient-checkpointing", "true", "--checkpoints", "false", "--progress", "false",
                                "--logging-steps", "1"]),
        ("rm-score", "hpc_rm", ["score", "--model", rm, "--input", data["labels"], "--out",
                                str(work / "scored.jsonl"), "--bf16", "true", "--batch-size", "16"]),
        ("grpo", "policy", ["grpo", "--policy", models["policy"], "--reward-model", rm, "--prompts", data["rl"],
                            "--out", grpo, "--beta", "0.04", "--loss-type", "grpo", "--max-steps", "2",
                            "--prompts-per-step", "2", "--num-generations", "2", "--max-completion-length", "16",
                            "--save-steps", "2", "--bf16", "true", "--logging-steps", "1",
                            "--policy-dtype", "float32" if device == "cpu" else "bfloat16"]),
        ("eval", "policy", ["eval", "--run", grpo, "--prompts", data["eval"], "--out", str(work / "eval"),
                            "--device", device, "--gsm8k", str(ROOT / "data/gsm8k/test.jsonl"), "--gsm8k-items", "4",
                            "--max-new-tokens", "16", "--batch-size", "4", "--bootstrap-resamples", "100"]),
    ]


def run_stage(name: str, module: str, argv: list[str], env: dict, timeout_s: float, log: Path) -> dict:
    report = log.with_suffix(".json")
    command = [sys.executable, str(Path(__file__).resolve()), WRAPPER_FLAG, module, str(report), *argv]
    began = time.perf_counter()
    with open(log, "w") as out:
        try:
            code = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = f"timed out after {timeout_s:.0f} s"
    seconds = time.perf_counter() - began
    memory = json.loads(report.read_text()) if report.exists() else {"gpu": None, "host_mib": None}
    return {"stage": name, "command": f"python -m {module} " + " ".join(argv), "seconds": round(seconds, 1),
            "exit": code, **memory}


def _row(result: dict) -> str:
    gpu = result.get("gpu")
    gpu_text = f"{gpu['allocated_mib']:9.1f} / {gpu['reserved_mib']:9.1f}" if gpu else f"{'-':>9} / {'-':>9}"
    host = result.get("host_mib")
    return (f"{result['stage']:<14} {result['seconds']:8.1f}  {gpu_text}  "
            f"{(f'{host:9.0f}' if host is not None else '-'):>9}  {'ok' if result['exit'] == 0 else result['exit']}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WRAPPER_FLAG]:
        run_module_and_report(argv[1], argv[2], argv[3:])
    parser = argparse.ArgumentParser(prog="python benchmarks/gpu_smoke.py", description=__doc__.split("\n\n")[0],
                                     epilog="Prints one line per stage; exit 0 only when every stage passed in time.")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cuda (default; refused without CUDA) or cpu (the same stages on the CPU, for CI)")
    parser.add_argument("--work", type=Path, default=None, help="folder for models, data and outputs (default: a "
                                                                "temporary folder, removed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    parser.add_argument("--budget-s", type=float, default=480, help="fail when all stages together take longer")
    parser.add_argument("--stage-timeout-s", type=float, default=300, help="kill and fail a stage after this long")
    args = parser.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: gpu-smoke: no CUDA device here (torch.cuda.is_available() is False, torch "
              f"{torch.__version__}); run it on a GPU machine, or give --device cpu (make gpu-smoke DEVICE=cpu) "
              "to run the same stages on the CPU", file=sys.stderr)
        return 2
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")  # tiny local models only: no hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # every stage on the CPU, even on a GPU machine

    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"gpu-smoke on {where} (torch {torch.__version__}), work folder {work}", flush=True)
    results, failed = [], None
    began = time.perf_counter()
    try:
        start = time.perf_counter()
        models, data = build_models(work), write_data(work)
        results.append({"stage": "build-models", "seconds": round(time.perf_counter() - start, 1), "exit": 0,
                        "gpu": None, "host_mib": None})
        print(f"{'stage':<14} {'seconds':>8}  {'peak GPU MiB alloc / reserved':>21}  {'host MiB':>9}  result",
              flush=True)
        print(_row(results[-1]), flush=True)
        on_cpu = []  # stages that never touched the GPU on a GPU run: they ran, but not where they should
        for name, module, stage_argv in stages(work, models, data, args.device):
            result = run_stage(name, module, stage_argv, env, args.stage_timeout_s, work / f"{name}.log")
            results.append(result)
            print(_row(result), flush=True)
            if args.device == "cuda" and result["exit"] == 0 and not result.get("gpu"):
                on_cpu.append(name)
            if result["exit"] != 0:
                failed = name
                tail = (work / f"{name}.log").read_text().splitlines()[-40:]
                print(f"\nerror: stage {name} failed ({result['exit']}): {result['command']}\n--- last lines of its "
                      f"output ---\n" + "\n".join(tail), file=sys.stderr)
                break
        total = time.perf_counter() - began
        print(f"{'total':<14} {total:8.1f}", flush=True)
        (work / "gpu_smoke.json").write_text(json.dumps({"device": where, "total_s": round(total, 1),
                                                         "stages": results}, indent=1))
        if failed:
            return 1
        if on_cpu:
            failed = ",".join(on_cpu)
            print(f"error: gpu-smoke: {failed} allocated no GPU memory: ran on the CPU of a GPU machine",
                  file=sys.stderr)
            return 1
        if total > args.budget_s:
            print(f"error: gpu-smoke took {total:.0f} s, over its {args.budget_s:.0f} s budget", file=sys.stderr)
            return 1
        print("gpu-smoke: every stage passed", flush=True)
        return 0
    finally:
        if args.work is None and not args.keep and failed is None:
            shutil.rmtree(work, ignore_errors=True)
        elif args.work is None:
            print(f"kept {work}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
