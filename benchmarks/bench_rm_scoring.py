"""Reward-model scoring speed: length-sorted dynamic batches vs one pair at a time, measured in one run.

    python benchmarks/bench_rm_scoring.py --backbone minilm-l6 --pairs 256 --out runs/bench_rm_scoring

Reports pairs/s and tokens/s of both modes, their ratio (target >= 5x), and the fp32 compute bound of this
machine for the backbone: FLOPs per token ~ 2 x (non-embedding parameters), at the measured ~83 GFLOP/s
(ASSETS.md; pass --gflops to use your own figure). Pairs come from MRBench V3 dev (real dialogue lengths)
or, with --labels, from any interchange file. Writes JSON + Markdown to --out.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from annotation.models import set_offline
from annotation.rubric import load_rubric
from annotation.schema import write_json, write_text

REPO = Path(__file__).resolve().parent.parent


def non_embedding_params(rm) -> int:
    embeddings = sum(p.numel() for p in rm.backbone.get_input_embeddings().parameters())
    return sum(p.numel() for p in rm.parameters()) - embeddings


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="minilm-l6", help="registry name, hub id or path")
    parser.add_argument("--model", type=Path, default=None, help="a trained RM folder instead of --backbone")
    parser.add_argument("--labels", type=Path, default=REPO / "data/mrbench_v3_dev/mrbench_v3_devset.json",
                        help="pairs to score (interchange JSONL or the MRBench .json)")
    parser.add_argument("--rubric", default="mrbench", help="rubric of --labels")
    parser.add_argument("--pairs", type=int, default=256, help="pairs scored in batched mode")
    parser.add_argument("--single-pairs", type=int, default=64, help="pairs scored one at a time (a subset)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--gflops", type=float, default=83.0, help="fp32 matmul GFLOP/s of this machine")
    parser.add_argument("--out", type=Path, required=True, help="output folder (bench_rm_scoring.json/.md)")
    args = parser.parse_args(argv)
    set_offline()
    from hpc_rm.data import read_labels
    from hpc_rm.model import HPCRewardModel

    rubric = load_rubric(args.rubric)
    if args.model:
        rm = HPCRewardModel.from_pretrained(args.model)
    else:
        rm = HPCRewardModel.from_backbone(args.backbone, rubric, max_length=args.max_length)
    rm.eval()
    items = read_labels(args.labels, rubric)
    rng = np.random.default_rng(0)
    chosen = [items[i] for i in rng.choice(len(items), size=min(args.pairs, len(items)), replace=False)]
    contexts, responses = [i.context for i in chosen], [i.response for i in chosen]
    # Same pairs in both modes: the one-at-a-time run scores the first `single_pairs` of them.
    n_single = min(args.single_pairs, len(chosen))
    tokens = np.array([len(f["input_ids"]) for f in rm.encode(contexts, responses)])
    rm.score(contexts[:8], responses[:8], batch_size=8)  # warm-up (allocator, kernels)

    batched_s = timed(lambda: rm.score(contexts, responses, batch_size=args.batch_size))
    single_s = timed(lambda: [rm.score([c], [r], batch_size=1) for c, r in zip(contexts[:n_single],
                                                                                responses[:n_single])])
    batched_pps, single_pps = len(chosen) / batched_s, n_single / single_s
    flops_per_token = 2 * non_embedding_params(rm)
    bound_tps = args.gflops * 1e9 / flops_per_token
    mean_tokens = float(tokens.mean())
    result = {
        "backbone": rm.spec.backbone, "pairs": len(chosen), "single_pairs": n_single,
        "mean_tokens_per_pair": round(mean_tokens, 1), "batch_size": args.batch_size,
        "max_length": rm.spec.max_length, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "batched": {"seconds": round(batched_s, 3), "pairs_per_s": round(batched_pps, 2),
                    "tokens_per_s": round(batched_pps * mean_tokens, 1)},
        "one_at_a_time": {"seconds": round(single_s, 3), "pairs_per_s": round(single_pps, 2),
                          "tokens_per_s": round(single_pps * float(tokens[:n_single].mean()), 1)},
        "speedup": round(batched_pps / single_pps, 2),
        "compute_bound": {"gflops": args.gflops, "flops_per_token": flops_per_token,
                          "tokens_per_s": round(bound_tps, 1), "pairs_per_s": round(bound_tps / mean_tokens, 2)},
    }
    result["batched"]["fraction_of_bound"] = round(result["batched"]["tokens_per_s"] / bound_tps, 3)
    write_json(args.out / "bench_rm_scoring.json", result)
    text = "\n".join([
        f"# Reward-model scoring speed ({result['backbone']})",
        "",
        f"{len(chosen)} MRBench pairs (mean {mean_tokens:.0f} tokens, max length {rm.spec.max_length}), "
        f"{result['threads']} threads; one-at-a-time mode on the first {n_single} of them. One run, so the ratio "
        "is fair even on a shared machine.",
        "",
        "| mode | pairs/s | tokens/s |",
        "|---|---|---|",
        f"| length-sorted batches of {args.batch_size} | {batched_pps:.2f} | {result['batched']['tokens_per_s']:.0f} |",
        f"| one pair at a time | {single_pps:.2f} | {result['one_at_a_time']['tokens_per_s']:.0f} |",
        f"| fp32 compute bound ({args.gflops:.0f} GFLOP/s, 2 x {flops_per_token // 2:,} FLOPs/token) | "
        f"{result['compute_bound']['pairs_per_s']:.2f} | {bound_tps:.0f} |",
        "",
        f"**Speed-up of batching: {result['speedup']:.1f}x** (target >= 5x); batched scoring reaches "
        f"{100 * result['batched']['fraction_of_bound']:.0f}% of the compute bound (attention FLOPs not counted).",
        "",
    ])
    write_text(args.out / "bench_rm_scoring.md", text)
    print(text)


if __name__ == "__main__":
    main()
