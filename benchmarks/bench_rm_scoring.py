"""Reward-model scoring speed: length-sorted dynamic batches vs one pair at a time, measured in one run.

    python benchmarks/bench_rm_scoring.py --backbone minilm-l6 --pairs 256 --out runs/bench_rm_scoring

Reports pairs/s and tokens/s of both modes, their ratio (target >= 5x), and the fp32 compute bound of this
machine for the backbone: FLOPs per token ~ 2 x (non-embedding parameters), at the fp32 matmul GFLOP/s measured
at the start of the run (or --gflops). Both modes run in fp32 and with the backbone in bf16. Pairs come from MRBench V3 dev (real dialogue lengths)
or, with --labels, from any interchange file. Writes JSON + Markdown to --out.
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

from annotation.models import set_offline  # noqa: E402
from annotation.rubric import load_rubric  # noqa: E402
from annotation.schema import write_json, write_text  # noqa: E402
from benchmarks.compute_bound import matmul_gflops  # noqa: E402

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
    parser.add_argument("--gflops", type=float, default=None,
                        help="fp32 matmul GFLOP/s of this machine (default: measured now)")
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
    if args.gflops is None:
        args.gflops = matmul_gflops()
    fp32_bound = args.gflops * 1e9 / (2 * non_embedding_params(rm))
    mean_tokens = float(tokens.mean())
    single_tokens = float(tokens[:n_single].mean())
    modes, reference = [], None
    # bf16: the backbone's weights cast as `hpc_rm score --bf16 true` does (the CPU's bf16 units, AMX/AVX512-BF16).
    for precision, model in (("fp32", rm), ("bf16", copy.deepcopy(rm).cast_backbone(torch.bfloat16))):
        model.score(contexts[:8], responses[:8], batch_size=8)  # warm-up (allocator, kernels)
        scores = {}
        batched_s = timed(lambda: scores.update(model.score(contexts, responses, batch_size=args.batch_size)))
        single_s = timed(lambda: [model.score([c], [r], batch_size=1) for c, r in zip(contexts[:n_single],
                                                                                       responses[:n_single])])
        if reference is None:
            reference = scores
        drift = max(float(np.abs(scores[d] - reference[d]).max()) for d in reference)
        for mode, seconds, n, mean in (("length-sorted batches", batched_s, len(chosen), mean_tokens),
                                       ("one pair at a time", single_s, n_single, single_tokens)):
            modes.append({"mode": mode, "precision": precision, "pairs_per_s": round(n / seconds, 2),
                          "tokens_per_s": round(n / seconds * mean, 1),
                          "fraction_of_fp32_bound": round(n / seconds * mean / fp32_bound, 3),
                          "max_score_change_vs_fp32": round(drift, 4) if mode != "one pair at a time" else None})
    speed = {(m["mode"], m["precision"]): m["pairs_per_s"] for m in modes}
    result = {
        "backbone": rm.spec.backbone, "pairs": len(chosen), "single_pairs": n_single,
        "mean_tokens_per_pair": round(mean_tokens, 1), "batch_size": args.batch_size,
        "max_length": rm.spec.max_length, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "modes": modes,
        # The ratio (batching alone, same precision) and what the shipped bf16 batched path gives.
        "speedup_batching_fp32": round(speed["length-sorted batches", "fp32"] / speed["one pair at a time", "fp32"], 2),
        "speedup_batching_bf16": round(speed["length-sorted batches", "bf16"] / speed["one pair at a time", "bf16"], 2),
        "speedup_bf16_batches_vs_fp32_single": round(
            speed["length-sorted batches", "bf16"] / speed["one pair at a time", "fp32"], 2),
        "compute_bound": {"gflops": args.gflops, "flops_per_token": 2 * non_embedding_params(rm),
                          "tokens_per_s": round(fp32_bound, 1), "pairs_per_s": round(fp32_bound / mean_tokens, 2)},
    }
    write_json(args.out / "bench_rm_scoring.json", result)
    rows = [f"| {m['mode']} | {m['precision']} | {m['pairs_per_s']:.2f} | {m['tokens_per_s']:.0f} | "
            f"{m['fraction_of_fp32_bound']:.2f} |" for m in modes]
    text = "\n".join([
        f"# Reward-model scoring speed ({result['backbone']})",
        "",
        f"{len(chosen)} MRBench pairs (mean {mean_tokens:.0f} tokens, max length {rm.spec.max_length}), batches of "
        f"{args.batch_size}, {result['threads']} threads; one-at-a-time mode on the first {n_single} of them. One "
        "run, so the ratios are fair even on a shared machine.",
        "",
        "| mode | precision | pairs/s | tokens/s | / fp32 bound |",
        "|---|---|---|---|---|",
        *rows,
        f"| fp32 compute bound ({args.gflops:.0f} GFLOP/s, 2 x {result['compute_bound']['flops_per_token'] // 2:,} "
        f"FLOPs/token) | | {result['compute_bound']['pairs_per_s']:.2f} | {fp32_bound:.0f} | 1.00 |",
        "",
        f"Speed-up of batching alone: **{result['speedup_batching_fp32']:.1f}x in fp32**, "
        f"{result['speedup_batching_bf16']:.1f}x in bf16. Batched bf16 vs one fp32 pair at a time: "
        f"**{result['speedup_bf16_batches_vs_fp32_single']:.1f}x** (target >= 5x). Largest change of a score "
        f"(0-2 scale) from bf16: {modes[2]['max_score_change_vs_fp32']:.3f}. Attention FLOPs are not counted in the "
        "bound.",
        "",
    ])
    write_text(args.out / "bench_rm_scoring.md", text)
    print(text)


if __name__ == "__main__":
    main()
