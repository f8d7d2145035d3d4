"""Sampling responses from a policy and scoring token log-probabilities, in batches (for evaluation).

- `sample_responses`: chat prompts -> sampled completions (token ids and text), prompts sorted by length so
  left padding stays small.
- `completion_logprobs`: per-token log-probabilities of given completions under a model, at a sampling
  temperature, which gives the token-level KL estimate between two policies on one policy's samples.
- `reference_perplexity`: perplexity of reference solutions given their questions (retention of general ability).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from core.sampling import inverse_cdf_sampling


@dataclass
class Rollout:
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str


def _batches(order: list[int], size: int):
    for start in range(0, len(order), size):
        yield order[start:start + size]


@torch.no_grad()
def sample_responses(model, tokenizer, chats: list[list[dict]], *, max_new_tokens: int, temperature: float = 1.0,
                     top_p: float = 1.0, batch_size: int = 16, seed: int = 0,
                     desc: str = "sampling") -> list[Rollout]:
    """One completion per chat, in input order: sampled, or greedy when `temperature` is 0."""
    torch.manual_seed(seed)
    model.eval()
    prompt_ids = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=False)
                  for c in chats]
    order = sorted(range(len(chats)), key=lambda i: len(prompt_ids[i]))
    eos = tokenizer.eos_token_id
    results: list[Rollout | None] = [None] * len(chats)
    for idx in tqdm(list(_batches(order, batch_size)), desc=desc, unit="batch"):
        width = max(len(prompt_ids[i]) for i in idx)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(prompt_ids[i])) + prompt_ids[i] for i in idx])
        mask = torch.tensor([[0] * (width - len(prompt_ids[i])) + [1] * len(prompt_ids[i]) for i in idx])
        with inverse_cdf_sampling():  # same distribution, far cheaper on CPU (annotation/sampling.py)
            sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if temperature > 0 else \
                dict(do_sample=False, temperature=None, top_p=None, top_k=None)
            out = model.generate(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                                 max_new_tokens=max_new_tokens, pad_token_id=pad, **sampling).cpu()
        for row, i in enumerate(idx):
            ids = out[row, width:].tolist()
            if eos in ids:
                ids = ids[:ids.index(eos) + 1]
            results[i] = Rollout(prompt_ids[i], ids, tokenizer.decode(ids, skip_special_tokens=True).strip())
    return results


@torch.no_grad()
def completion_logprobs(model, pairs: list[tuple[list[int], list[int]]], *, temperature: float = 1.0,
                        batch_size: int = 16, pad_id: int = 0, desc: str = "log-probs") -> list[np.ndarray]:
    """Log-probability of each completion token given its prompt (logits divided by the temperature).

    Rows are left-padded so every completion ends at the last position; the model then computes logits only for the
    last (longest completion + 1) positions (`logits_to_keep`) instead of the whole prompt's: on the demo's eval (430
    prompt tokens, 40 completion tokens, a 49k vocabulary) that is a tenth of the softmax work and memory."""
    model.eval()
    out: list[np.ndarray | None] = [None] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    for idx in tqdm(list(_batches(order, batch_size)), desc=desc, unit="batch"):
        seqs = [pairs[i][0] + pairs[i][1] for i in idx]
        width = max(map(len, seqs))
        keep = max(len(pairs[i][1]) for i in idx) + 1
        input_ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in seqs], device=model.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=model.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: each row's positions start at 0
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                       logits_to_keep=keep).logits.float() / temperature
        targets = input_ids[:, width - keep + 1:, None].to(logits.device)  # with device_map: the last GPU
        logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, targets).squeeze(-1)
        for row, i in enumerate(idx):
            n = len(pairs[i][1])
            out[i] = logps[row, logps.shape[1] - n:].cpu().numpy().astype(np.float64)
    return out


def reference_perplexity(model, tokenizer, questions: list[str], solutions: list[str], batch_size: int = 8) -> float:
    """exp(mean negative log-likelihood per solution token), the question given as the user turn."""
    pairs = []
    for question, solution in zip(questions, solutions, strict=True):
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                               tokenize=True, return_dict=False)
        pairs.append((prompt, tokenizer(solution, add_special_tokens=False)["input_ids"]))
    logps = completion_logprobs(model, pairs, batch_size=batch_size, pad_id=tokenizer.pad_token_id,
                                desc="perplexity")
    return float(np.exp(-np.concatenate(logps).mean()))
