"""`make gpu-smoke`: the GPU path of every trainable stage, end to end on tiny random models, in minutes.

Runs with any Python that has the project's dependencies (no `.venv`, no model wheel, no hub): a GPU node without
internet installs them from a wheelhouse (`make wheelhouse` on a connected machine, `make install-offline
WHEELS=DIR` on the node) and runs `python benchmarks/gpu_smoke.py` from a checkout.

1. **Preflight**: prints Python, the versions of the packages the stages import, and the GPU. A missing package stops
   the smoke in one line naming it and the install command (the requirement as pyproject.toml states it).
2. Builds a tiny random Qwen2-architecture policy (Qwen2ForCausalLM) and reward-model backbone (Qwen2Model) locally
   (2 layers), with SmolLM2's tokenizer and chat template shipped in `data/tokenizers/smollm2-135m-instruct/`, writes
   a few synthetic labels and prompts, then runs the real CLIs as subprocesses, one after the other:

   rm-train   python -m hpc_rm train  --dtype bfloat16 --lora.r 8 --gradient-checkpointing true
   rm-score   python -m hpc_rm score  --bf16 true
   grpo       python -m policy grpo   --max-steps 2 --bf16 true --policy-dtype bfloat16 (float32 on cpu)
   eval       python -m policy eval   (base vs tuned, RM scores, KL, GSM8K perplexity)
   classroom  python -m policy classroom --max-steps 2 (the tiny policy as tutor, student and local judge)
   rm-score-large  python -m hpc_rm score --bf16 true on a ~230M-parameter random RM saved in fp32 (GPU only): fails
              when the peak GPU memory exceeds 0.75x the fp32 weights (a bf16 load must not stage them in fp32)
   rm-zero2   torchrun (1 process) -m hpc_rm train --deepspeed configs/deepspeed/zero2.json --dtype bfloat16
   rm-zero3   torchrun (1 process) -m hpc_rm train --deepspeed configs/deepspeed/zero3.json --lora.r 8
              --gradient-checkpointing true      (both only on a GPU where `import deepspeed` works)

Each stage's wall time, peak GPU memory (PyTorch's caching allocator in the stage's own process: each stage runs
through this script's `--run-module` wrapper, which calls the module's `main` and then reads
`torch.cuda.max_memory_allocated()` / `max_memory_reserved()`; the CUDA context is not counted) and peak host memory
are printed and written to `gpu_smoke.json` (`--json`). Any failing stage, or a total over `--budget-s`, exits
non-zero; so does, on a GPU run, a stage that allocated no GPU memory at all (it ran on the CPU).

Without CUDA it refuses (exit 2) unless `--device cpu` is given; then the same stages (no DeepSpeed ones) run on the
CPU, which CI runs (tests/test_gpu_smoke_cpu_mode_runs_every_stage.py).

    python benchmarks/gpu_smoke.py                 # on a GPU machine (make gpu-smoke)
    python benchmarks/gpu_smoke.py --device cpu    # the same stages on CPU (make gpu-smoke DEVICE=cpu)
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
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
TOKENIZER = ROOT / "data" / "tokenizers" / "smollm2-135m-instruct"
RUBRIC_DIMENSIONS = ("Helpfulness", "Personalization", "Creativity")
# (import name, distribution name in pyproject.toml) of what the stages import
REQUIRED = [("torch", "torch"), ("transformers", "transformers"), ("trl", "trl"), ("peft", "peft"),
            ("accelerate", "accelerate"), ("datasets", "datasets"), ("pydantic", "pydantic"), ("yaml", "pyyaml"),
            ("numpy", "numpy"), ("scipy", "scipy"), ("sklearn", "scikit-learn"), ("matplotlib", "matplotlib"),
            ("jinja2", "jinja2"), ("tqdm", "tqdm"), ("httpx", "httpx"), ("safetensors", "safetensors"),
            ("math_verify", "math-verify")]
OPTIONAL = [("deepspeed", "deepspeed")]  # the ZeRO stages run only where it imports (GPU runs)


# -- preflight -------------------------------------------------------------------------------------------------------
def requirement(distribution: str) -> str:
    """The requirement pyproject.toml states for a distribution (dependencies or the gpu extra), else its name."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"] + project.get("optional-dependencies", {}).get("gpu", []):
        name = spec.split(";")[0].strip()
        bare = name.split("[")[0]
        for op in ("==", ">=", "<=", "~=", "!=", "<", ">"):
            bare = bare.split(op)[0]
        if bare.strip().lower() == distribution.lower():
            return name
    return distribution


