"""Allocator benchmark: the demo policy's training step with glibc's default malloc against the Makefile's settings.

glibc returns every freed block above MALLOC_MMAP_THRESHOLD_ (32 MiB at most, by default) to the kernel, so each
training step maps its large activations and logits afresh and pays a page fault per 4 KiB to zero them: on a
2-core VM the step spent as much CPU time in the kernel as in the matmuls. The Makefile exports
MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ and MALLOC_TOP_PAD_ so freed memory stays in the heap for the next
step. The variables are read when a process starts, so each setting runs in its own child process; the child times
forward + backward + AdamW steps of the policy (bf16 autocast, fp32 weights: the demo's update) on a batch of the
demo's update shape, and reports its user and kernel CPU seconds.
    make bench   (or, with the Makefile's variables exported: python benchmarks/bench_allocator.py --out DIR)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.schema import write_json, write_text  # noqa: E402

# The Makefile exports these (its values are the one definition); this benchmark compares them with their absence.
MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def makefile_settings() -> dict:
    missing = [name for name in MALLOC_VARIABLES if name not in os.environ]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not set: run this benchmark through make (`make bench`), which "
                         "exports the Makefile's values")
    return {name: os.environ[name] for name in MALLOC_VARIABLES}


def child(policy: str, batch: int, tokens: int, steps: int, warmup: int) -> dict:
    """Time `steps` training steps after `warmup` untimed ones; CPU seconds of the timed steps."""
    import torch

    from core.models import load_causal_lm, set_offline

    set_offline()
    torch.manual_seed(0)
    model = load_causal_lm(policy).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    ids = torch.randint(0, model.config.vocab_size, (batch, tokens))
    times = []
    for step in range(warmup + steps):
        if step == warmup:
            start = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step >= warmup:
            times.append(time.perf_counter() - began)
    end = resource.getrusage(resource.RUSAGE_SELF)
    return {"step_s": statistics.median(times), "steps_s": times, "user_s": end.ru_utime - start.ru_utime,
            "kernel_s": end.ru_stime - start.ru_stime, "max_rss_mib": end.ru_maxrss / 1024}


def measure(args, env_update: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_VARIABLES}
    env.update(env_update or {})
    out = subprocess.run([sys.executable, __file__, "--child", "--policy", args.policy, "--batch", str(args.batch),
                          "--tokens", str(args.tokens), "--steps", str(args.steps), "--warmup", str(args.warmup)],
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"allocator benchmark child failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(result: dict) -> str:
    base = result["settings"]["glibc defaults"]["step_s"]
    lines = ["# Allocator benchmark", "", f"{result['policy']}: forward + backward + AdamW, bf16 autocast, batch "
             f"{result['batch']} x {result['tokens']} tokens (the demo's GRPO update shape); median of "
             f"{result['steps']} steps after {result['warmup']} warm-up steps, each setting in its own process.", "",
             "| malloc | step s | x defaults | user CPU s | kernel CPU s | max RSS MiB |", "|---|---|---|---|---|---|"]
    for name, s in result["settings"].items():
        lines.append(f"| {name} | {s['step_s']:.1f} | {s['step_s'] / base:.2f} | {s['user_s']:.0f} | "
                     f"{s['kernel_s']:.0f} | {s['max_rss_mib']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default="smollm2-135m-instruct")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step (the demo: 2 prompts x 4)")
    parser.add_argument("--tokens", type=int, default=320, help="tokens per sequence (prompt + completion)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (one-off costs)")
    parser.add_argument("--out", default="runs/bench/allocator")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.policy, args.batch, args.tokens, args.steps, args.warmup)))
        return
    tuned = makefile_settings()
    settings = {}
    for name, env in (("glibc defaults", None), ("Makefile settings (" + ", ".join(tuned) + ")", tuned)):
        settings[name] = measure(args, env)
        print(name, json.dumps({k: round(v, 2) for k, v in settings[name].items() if k != "steps_s"}), flush=True)
    result = {"policy": args.policy, "batch": args.batch, "tokens": args.tokens, "steps": args.steps,
              "warmup": args.warmup, "settings": settings}
    out = Path(args.out)
    write_json(out / "bench_allocator.json", result)
    write_text(out / "bench_allocator.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
