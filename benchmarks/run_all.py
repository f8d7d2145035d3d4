"""`make bench`: every benchmark in one run, one JSON and one Markdown table, with the machine it ran on.

Each benchmark is its own script (benchmarks/bench_*.py) run as a subprocess, so its peak memory is its own
(wait4's max RSS). Ratios within one benchmark were measured in one run; compare ratios, not absolute times.
    python benchmarks/run_all.py --out benchmarks/results [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.schema import write_json, write_text  # noqa: E402
from benchmarks.compute_bound import cpu_description  # noqa: E402
from pipeline.runner import Manifest, StagePlan, run_stage  # noqa: E402


def machine() -> dict:
    cpu = cpu_description()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {**cpu, "cores": os.cpu_count(), "memory_gib": round(mem_gb, 1), "python": platform.python_version()}


def plans(out: Path, quick: bool) -> list[StagePlan]:
    py = sys.executable
    labels = REPO / "data" / "mrbench_v3_dev" / "mrbench_v3_devset.json"
    train_items = out / "rm_train" / "items.jsonl"
    return [
        StagePlan("rm_scoring", "RM scoring: length-sorted batches vs one pair at a time",
                  [py, str(REPO / "benchmarks/bench_rm_scoring.py"), "--labels", str(labels), "--rubric", "mrbench",
                   "--pairs", "64" if quick else "256", "--single-pairs", "24" if quick else "64",
                   "--out", str(out / "rm_scoring")],
                  [out / "rm_scoring" / "bench_rm_scoring.json"]),
        StagePlan("rm_training", "RM training throughput (MiniLM, full fine-tuning, 1 epoch)",
                  [py, "-m", "hpc_rm", "train", "--labels", str(train_items), "--rubric", "mrbench",
                   "--backbone", "minilm-l6", "--epochs", "1", "--batch-size", "16", "--max-length", "256",
                   "--progress", "false", "--out", str(out / "rm_training")],
                  [out / "rm_training" / "train_summary.json"]),
        StagePlan("grpo_step", "GRPO step split and rollout tokens/s",
                  [py, str(REPO / "benchmarks/bench_grpo_step.py"), "--steps", "1" if quick else "3",
                   "--prompts", str(out / "prompts" / "rl.jsonl"), "--out", str(out / "grpo_step")],
                  [out / "grpo_step" / "grpo_step.json"]),
        StagePlan("allocator", "the policy update with glibc's default malloc vs the Makefile's settings",
                  [py, str(REPO / "benchmarks/bench_allocator.py"), "--steps", "2" if quick else "6",
                   "--warmup", "1" if quick else "2", "--out", str(out / "allocator")],
                  [out / "allocator" / "bench_allocator.json"]),
        StagePlan("annotation_throughput", "LLM-judge labeling vs concurrency (fake endpoint, 100 ms latency)",
                  [py, str(REPO / "benchmarks/bench_annotation_throughput.py"), "--latency", "0.1",
                   str(out / "annotation" / "throughput.json")],
                  [out / "annotation" / "throughput.json"]),
        StagePlan("classroom", "classroom rollout: time split, batched vs one dialogue at a time",
                  [py, str(REPO / "benchmarks/bench_classroom.py"), "--steps", "1" if quick else "2",
                   "--dialogues", "4" if quick else "8", "--prompts", str(out / "prompts" / "rl.jsonl"),
                   "--out", str(out / "classroom")],
                  [out / "classroom" / "bench_classroom.json"]),
    ]


def write_training_items(path: Path, n: int) -> None:
    from core.rubric import load_rubric
    from core.schema import write_jsonl
    from core.sources import load_mrbench

    items = load_mrbench(REPO / "data" / "mrbench_v3_dev" / "mrbench_v3_devset.json", load_rubric("mrbench"))
    write_jsonl(path, items[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run, not for the README)")
    parser.add_argument("--only", nargs="+", default=None, help="run only these benchmarks")
    args = parser.parse_args()
    out = args.out.resolve()
    write_training_items(out / "rm_train" / "items.jsonl", 128 if args.quick else 512)
    # GRPO prompts: the demo's data stage into the results folder (2 s), so the bench needs no prior run.
    subprocess.run([sys.executable, "-m", "annotation", "data", "--config", str(REPO / "configs/data.yaml"),
                    "--out", str(out / "prompts")], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    manifest = Manifest(out, {"name": "bench", "quick": args.quick})
    results, sections = {"machine": machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}, []
    for plan in plans(out, args.quick):
        if args.only and plan.name not in args.only:
            continue
        print(f"\n== {plan.name}: {plan.description}", flush=True)
        info = run_stage(plan, manifest)
        entry = {"status": info["status"], "seconds": info["seconds"], "peak_rss_mb": info["peak_rss_mb"]}
        if info["status"] == "done":
            entry["result"] = json.loads(plan.outputs[0].read_text())
            table = plan.outputs[0].with_suffix(".md")
            if table.exists():
                sections += [f"### {plan.description}", "", table.read_text().strip(), ""]
        results[plan.name] = entry
    train = results.get("rm_training", {}).get("result", {}).get("train_metrics", {})
    if train:
        sections += ["### RM training throughput", "",
                     f"{train.get('train_samples_per_second', float('nan')):.1f} samples/s "
                     f"({train.get('train_runtime', float('nan')):.0f} s for one epoch of "
                     f"{results['rm_training']['result'].get('train_items')} MRBench pairs, MiniLM, max length 256)", ""]
    m = results["machine"]
    lines = [f"# Benchmarks ({results['date'][:10]})", "",
             f"Machine: {m['cpu']} (bf16 matmuls on: {m.get('bf16_matmul_units', 'not recorded')}), "
             f"{m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, no GPU.", "",
             "| benchmark | status | seconds | peak RSS (MB) |", "|---|---|---:|---:|"]
    lines += [f"| {name} | {e['status']} | {e['seconds']:.0f} | {e['peak_rss_mb']:.0f} |"
              for name, e in results.items() if isinstance(e, dict) and "status" in e]
    write_json(out / "bench.json", results)
    write_text(out / "bench.md", "\n".join(lines + [""] + sections) + "\n")
    print(f"\nwrote {out / 'bench.md'} and {out / 'bench.json'}")
    failed = [n for n, e in results.items() if isinstance(e, dict) and e.get("status") == "failed"]
    if failed:
        raise SystemExit(f"failed benchmarks: {failed}")


if __name__ == "__main__":
    main()