def _version(module, distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return str(getattr(module, "__version__", "?"))


def preflight(device: str) -> dict:
    """Versions found and the GPU; exits 2 in one line when a required package is missing."""
    found, missing = {}, []
    for module_name, distribution in REQUIRED + OPTIONAL:
        try:
            found[distribution] = _version(importlib.import_module(module_name), distribution)
        except Exception as err:  # noqa: BLE001 (an import that fails for any reason is as good as missing)
            found[distribution] = None
            if (module_name, distribution) in REQUIRED:
                missing.append((distribution, f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"))
    if sys.version_info < (3, 11):
        print(f"error: gpu-smoke: Python {platform.python_version()} is too old: TRL 1.16 needs 3.11 or newer",
              file=sys.stderr)
        sys.exit(2)
    if missing:
        names = ", ".join(name for name, _ in missing)
        install = " ".join(f"'{requirement(name)}'" for name, _ in missing)
        print(f"error: gpu-smoke: missing package{'s' if len(missing) > 1 else ''} {names} ({missing[0][1]}); install "
              f"with: python -m pip install {install} (offline: make install-offline WHEELS=DIR, from a `make "
              "wheelhouse` folder)", file=sys.stderr)
        sys.exit(2)
    import torch

    info = {"python": platform.python_version(), "packages": found, "torch_cuda": torch.version.cuda, "gpu": None}
    if device == "cuda":
        if not torch.cuda.is_available():
            print("error: gpu-smoke: no CUDA device here (torch.cuda.is_available() is False, torch "
                  f"{torch.__version__}); run it on a GPU machine, or give --device cpu (make gpu-smoke DEVICE=cpu) "
                  "to run the same stages on the CPU", file=sys.stderr)
            sys.exit(2)
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                       "capability": f"sm_{props.major}{props.minor}", "count": torch.cuda.device_count(),
                       "bf16": torch.cuda.is_bf16_supported()}
    versions = ", ".join(f"{name} {version or '-'}" for name, version in found.items())
    gpu = info["gpu"]
    where = (f"{gpu['count']} x {gpu['name']} ({gpu['memory_gib']} GiB, {gpu['capability']}, CUDA "
             f"{info['torch_cuda']})" if gpu else "cpu")
    print(f"preflight: Python {info['python']}; {versions}; device {where}", flush=True)
    return info


# -- the wrapper each stage runs in --------------------------------------------------------------------------------
def run_module_and_report(module: str, report_path: str, argv: list[str]) -> None:
    """Child side: run `python -m module argv...` in this process, then write its peak memory to report_path
    (rank 0 only, under torchrun)."""
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
            devices = range(torch.cuda.device_count())
            gpu = {"allocated_mib": max(torch.cuda.max_memory_allocated(d) for d in devices) / 2**20,
                   "reserved_mib": max(torch.cuda.max_memory_reserved(d) for d in devices) / 2**20,
                   "device": torch.cuda.get_device_name(0)}
        host_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        if os.environ.get("RANK", "0") == "0":
            Path(report_path).write_text(json.dumps({"gpu": gpu, "host_mib": host_mib}))
    sys.exit(code)


# -- inputs -------------------------------------------------------------------------------------------------------
def build_models(work: Path) -> dict[str, str]:
    """A tiny random Qwen2 policy and RM backbone with SmolLM2's shipped tokenizer (its chat template)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen2Model

    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER))
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True, use_sliding_window=False,
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


def build_large_rm(work: Path) -> tuple[str, float]:
    """A ~230M-parameter random Qwen2 reward model saved in fp32, for the bf16 scoring load's GPU memory check:
    (folder, its fp32 size in MiB)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2Model

    from core.reward_model import HPCRewardModel

    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER))
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=1024, intermediate_size=2816, num_hidden_layers=16,
                         num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=2048,
                         use_sliding_window=False, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    backbone = work / "large_backbone"
    Qwen2Model(config).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    rm = HPCRewardModel.from_backbone(str(backbone), "hpc", max_length=64, max_response_tokens=32)
    rm.save_pretrained(work / "rm-large")
    fp32_mib = sum(p.numel() for p in rm.parameters()) * 4 / 2**20
    shutil.rmtree(backbone)
    return str(work / "rm-large"), fp32_mib


def write_data(work: Path) -> dict[str, str]:
    """Synthetic labels (the level is written in the response) and a few tutoring prompts."""
    from core.schema import LabeledItem, PromptItem, StudentProfile, Turn, write_jsonl

    words = {0: "wrong lazy", 1: "partly okay", 2: "excellent clear hint"}
    labels = [LabeledItem(id=f"smoke:{k // 2}:{k % 2}", context=f"## Dialogue so far\nStudent: question {k}",
                          response=f"{words[k % 3]} answer number {k}", annotator="human:smoke",
                          scores={d: k % 3 for d in RUBRIC_DIMENSIONS}, meta={"group": f"g{k // 2}"})
              for k in range(32)]
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


