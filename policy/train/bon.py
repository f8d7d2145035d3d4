"""`python -m policy bon --config configs/policy/bon_tiny.yaml`: best-of-n at inference, no training.

The base policy samples `n` responses per prompt once (one set, default 16); for every reported n (1, 2, 4, 8,
16) best-of-n keeps, per prompt, the highest-scoring of the FIRST n samples (subsets of the same set, so the rows
differ only by n). The scorer is the training reward model by default, or another RM (`select_with`).
The KL of best-of-n to the base policy is the analytic log n - (n-1)/n (Stiennon et al. 2020; exact for a
continuous reward without ties, an upper bound otherwise; `bon_kl_exact` computes the exact value on a finite
distribution).

Writes out/candidates.jsonl (every sample, scored), out/responses_n{n}.jsonl (the selected response per prompt,
the fields of `policy eval`'s responses.jsonl), out/bon.json and out/bon.md (one row per n: the selector's mean
reward, its gain over n = 1, the analytic KL).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field, field_validator

from core.config import ConfigError, run_cli
from core.schema import write_json, write_jsonl, write_text
from policy.train.methods import TrainOptions, start_run


class BonConfig(TrainOptions):
    prompts: str = Field("runs/demo/data/eval.jsonl", description="PromptItem JSONL best-of-n answers (best-of-n "
                                                                  "is an inference method: the held-out split)")
    out: str = Field("runs/demo/bon", description="output folder: candidates, one responses file per n, bon.md")
    n: int = Field(16, ge=1, le=4096, description="samples per prompt drawn once; every reported n is a subset")
    ns: list[Annotated[int, Field(ge=1, le=4096)]] = Field([1, 2, 4, 8, 16], description="the n reported, each "
                                                           "<= n (the first n samples)")
    select_with: str | None = Field(None, description="RM folder or URL that picks the best (None: the training "
                                                      "reward model, `reward_model`)")

    @field_validator("ns")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or any(k < 1 for k in value):
            raise ValueError("ns must name at least one n, each >= 1")
        return sorted(set(value))


def bon_kl(n: int) -> float:
    """KL(best-of-n || base) for a continuous reward: log n - (n - 1) / n."""
    return math.log(n) - (n - 1) / n


def bon_kl_exact(base_probs: np.ndarray, n: int) -> float:
    """Exact KL(best-of-n || base) on a finite distribution whose outcomes are sorted by increasing reward, no
    ties: best-of-n picks outcome i with probability F(i)^n - F(i-1)^n (F the base CDF)."""
    p = np.asarray(base_probs, dtype=np.float64)
    cdf = np.cumsum(p)
    q = cdf ** n - np.concatenate([[0.0], cdf[:-1]]) ** n
    keep = q > 0
    return float(np.sum(q[keep] * np.log(q[keep] / p[keep])))


def best_index(rewards: np.ndarray, n: int) -> np.ndarray:
    """Per prompt (row), the index of the highest reward among the first n samples (the first one on a tie)."""
    return np.argmax(rewards[:, :n], axis=1)


def paired_gain_ci(reward: np.ndarray, first: np.ndarray) -> list[float] | None:
    """The bootstrap 95% interval over prompts of the mean paired gain (core.stats); None under 2 prompts."""
    from core.stats import paired_difference

    if len(reward) < 2:
        return None
    gain = paired_difference(reward, first)
    return [gain["low"], gain["high"]]


def bon_rows(candidates, ns: list[int], selector_rewards: np.ndarray | None = None) -> list[dict]:
    """One row per n: the selected samples' mean training reward and per dimension, and the analytic KL.
    `selector_rewards` (default: the candidates' own rewards) picks the best."""
    picker = candidates.rewards if selector_rewards is None else selector_rewards
    rows, first = [], None
    for n in ns:
        idx = best_index(picker, n)
        pick = np.arange(len(idx))
        reward = candidates.rewards[pick, idx]
        first = reward if first is None else first
        rows.append({"n": n, "kl_analytic": bon_kl(n), "reward_mean": float(reward.mean()),
                     "gain_over_first": float((reward - first).mean()), "gain_ci": paired_gain_ci(reward, first),
                     "selector_mean": float(picker[pick, idx].mean()), "selected": idx.tolist(),
                     "scores": {d: float(v[pick, idx].mean()) for d, v in candidates.scores.items()}})
    return rows


def selected_responses(candidates, selected: list[int], name: str) -> list[dict]:
    """The responses file of one n, in the layout of `policy eval`'s responses.jsonl (plus the sample index)."""
    return [{"prompt_id": pid, "policy": name, "response": candidates.texts[i][j],
             "tokens": len(candidates.completion_ids[i][j]), "sample": j}
            for i, (pid, j) in enumerate(zip(candidates.prompt_ids, selected, strict=True))]


def write_markdown(report: dict, path: Path) -> None:
    lines = ["# Best-of-n", "", f"{report['prompts']} prompts x {report['n']} samples from {report['policy']}, "
             f"selected by {report['selected_by']}. Mean training-RM reward of the selected response (the RM that "
             "selects it, so its gain grows by construction; `policy compare` scores it independently); KL to the "
             "base is the analytic log n - (n-1)/n.", "",
             f"| n | training-RM reward | gain over n={report['rows'][0]['n']} [95% CI, paired over prompts] | "
             "KL (nats) |", "|---|---|---|---|"]
    for row in report["rows"]:
        ci = row.get("gain_ci")
        interval = f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else ""
        lines.append(f"| {row['n']} | {row['reward_mean']:.4f} | {row['gain_over_first']:+.4f}{interval} | "
                     f"{row['kl_analytic']:.3f} |")
    write_text(path, "\n".join(lines) + "\n")


def run_bon(cfg: BonConfig, rm=None) -> dict:
    from policy.prompts import load_prompt_rows
    from policy.train.candidates import load_rm_and_weights, load_sampler, rescore, sample_and_score
    from policy.train.config import check_run_inputs

    if max(cfg.ns) > cfg.n:
        raise ConfigError(f"field ns: every n must be <= n {cfg.n} (got {max(cfg.ns)})")
    check_run_inputs(cfg, check_rm=rm is None)
    if rm is None:
        rm, weights = load_rm_and_weights(cfg)
    else:
        weights = cfg.weights or rm.weights
    sampler, tokenizer = load_sampler(cfg)
    rows = load_prompt_rows(cfg.prompts, cfg.system_prompt, cfg.max_prompts, tokenizer, cfg.max_prompt_tokens)
    out = Path(cfg.out)
    start_run(cfg, out)
    candidates = sample_and_score(sampler, tokenizer, rows, cfg.n, rm, weights,
                                  max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature,
                                  top_p=cfg.top_p, batch_size=cfg.sample_batch_size, seed=cfg.seed)
    candidates.write(out / "candidates.jsonl")
    selector = None
    if cfg.select_with and cfg.select_with != cfg.reward_model:
        other, other_weights = load_rm_and_weights(cfg, cfg.select_with)
        selector = rescore(candidates, other, other_weights, [r["context"] for r in rows],
                           cfg.sample_batch_size).rewards
    rows_out = bon_rows(candidates, cfg.ns, selector)
    for row in rows_out:
        row["responses"] = str(out / f"responses_n{row['n']}.jsonl")
        write_jsonl(row["responses"], selected_responses(candidates, row["selected"], f"bon-n{row['n']}"))
    report = {"policy": cfg.policy, "prompts": len(rows), "n": cfg.n, "samples": len(rows) * cfg.n,
              "selected_by": cfg.select_with or f"the training RM ({cfg.reward_model})", "rows": rows_out}
    write_json(out / "bon.json", report)
    write_markdown(report, out / "bon.md")
    return report


def main(argv: list[str] | None = None) -> None:
    cfg, report = run_cli(BonConfig, argv, "python -m policy bon", __doc__.split("\n")[0], run_bon)
    best = report["rows"][-1]
    print(f"best-of-{best['n']}: training-RM reward {best['reward_mean']:.4f} (n=1: "
          f"{report['rows'][0]['reward_mean']:.4f}), KL {best['kl_analytic']:.3f} nats; "
          f"{report['samples']} samples; report in {Path(cfg.out) / 'bon.md'}")
