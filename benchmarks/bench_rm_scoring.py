"""Reward-model scoring speed: length-sorted dynamic batches vs one pair at a time, measured in one run.

    python benchmarks/bench_rm_scoring.py --backbone minilm-l6 --pairs 256 --out runs/bench_rm_scoring

For each max length (default 128, the MRBench RM's config, and 256, `hpc_rm train`'s default) it scores the same
MRBench pairs with the backbone in fp32, in bf16, and in bf16 compiled (`HPCRewardModel.compile_backbone`), each
in length-sorted batches and one pair at a time. The modes alternate over --rounds rounds and the tables give
medians: this VM's speed drifts by up to 1.5x within minutes, so a ratio of two medians over interleaved rounds is
fairer than two back-to-back timings. Also reported: tokens/s next to this machine's fp32 compute bound for the
backbone (FLOPs per token ~ 2 x non-embedding parameters at the fp32 matmul GFLOP/s measured at the start, or
--gflops), the one-off compile time, and the largest score change against fp32. Writes JSON + Markdown to --out.
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.models import set_offline  # noqa: E402
from core.rubric import load_rubric  # noqa: E402
from core.schema import write_json, write_text  # noqa: E402
from benchmarks.compute_bound import cpu_description, matmul_gflops  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BATCHED, SINGLE = "length-sorted batches", "one pair at a time"


def non_embedding_params(rm) -> int:
    embeddings = sum(p.numel() for p in rm.backbone.get_input_embeddings().parameters())
    return sum(p.numel() for p in rm.parameters()) - embeddings


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def variants(rm, contexts, responses, batch_size: int) -> tuple[dict, float]:
    """{precision: model} (fp32, bf16, bf16 compiled) and the compiled model's warm-up seconds: one pass over
    the pairs and one single pair compile every graph the timed rounds use (batches with and without padding,
    single pairs)."""
    models = {"fp32": rm, "bf16": copy.deepcopy(rm).cast_backbone(torch.bfloat16),
              "bf16 compiled": copy.deepcopy(rm).cast_backbone(torch.bfloat16).compile_backbone()}
    compile_s = timed(lambda: (models["bf16 compiled"].score(contexts, responses, batch_size=batch_size),
                               models["bf16 compiled"].score(contexts[:1], responses[:1], batch_size=1)))
    for model in (models["fp32"], models["bf16"]):
        model.score(contexts[:8], responses[:8], batch_size=8)  # warm-up (allocator, kernels)
    return models, compile_s


def bench_length(rm, contexts, responses, n_single: int, batch_size: int, rounds: int, fp32_bound: float) -> dict:
    tokens = np.array([len(f["input_ids"]) for f in rm.encode(contexts, responses)])
    models, compile_s = variants(rm, contexts, responses, batch_size)
    speeds = {(p, mode): [] for p in models for mode in (BATCHED, SINGLE)}
    scores = {p: {} for p in models}
    for _ in range(rounds):  # interleaved, so slow and fast minutes of the VM fall on every mode
        for precision, model in models.items():
            seconds = timed(lambda: scores[precision].update(model.score(contexts, responses, batch_size=batch_size)))
            speeds[precision, BATCHED].append(len(contexts) / seconds)
            seconds = timed(lambda: [model.score([c], [r], batch_size=1)
                                     for c, r in zip(contexts[:n_single], responses[:n_single])])
            speeds[precision, SINGLE].append(n_single / seconds)
    drift = {p: max(float(np.abs(s[d] - scores["fp32"][d]).max()) for d in s) for p, s in scores.items()}
    mean_tokens = {BATCHED: float(tokens.mean()), SINGLE: float(tokens[:n_single].mean())}
    modes = [{"mode": mode, "precision": precision, "pairs_per_s": round(float(np.median(v)), 2),
              "pairs_per_s_rounds": [round(x, 2) for x in v],
              "tokens_per_s": round(float(np.median(v)) * mean_tokens[mode], 1),
              "fraction_of_fp32_bound": round(float(np.median(v)) * mean_tokens[mode] / fp32_bound, 3),
              "max_score_change_vs_fp32": round(drift[precision], 4) if mode == BATCHED else None}
             for (precision, mode), v in speeds.items()]
    base = np.array(speeds["fp32", SINGLE])

    def ratio(precision, over=base):
        """Batched speed of `precision` over `over` (per-round one-pair speeds): ratio of medians, and per round."""
        batched = np.array(speeds[precision, BATCHED])
        return {"median_ratio": round(float(np.median(batched) / np.median(over)), 2),
                "per_round": [round(float(x), 2) for x in batched / over]}

    return {
        "max_length": rm.spec.max_length, "max_response_tokens": rm.spec.max_response_tokens,
        "mean_tokens_per_pair": round(mean_tokens[BATCHED], 1), "compile_seconds": round(compile_s, 1),
        "modes": modes,
        # The ratio is batched vs one pair at a time; the baseline is the plain way to score (fp32).
        "speedup_vs_fp32_single": {p: ratio(p) for p in models},
        "speedup_batching_same_precision": {p: ratio(p, over=np.array(speeds[p, SINGLE])) for p in models},
        "fp32_bound_pairs_per_s": round(fp32_bound / mean_tokens[BATCHED], 2),
    }


def markdown(result: dict) -> str:
    lines = [f"# Reward-model scoring speed ({result['backbone']})", "",
             f"{result['pairs']} MRBench pairs in batches of {result['batch_size']}, one at a time on the first "
             f"{result['single_pairs']}; {result['threads']} threads; medians of {result['rounds']} interleaved "
             f"rounds (all modes in each round). fp32 compute bound: {result['gflops']:.0f} GFLOP/s matmul, "
             f"2 x {result['flops_per_token'] // 2:,} FLOPs/token (attention not counted). CPU: {result['cpu']}, "
             f"bf16 matmuls on {result['bf16_matmul_units']} at {result['bf16_gflops']:.0f} GFLOP/s "
             f"({result['bf16_gflops'] / result['gflops']:.1f}x fp32): the batched bf16 modes' ratios depend on it.",
             ""]
    for run in result["lengths"]:
        best = run["speedup_vs_fp32_single"]["bf16 compiled"]
        lines += [f"## Max length {run['max_length']} (mean {run['mean_tokens_per_pair']:.0f} tokens per pair)", "",
                  "| mode | precision | pairs/s (median) | tokens/s | / fp32 bound | x one fp32 pair at a time |",
                  "|---|---|---|---|---|---|"]
        single = next(m["pairs_per_s"] for m in run["modes"] if m["precision"] == "fp32" and m["mode"] == SINGLE)
        lines += [f"| {m['mode']} | {m['precision']} | {m['pairs_per_s']:.1f} | {m['tokens_per_s']:.0f} | "
                  f"{m['fraction_of_fp32_bound']:.2f} | {m['pairs_per_s'] / single:.2f} |" for m in run["modes"]]
        same = run["speedup_batching_same_precision"]
        drift = max(m["max_score_change_vs_fp32"] or 0 for m in run["modes"])
        lines += ["", f"Batched bf16 compiled vs one fp32 pair at a time: **{best['median_ratio']:.1f}x** (target "
                      f">= 5x; per round {', '.join(f'{x:.1f}' for x in best['per_round'])}). Eager bf16: "
                      f"{run['speedup_vs_fp32_single']['bf16']['median_ratio']:.1f}x. Batching alone, same "
                      f"precision: fp32 {same['fp32']['median_ratio']:.1f}x, bf16 {same['bf16']['median_ratio']:.1f}x, "
                      f"bf16 compiled {same['bf16 compiled']['median_ratio']:.1f}x. First compiled pass "
                      f"(compiles): {run['compile_seconds']:.0f} s. Largest score change (0-2 scale) vs fp32: "
                      f"{drift:.4f}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="minilm-l6", help="registry name, hub id or path")
    parser.add_argument("--model", type=Path, default=None,
                        help="a trained RM folder instead of --backbone (scored at its own max length)")
    parser.add_argument("--labels", type=Path, default=REPO / "data/mrbench_v3_dev/mrbench_v3_devset.json",
                        help="pairs to score (interchange JSONL or the MRBench .json)")
    parser.add_argument("--rubric", default="mrbench", help="rubric of --labels")
    parser.add_argument("--pairs", type=int, default=256, help="pairs scored in batched mode")
    parser.add_argument("--single-pairs", type=int, default=64, help="pairs scored one at a time (a subset)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-lengths", type=int, nargs="+", default=[128, 256],
                        help="max tokens per pair, one table each (responses get half)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (medians reported)")
    parser.add_argument("--gflops", type=float, default=None,
                        help="fp32 matmul GFLOP/s of this machine (default: measured now)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (bench_rm_scoring.json/.md)")
    args = parser.parse_args(argv)
    set_offline()
    from hpc_rm.data import read_labels
    from core.reward_model import HPCRewardModel

    rubric = load_rubric(args.rubric)
    if args.model:
        models = [HPCRewardModel.from_pretrained(args.model)]
    else:
        models = [HPCRewardModel.from_backbone(args.backbone, rubric, max_length=n, max_response_tokens=n // 2)
                  for n in args.max_lengths]
    items = read_labels(args.labels, rubric)
    rng = np.random.default_rng(0)
    chosen = [items[i] for i in rng.choice(len(items), size=min(args.pairs, len(items)), replace=False)]
    contexts, responses = [i.context for i in chosen], [i.response for i in chosen]
    n_single = min(args.single_pairs, len(chosen))  # the one-at-a-time mode scores the first n_single pairs
    if args.gflops is None:
        args.gflops = matmul_gflops()
    bf16_gflops = matmul_gflops(torch.bfloat16)
    flops_per_token = 2 * non_embedding_params(models[0])
    runs = [bench_length(rm.eval(), contexts, responses, n_single, args.batch_size, args.rounds,
                         args.gflops * 1e9 / flops_per_token) for rm in models]
    result = {"backbone": models[0].spec.backbone, "pairs": len(chosen), "single_pairs": n_single,
              "batch_size": args.batch_size, "rounds": args.rounds, "threads": torch.get_num_threads(),
              "machine": platform.machine(), **cpu_description(), "gflops": args.gflops, "bf16_gflops": bf16_gflops,
              "flops_per_token": flops_per_token,
              "lengths": runs}
    write_json(args.out / "bench_rm_scoring.json", result)
    text = markdown(result)
    write_text(args.out / "bench_rm_scoring.md", text)
    print(text)


if __name__ == "__main__":
    main()