# -- stages -------------------------------------------------------------------------------------------------------
def rm_train_argv(labels: str, backbone: str, out: str, *extra: str) -> list[str]:
    return ["train", "--labels", labels, "--backbone", backbone, "--out", out, "--rubric", "hpc", "--epochs", "1",
            "--batch-size", "8", "--max-length", "64", "--max-response-tokens", "32", "--checkpoints", "false",
            "--progress", "false", "--logging-steps", "1", *extra]


def stages(work: Path, models: dict, data: dict, device: str, deepspeed: bool) -> list[tuple[str, str, list[str], bool]]:
    """(name, module, argv, under torchrun) of every stage, in order."""
    rm, grpo = str(work / "rm"), str(work / "grpo")
    policy_dtype = "float32" if device == "cpu" else "bfloat16"
    plan = [
        ("rm-train", "hpc_rm", rm_train_argv(data["labels"], models["rm_backbone"], rm, "--dtype", "bfloat16",
                                             "--lora.r", "8", "--gradient-checkpointing", "true"), False),
        ("rm-score", "hpc_rm", ["score", "--model", rm, "--input", data["labels"], "--out", str(work / "scored.jsonl"),
                                "--bf16", "true", "--batch-size", "16"], False),
        ("grpo", "policy", ["grpo", "--policy", models["policy"], "--reward-model", rm, "--prompts", data["rl"],
                            "--out", grpo, "--beta", "0.04", "--loss-type", "grpo", "--max-steps", "2",
                            "--prompts-per-step", "2", "--num-generations", "2", "--max-completion-length", "16",
                            "--save-steps", "2", "--bf16", "true", "--logging-steps", "1",
                            "--policy-dtype", policy_dtype], False),
        ("eval", "policy", ["eval", "--run", grpo, "--prompts", data["eval"], "--out", str(work / "eval"),
                            "--device", device, "--gsm8k", str(ROOT / "data/gsm8k/test.jsonl"), "--gsm8k-items", "4",
                            "--max-new-tokens", "16", "--batch-size", "4", "--bootstrap-resamples", "100"], False),
        ("classroom", "policy", ["classroom", "--config", str(ROOT / "configs/policy/classroom_tiny.yaml"),
                                 "--policy", models["policy"], "--prompts", data["rl"], "--out", str(work / "classroom"),
                                 "--max-steps", "2", "--save-steps", "2", "--policy-dtype", policy_dtype,
                                 "--student.model", models["policy"], "--student.device", device,
                                 "--judges.model", models["policy"], "--judges.device", device,
                                 "--max-completion-length", "16", "--student.max-reply-tokens", "8",
                                 "--student.max-solution-tokens", "16"], False),
    ]
    if "rm_large" in models:
        plan.append(("rm-score-large", "hpc_rm", ["score", "--model", models["rm_large"], "--input", data["labels"],
                                                  "--out", str(work / "scored-large.jsonl"), "--bf16", "true",
                                                  "--device", device, "--batch-size", "16"], False))
    if deepspeed:
        plan += [
            ("rm-zero2", "hpc_rm", rm_train_argv(data["labels"], models["rm_backbone"], str(work / "rm-zero2"),
                                                 "--dtype", "bfloat16", "--deepspeed",
                                                 str(ROOT / "configs/deepspeed/zero2.json")), True),
            ("rm-zero3", "hpc_rm", rm_train_argv(data["labels"], models["rm_backbone"], str(work / "rm-zero3"),
                                                 "--dtype", "bfloat16", "--lora.r", "8", "--gradient-checkpointing",
                                                 "true", "--deepspeed", str(ROOT / "configs/deepspeed/zero3.json")),
             True),
        ]
    return plan


