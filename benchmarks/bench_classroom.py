"""The classroom's time split and what batching buys (`make bench` runs it; or on its own):
    python benchmarks/bench_classroom.py --prompts runs/x/data/rl.jsonl --out runs/bench/classroom

1. A short classroom GRPO run with the given config: per step, seconds spent on tutor generation, student replies,
   the student's final solutions, judge calls, and the rest of the step (the policy update: log-probs, loss,
   backward, optimizer), read from the run's train_log.jsonl.
2. In the same process, on the same problems and seeds, the rollout with every live dialogue in one batched
   tutor, student and judge call per turn, against one dialogue at a time.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.config import load_config  # noqa: E402
from core.models import load_causal_lm, set_offline  # noqa: E402
from core.schema import write_json, write_text  # noqa: E402

PARTS = ["tutor_s", "student_s", "solve_s", "judges_s"]


def train_split(cfg) -> dict:
    from policy.classroom.run import run_classroom

    summary = run_classroom(cfg)
    logs = [json.loads(line) for line in open(Path(cfg.out) / "train_log.jsonl")]
    steps = [log for log in logs if "step_time" in log]
    split = {part: float(np.mean([log.get(f"time/{part}", 0.0) for log in steps])) for part in PARTS}
    step = float(np.mean([log["step_time"] for log in steps]))
    split["update_s"] = step - sum(split.values())
    return {"steps": summary["steps"], "step_s": step, "split_s": split}


def rollout_once(classroom, panel, items, generate, one_at_a_time: bool) -> dict:
    classroom.timings.clear()
    torch.manual_seed(0)
    started = time.perf_counter()
    groups = [[item] for item in items] if one_at_a_time else [items]
    dialogues = [d for group in groups for d in classroom.run(group, generate)]
    judged = time.perf_counter()
    records = [d.record() for d in dialogues]
    for group in ([[r] for r in records] if one_at_a_time else [records]):
        panel.judge(group)
    out = {part: round(classroom.timings.get(part, 0.0), 2) for part in PARTS[:3]}
    out["judges_s"] = round(time.perf_counter() - judged, 2)
    out["total_s"] = round(time.perf_counter() - started, 2)
    out["tutor_turns"] = sum(t["role"] == "tutor" for d in dialogues for t in d.turns)
    return out


def batching(cfg, n_dialogues: int) -> dict:
    from core.models import load_tokenizer
    from policy.classroom.eval import tutor_generator
    from policy.classroom.judges import JudgePanel
    from policy.classroom.run import build_classroom

    tokenizer = load_tokenizer(cfg.policy)
    classroom = build_classroom(cfg, tokenizer)
    rows = classroom.rows(cfg.prompts, n_dialogues, cfg.max_prompt_tokens)
    items = [classroom.items_by_prompt[json.dumps(r["prompt"], sort_keys=True)] for r in rows]
    model = load_causal_lm(cfg.policy, dtype=cfg.rollout_dtype).eval()
    generate = tutor_generator(model, tokenizer, cfg.max_completion_length, cfg.temperature, batch_size=64)
    panel = JudgePanel(cfg.judges)
    batched = rollout_once(classroom, panel, items, generate, one_at_a_time=False)
    single = rollout_once(classroom, panel, items, generate, one_at_a_time=True)
    return {"dialogues": len(items), "batched": batched, "one_at_a_time": single,
            "speedup": round(single["total_s"] / max(batched["total_s"], 1e-9), 2)}


def markdown(result: dict) -> str:
    t, b = result["train"], result["batching"]
    lines = ["## Classroom rollout", "",
             f"Config `{result['config']}`, {t['steps']} GRPO steps, {result['dialogues_per_step']} dialogues per "
             f"step: {t['step_s']:.1f} s per step.", "", "| part | s per step | share |", "|---|---|---|"]
    for part, seconds in t["split_s"].items():
        lines.append(f"| {part[:-2]} | {seconds:.1f} | {seconds / t['step_s']:.0%} |")
    lines += ["", f"Rollout of {b['dialogues']} dialogues, batched vs one dialogue at a time (same problems, seeds):",
              "", "| | tutor s | student s | solve s | judges s | total s |", "|---|---|---|---|---|---|"]
    for name in ("batched", "one_at_a_time"):
        r = b[name]
        lines.append(f"| {name.replace('_', ' ')} | {r['tutor_s']} | {r['student_s']} | {r['solve_s']} | "
                     f"{r['judges_s']} | {r['total_s']} |")
    lines += ["", f"Batching: {b['speedup']}x faster."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs/policy/classroom_tiny.yaml"))
    parser.add_argument("--prompts", required=True, help="PromptItem JSONL (the rl split)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--dialogues", type=int, default=8, help="dialogues in the batching comparison")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    set_offline()
    from policy.classroom.config import ClassroomConfig

    cfg = load_config(ClassroomConfig, args.config, {
        "prompts": args.prompts, "out": str(args.out / "run"), "max_steps": args.steps, "save_steps": 10_000,
        "resume": False})
    result = {"config": args.config, "dialogues_per_step": cfg.prompts_per_step * cfg.num_generations,
              "train": train_split(cfg), "batching": batching(cfg, args.dialogues)}
    write_json(args.out / "bench_classroom.json", result)
    write_text(args.out / "bench_classroom.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
