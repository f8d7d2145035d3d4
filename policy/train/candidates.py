"""n sampled responses per prompt, scored by a reward model: what best-of-n, RFT and DPO select from.

`sample_and_score` samples n completions per prompt from a policy (transformers generate, the inverse-CDF sampler
of `policy.rollout`) and scores all of them with one reward model in one pass (the weighted reward and every
dimension). The result, `Candidates`, is written as candidates.jsonl (one line per sample, with its token ids, so
KL and cut-at-limit checks can be done later without sampling again) and read back by `read_candidates`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.schema import write_jsonl


@dataclass
class Candidates:
    """`texts[i][j]`: the j-th sample for prompt i; `rewards[i, j]` its weighted reward; `scores[dim][i, j]`."""

    prompt_ids: list[str]
    texts: list[list[str]]
    completion_ids: list[list[list[int]]]
    prompt_token_ids: list[list[int]]
    rewards: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.rewards.shape[1]

    def records(self) -> list[dict]:
        return [{"prompt_id": pid, "sample": j, "response": self.texts[i][j], "reward": float(self.rewards[i, j]),
                 "scores": {d: float(v[i, j]) for d, v in self.scores.items()},
                 "completion_ids": self.completion_ids[i][j], "prompt_token_ids": self.prompt_token_ids[i]}
                for i, pid in enumerate(self.prompt_ids) for j in range(self.n)]

    def write(self, path: Path) -> None:
        write_jsonl(path, self.records())


def read_candidates(path: Path | str) -> Candidates:
    """candidates.jsonl back into `Candidates` (the samples of each prompt in their original order)."""
    by_prompt: dict[str, list[dict]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            by_prompt.setdefault(record["prompt_id"], []).append(record)
    groups = [sorted(rs, key=lambda r: r["sample"]) for rs in by_prompt.values()]
    dims = list(groups[0][0]["scores"]) if groups else []
    return Candidates(
        prompt_ids=list(by_prompt), texts=[[r["response"] for r in g] for g in groups],
        completion_ids=[[r["completion_ids"] for r in g] for g in groups],
        prompt_token_ids=[g[0]["prompt_token_ids"] for g in groups],
        rewards=np.array([[r["reward"] for r in g] for g in groups]),
        scores={d: np.array([[r["scores"][d] for r in g] for g in groups]) for d in dims},
    )


def score_texts(rm, weights: dict[str, float], contexts: list[str], texts: list[str], batch_size: int,
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(weighted reward, per-dimension scores) of each response, one RM pass."""
    preds = rm.score(contexts, texts, batch_size=batch_size)
    return np.asarray(rm.reward(preds, weights), dtype=np.float64), {d: np.asarray(v) for d, v in preds.items()}


def sample_and_score(model, tokenizer, rows: list[dict], n: int, rm, weights: dict[str, float], *,
                     max_new_tokens: int, temperature: float, top_p: float, batch_size: int, seed: int,
                     desc: str = "sampling candidates") -> Candidates:
    """n samples per prompt row (rows of `policy.prompts.load_prompt_rows`), each scored by `rm`."""
    from policy.rollout import sample_responses

    chats = [row["prompt"] for row in rows for _ in range(n)]
    rollouts = sample_responses(model, tokenizer, chats, max_new_tokens=max_new_tokens, temperature=temperature,
                                top_p=top_p, batch_size=batch_size, seed=seed, desc=desc)
    contexts = [row["context"] for row in rows for _ in range(n)]
    rewards, scores = score_texts(rm, weights, contexts, [r.text for r in rollouts], batch_size)
    shape = (len(rows), n)
    return Candidates(
        prompt_ids=[row["id"] for row in rows],
        texts=[[rollouts[i * n + j].text for j in range(n)] for i in range(len(rows))],
        completion_ids=[[rollouts[i * n + j].completion_ids for j in range(n)] for i in range(len(rows))],
        prompt_token_ids=[rollouts[i * n].prompt_ids for i in range(len(rows))],
        rewards=rewards.reshape(shape), scores={d: v.reshape(shape) for d, v in scores.items()},
    )


def rescore(candidates: Candidates, rm, weights: dict[str, float], contexts: list[str], batch_size: int) -> Candidates:
    """The same samples scored by another reward model (best-of-n selected by a scorer other than the training RM)."""
    n = candidates.n
    texts = [t for group in candidates.texts for t in group]
    rewards, scores = score_texts(rm, weights, [c for c in contexts for _ in range(n)], texts, batch_size)
    shape = candidates.rewards.shape
    return Candidates(candidates.prompt_ids, candidates.texts, candidates.completion_ids,
                      candidates.prompt_token_ids, rewards.reshape(shape), {d: v.reshape(shape) for d, v in scores.items()})


def load_sampler(cfg, policy: str | None = None):
    """(model, tokenizer) of `policy` (default: the config's) for sampling, in the config's dtype on the CPU or
    this process's GPU."""
    import torch

    from core.models import load_causal_lm, load_tokenizer

    name = policy or cfg.policy
    dtype = cfg.policy_dtype if cfg.policy_dtype != "auto" else "float32"
    model = load_causal_lm(name, dtype=dtype, device="auto" if torch.cuda.is_available() else None)
    return model, load_tokenizer(name)


def load_rm_and_weights(cfg, path: str | None = None):
    """(reward model, weights): `path` (default: the config's reward model) with the config's weights, checked
    against its dimensions (None: the RM's own)."""
    from policy.train.grpo import load_reward_model, reward_weights_for

    rm = load_reward_model(path or cfg.reward_model, None, cfg.rm_dtype)
    if path and path != cfg.reward_model and cfg.weights is not None and set(cfg.weights) != set(rm.dimensions):
        return rm, rm.weights  # another scorer with its own rubric: its own weights
    return rm, reward_weights_for(cfg, rm)