def run_stage(name: str, module: str, argv: list[str], torchrun: bool, env: dict, timeout_s: float,
              log: Path) -> dict:
    report = log.with_suffix(".json")
    wrapper = [str(Path(__file__).resolve()), WRAPPER_FLAG, module, str(report), *argv]
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"] if torchrun
                else [sys.executable])
    began = time.perf_counter()
    with open(log, "w") as out:
        try:
            code = subprocess.run(launcher + wrapper, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = f"timed out after {timeout_s:.0f} s"
    seconds = time.perf_counter() - began
    memory = json.loads(report.read_text()) if report.exists() else {"gpu": None, "host_mib": None}
    command = ("torchrun --nproc_per_node 1 " if torchrun else "python ") + f"-m {module} " + " ".join(argv)
    return {"stage": name, "command": command, "seconds": round(seconds, 1), "exit": code, **memory}


def _row(result: dict) -> str:
    gpu = result.get("gpu")
    gpu_text = f"{gpu['allocated_mib']:9.1f} / {gpu['reserved_mib']:9.1f}" if gpu else f"{'-':>9} / {'-':>9}"
    host = result.get("host_mib")
    return (f"{result['stage']:<14} {result['seconds']:8.1f}  {gpu_text}  "
            f"{(f'{host:9.0f}' if host is not None else '-'):>9}  {'ok' if result['exit'] == 0 else result['exit']}")


def run_all(args, info: dict, work: Path) -> int:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # every stage on the CPU, even on a GPU machine
    deepspeed = args.device == "cuda" and info["packages"].get("deepspeed") is not None
    results, failed, on_cpu = [], None, []
    began = time.perf_counter()
    start = time.perf_counter()
    models, data = build_models(work), write_data(work)
    large_fp32_mib = None
    if args.device == "cuda":  # the bf16 scoring load must never put the fp32 weights on the GPU
        models["rm_large"], large_fp32_mib = build_large_rm(work)
    results.append({"stage": "build-models", "seconds": round(time.perf_counter() - start, 1), "exit": 0,
                    "gpu": None, "host_mib": None})
    print(f"{'stage':<14} {'seconds':>8}  {'peak GPU MiB alloc / reserved':>21}  {'host MiB':>9}  result", flush=True)
    print(_row(results[-1]), flush=True)
    selected = [s for s in stages(work, models, data, args.device, deepspeed)
                if not args.stages or s[0] in args.stages]
    for name, module, stage_argv, torchrun in selected:
        result = run_stage(name, module, stage_argv, torchrun, env, args.stage_timeout_s, work / f"{name}.log")
        results.append(result)
        if name == "rm-score-large" and result.get("gpu"):
            result["fp32_model_mib"] = round(large_fp32_mib, 1)
            if result["gpu"]["allocated_mib"] > 0.75 * large_fp32_mib:  # bf16 weights are half the fp32 size
                result["exit"] = (f"peak {result['gpu']['allocated_mib']:.0f} MiB allocated for a model of "
                                  f"{large_fp32_mib:.0f} MiB in fp32: the bf16 load held fp32 weights on the GPU")
        print(_row(result), flush=True)
        if args.device == "cuda" and result["exit"] == 0 and not result.get("gpu"):
            on_cpu.append(name)
        if result["exit"] != 0:
            failed = failed or name
            tail = (work / f"{name}.log").read_text(errors="replace").splitlines()[-40:]
            print(f"\nerror: stage {name} failed ({result['exit']}): {result['command']}\n--- last lines of its "
                  f"output ---\n" + "\n".join(tail), file=sys.stderr)
            if not args.keep_going:
                break
    total = time.perf_counter() - began
    print(f"{'total':<14} {total:8.1f}", flush=True)
    if not deepspeed and args.device == "cuda":
        print("note: deepspeed does not import here: the ZeRO-2/ZeRO-3 stages did not run", flush=True)
    summary = {"device": args.device, "preflight": info, "total_s": round(total, 1), "stages": results,
               "failed": failed, "ran_on_cpu": on_cpu}
    json_path = args.json or work / "gpu_smoke.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(summary, indent=1))
    if failed:
        return 1
    if on_cpu:
        print(f"error: gpu-smoke: {','.join(on_cpu)} allocated no GPU memory: ran on the CPU of a GPU machine",
              file=sys.stderr)
        return 1
    if total > args.budget_s:
        print(f"error: gpu-smoke took {total:.0f} s, over its {args.budget_s:.0f} s budget", file=sys.stderr)
        return 1
    print("gpu-smoke: every stage passed", flush=True)
    return 0


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
    parser.add_argument("--json", type=Path, default=None, help="write the summary here (default: WORK/gpu_smoke.json)")
    parser.add_argument("--stages", type=lambda s: [x for x in s.split(",") if x], default=None,
                        help="comma-separated stages to run (default: all)")
    parser.add_argument("--keep-going", action="store_true", help="run the later stages after a failure")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    parser.add_argument("--budget-s", type=float, default=600, help="fail when all stages together take longer")
    parser.add_argument("--stage-timeout-s", type=float, default=300, help="kill and fail a stage after this long")
    args = parser.parse_args(argv)

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")  # tiny local models only: no hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    info = preflight(args.device)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"gpu-smoke work folder {work}", flush=True)
    code = 1
    try:
        code = run_all(args, info, work)
        return code
    finally:
        if args.work is None and not args.keep and code == 0:
            shutil.rmtree(work, ignore_errors=True)
        elif args.work is None:
            print(f"kept {work}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
