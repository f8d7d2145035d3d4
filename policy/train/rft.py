"""`python -m policy rft --config configs/policy/rft_tiny.yaml`: RM-filtered SFT (rejection sampling fine-tuning),
EduAlign's "generate multiple responses per prompt and keep the highest-scoring".

Each iteration samples `n` responses per `rl` prompt from the current policy, scores them with the training reward
model, keeps the `top_k` best per prompt (or, with `threshold`, every one whose weighted reward reaches it), and
fine-tunes the current policy on them with TRL's SFTTrainer, loss on the response only (as `policy sft`). With
`iterations` > 1 the next iteration samples from the policy just trained (expert iteration). The sample budget is
iterations x prompts x n, recorded in run.json (`samples_drawn`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from core.config import run_cli
from core.schema import write_json
from policy.train.methods import TrainOptions, start_run, train_and_save


class RFTConfig(TrainOptions):
    out: str = Field("runs/demo/rft", description="output folder: the RFT policy, each iteration's samples, logs")
    n: int = Field(4, ge=1, le=4096, description="samples per prompt and iteration")
    top_k: int = Field(1, ge=1, description="samples kept per prompt, the best by the weighted reward")
    threshold: float | None = Field(None, ge=-1e9, le=1e9, description="keep every sample whose weighted reward "
                                                                        "is at least this instead of top_k")
    iterations: int = Field(1, ge=1, le=100, description="sample-select-train rounds (expert iteration)")
    max_length: int = Field(512, ge=16, description="longest prompt + completion in tokens for the SFT step")


def select(rewards: np.ndarray, top_k: int, threshold: float | None = None) -> list[list[int]]:
    """Per prompt, the sample indices kept: the top_k by reward (best first), or all at or above `threshold`."""
    if threshold is not None:
        return [[int(j) for j in np.flatnonzero(row >= threshold)] for row in rewards]
    return [[int(j) for j in np.argsort(-row, kind="stable")[:top_k]] for row in rewards]


def run_rft(cfg: RFTConfig, rm=None) -> dict:
    from core.models import load_tokenizer
    from policy.prompts import load_prompt_rows
    from policy.train.candidates import load_rm_and_weights, load_sampler, sample_and_score
    from policy.train.config import check_run_inputs
    from policy.train.sft import build_sft_trainer, sft_records

    check_run_inputs(cfg, check_rm=rm is None)
    rm, weights = load_rm_and_weights(cfg) if rm is None else (rm, cfg.weights or rm.weights)
    rows = load_prompt_rows(cfg.prompts, cfg.system_prompt, cfg.max_prompts, load_tokenizer(cfg.policy),
                            cfg.max_prompt_tokens)
    out = Path(cfg.out)
    start_run(cfg, out)
    policy, history, summary = cfg.policy, [], {}
    for iteration in range(cfg.iterations):
        last = iteration == cfg.iterations - 1
        it_out = out if last else out / f"iteration-{iteration}"
        model, tokenizer = load_sampler(cfg, policy)
        candidates = sample_and_score(model, tokenizer, rows, cfg.n, rm, weights,
                                      max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature,
                                      top_p=cfg.top_p, batch_size=cfg.sample_batch_size, seed=cfg.seed + iteration,
                                      desc=f"sampling (iteration {iteration})")
        del model
        candidates.write(out / f"candidates-{iteration}.jsonl")
        kept = select(candidates.rewards, cfg.top_k, cfg.threshold)
        records = sft_records(rows, [[candidates.texts[i][j] for j in js] for i, js in enumerate(kept)])
        kept_rewards = [candidates.rewards[i, j] for i, js in enumerate(kept) for j in js]
        history.append({"iteration": iteration, "policy": policy, "samples": candidates.rewards.size,
                        "kept": len(records), "reward_all": float(candidates.rewards.mean()),
                        "reward_kept": float(np.mean(kept_rewards)) if kept_rewards else None})
        print(f"iteration {iteration}: kept {len(records)} of {candidates.rewards.size} samples (mean reward "
              f"{history[-1]['reward_all']:.4f} -> {history[-1]['reward_kept'] or float('nan'):.4f})", flush=True)
        it_cfg = cfg.model_copy(update={"policy": policy})  # a LoRA adapter merges into the policy it trained
        trainer = build_sft_trainer(it_cfg, records, it_out, max_length=cfg.max_length)
        summary = train_and_save(trainer, it_cfg, it_out, {"method": "rft", "iteration": iteration})
        policy = summary.get("policy", policy)
    summary.update({"iterations": history, "samples_drawn": sum(h["samples"] for h in history),
                    "base_policy_name": cfg.policy})
    from core.models import resolve_model

    summary["base_policy"] = resolve_model(cfg.policy)
    write_json(out / "run.json", summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    cfg, summary = run_cli(RFTConfig, argv, "python -m policy rft", __doc__.split("\n")[0], run_rft)
    if summary:
        print(f"saved policy to {summary['policy']} after {len(summary['iterations'])} iteration(s) on "
              f"{summary['samples_drawn']} sampled responses")
