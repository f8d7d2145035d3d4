"""What the eval measures on sampled responses besides the scorers: rule checks that need no model, KL(tuned ||
base) on the tuned policy's own samples, and the wall seconds of each eval phase."""
from __future__ import annotations

import time

import numpy as np

from core.stats import mean_interval, rate_interval
from policy.rollout import completion_logprobs
from policy.train.rewards import leaked_answers


def rule_checks(outs, rows, k, max_new_tokens: int, eos_id: int, confidence: float = 0.95) -> dict:
    """Checks that need no model: answer leaked, empty, cut at the token limit (shares of responses with exact
    Clopper-Pearson intervals), length."""
    texts = [r.text for r in outs]
    leaks = leaked_answers(texts, [row["final_answer"] for row in rows for _ in range(k)],
                           [row["student_known"] for row in rows for _ in range(k)])
    cut = [len(r.completion_ids) >= max_new_tokens and (not r.completion_ids or r.completion_ids[-1] != eos_id)
           for r in outs]
    return {"answer_leaked": rate_interval(leaks, confidence), "empty": rate_interval([not t.strip() for t in texts],
                                                                                      confidence),
            "truncated": rate_interval(cut, confidence),
            "ended_on_own": rate_interval([not c for c in cut], confidence),  # ended by EOS, not by the cap
            "length_tokens": float(np.mean([len(r.completion_ids) for r in outs])),
            "length_words": float(np.mean([len(t.split()) for t in texts])), "n": len(outs)}


def kl_on_tuned_samples(tuned_model, base_model, rollouts, s: dict, cfg, pad_id: int) -> dict:
    """KL(tuned || base) = E_{y ~ tuned}[log p_tuned(y) - log p_base(y)], per sequence and per token."""
    pairs = [(r.prompt_ids, r.completion_ids) for r in rollouts]
    kwargs = dict(temperature=s["temperature"], batch_size=cfg.batch_size, pad_id=pad_id)
    tuned_lp = completion_logprobs(tuned_model, pairs, desc="log-probs tuned", **kwargs)
    base_lp = completion_logprobs(base_model, pairs, desc="log-probs base", **kwargs)
    per_seq = np.array([(t - b).sum() for t, b in zip(tuned_lp, base_lp, strict=True)])
    tokens = max(1, sum(len(t) for t in tuned_lp))
    boot = dict(confidence=cfg.confidence, n_resamples=cfg.bootstrap_resamples, seed=cfg.seed)
    return {"per_sequence": mean_interval(per_seq, **boot), "per_token": float(per_seq.sum() / tokens)}


class PhaseClock:
    """Wall seconds per phase of the eval (report.json `seconds`), so a user sees where its time goes."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._last, 1)
        self._last = now
