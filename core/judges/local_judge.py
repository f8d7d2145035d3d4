"""In-process judge: a transformers causal LM read G-Eval style, no text generation.

For each dimension the prompt ends in a question whose answer is one level digit; the score is the
probability-weighted level computed from the next-token logits of the level tokens ("0", "1", "2"), and
the argmax level is recorded too.

Speed comes from sharing prefixes through the KV cache, in four layers:
  rubric   (system prompt, identical for every item)       -> computed once per run
  context  (dialogue, truncated from the left)              -> once per distinct context in a batch
  response (the tutor turn being rated)                     -> one forward per batch of items
  suffix   (one short question per dimension and sample)    -> one forward over all of a batch's questions
Segments are right-padded and masked, with explicit position ids, so padding never shifts a position.
A "sample" lists the levels in a different order in the question (0: ascending, 1: descending, then
seeded shuffles), so self-consistency across samples measures sensitivity to the prompt wording.
"""
from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable

import torch
from pydantic import Field

from core.judges import Judge, JudgeConfig, JudgeJob, RawLabel, register
from core.models import DEVICE_HELP, DTYPE_HELP, Device, Dtype, load_causal_lm, load_tokenizer
from core.rubric import Dimension, Rubric

CUT_MARK = "(earlier dialogue cut) ... "
_SPLIT_A, _SPLIT_B = "\uE000ITEM\uE000", "\uE000END\uE000"


class LocalJudgeConfig(JudgeConfig):
    backend: str = Field("local", description="judge class: in-process transformers causal LM")
    model: str = Field("smollm2-135m-instruct", description="registry name, hub id or local folder")
    dtype: Dtype = Field("bfloat16", description="judge's weights for the forward passes: " + DTYPE_HELP)
    device: Device = Field("auto", description="judge model: " + DEVICE_HELP)
    batch_size: int = Field(8, ge=1, description="items per forward pass (items in file order; neighbours sharing a "
                                                   "context compute it once)")
    max_context_tokens: int = Field(512, ge=16, description="longer contexts keep only their last tokens")
    max_response_tokens: int = Field(256, ge=8, description="longer responses keep only their first tokens")
    threads: int = Field(0, ge=0, description="torch CPU threads (0: torch's default; on a machine shared with other "
                                              "jobs, 1 can be faster)")


def level_order(dim: Dimension, sample: int) -> list[int]:
    scores = [lv.score for lv in dim.levels]
    if sample == 0:
        return sorted(scores)
    if sample == 1:
        return sorted(scores, reverse=True)
    random.Random(sample).shuffle(scores)
    return scores


def question_text(dim: Dimension, sample: int) -> str:
    """Short on purpose: it runs once per dimension and sample, and the rubric above already explains the levels."""
    levels = {lv.score: lv for lv in dim.levels}
    options = "; ".join(f"{s} = {levels[s].label}" for s in level_order(dim, sample))
    return f"\n\n## Question\nRate only {dim.name} ({options}). Answer with the level number only."


class PromptPieces:
    """Token ids of the three prompt segments, built from the model's chat template."""

    def __init__(self, tokenizer, rubric: Rubric, config: LocalJudgeConfig):
        self.tokenizer, self.rubric, self.config = tokenizer, rubric, config
        system = (
            "You are an experienced teacher who rates tutor responses against a rubric.\n"
            f"{rubric.description.strip()}\n\n## Rubric\n{rubric.as_prompt_text()}"
        )
        messages = [{"role": "system", "content": system}, {"role": "user", "content": _SPLIT_A + _SPLIT_B}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        head, rest = text.split(_SPLIT_A)
        self.tail = rest.split(_SPLIT_B)[1]  # end of user turn + assistant header
        self.rubric_ids = self._ids(head)
        self.level_ids = []
        for dim in rubric.dimensions:
            ids = [self._ids(str(lv.score)) for lv in sorted(dim.levels, key=lambda lv: lv.score)]
            if any(len(i) != 1 for i in ids):
                raise ValueError(f"{dim.name}: level numbers are not single tokens for this tokenizer")
            self.level_ids.append([i[0] for i in ids])

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def context_ids(self, context: str) -> list[int]:
        ids = self._ids(context.strip())
        if len(ids) > self.config.max_context_tokens:  # keep the end: the turn being answered
            ids = self._ids(CUT_MARK) + ids[-self.config.max_context_tokens :]
        return ids

    def response_ids(self, response: str) -> list[int]:
        header = self._ids("\n\n## Tutor response to rate\n")
        return header + self._ids(response.strip())[: self.config.max_response_tokens]

    def suffix_ids(self, dim_index: int, sample: int) -> list[int]:
        return self._ids(question_text(self.rubric.dimensions[dim_index], sample) + self.tail)


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


@register("local")
class LocalJudge(Judge):
    config_cls = LocalJudgeConfig

    def __init__(self, config: LocalJudgeConfig):
        super().__init__(config)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.tokenizer = load_tokenizer(config.model)
        self.model = load_causal_lm(config.model, dtype=config.dtype, device=config.device).eval()
        self.device = self.model.device  # every tensor built for a forward goes here
        self.decoder = self.model.base_model  # hidden states only: the LM head is applied to level rows alone
        self.stats["forward_s"] = 0.0

    @torch.inference_mode()
    def _extend(self, cache, past_mask, ids, mask, start):
        """Run one segment on top of the cache; `start` is each row's position of the segment's first token."""
        ids, mask, start = ids.to(self.device), mask.to(self.device), start.to(self.device)
        positions = start[:, None] + torch.arange(ids.shape[1], device=self.device)[None, :]
        full_mask = torch.cat([past_mask.to(self.device), mask], dim=1)
        out = self.decoder(input_ids=ids, attention_mask=full_mask, position_ids=positions,
                           past_key_values=cache, use_cache=True)
        self.stats["tokens"] += int(mask.sum())
        return out.last_hidden_state, full_mask

    @torch.inference_mode()
    def level_logits(self, pieces: PromptPieces, rubric_cache, items, samples_per_item):
        """For a batch of items: {(item index, sample): [per-dimension logits of the level tokens]}."""
        pad_id = self.tokenizer.pad_token_id
        n_rubric = len(pieces.rubric_ids)
        # contexts shared by several responses (e.g. one dialogue, many tutors) run once
        contexts = list(dict.fromkeys(item.context for item in items))
        context_rows = [pieces.context_ids(c) for c in contexts]
        cache = copy.deepcopy(rubric_cache)
        cache.batch_repeat_interleave(len(contexts))
        past_mask = torch.ones((len(contexts), n_rubric), dtype=torch.long)
        start = torch.full((len(contexts),), n_rubric)
        _, past_mask = self._extend(cache, past_mask, *_pad(context_rows, pad_id), start)
        context_of = torch.tensor([contexts.index(item.context) for item in items])  # CPU indices fit any device
        cache.batch_select_indices(context_of)
        response_rows = [pieces.response_ids(item.response) for item in items]
        start = n_rubric + torch.tensor([len(context_rows[c]) for c in context_of])
        _, past_mask = self._extend(cache, past_mask[context_of], *_pad(response_rows, pad_id), start)
        item_lengths = start + torch.tensor([len(r) for r in response_rows])
        # one suffix row per (item, sample, dimension), all reading their item's cache rows
        owners, keys, suffix_rows = [], [], []
        for i, samples in enumerate(samples_per_item):
            for sample in samples:
                for d in range(len(pieces.rubric.dimensions)):
                    owners.append(i)
                    keys.append((i, sample, d))
                    suffix_rows.append(pieces.suffix_ids(d, sample))
        owner_index = torch.tensor(owners)
        cache.batch_select_indices(owner_index)
        ids, mask = _pad(suffix_rows, pad_id)
        hidden, _ = self._extend(cache, past_mask[owner_index], ids, mask, item_lengths[owner_index])
        last = hidden[torch.arange(len(suffix_rows), device=hidden.device), mask.to(hidden.device).sum(1) - 1]
        last = last.float().cpu()  # the few level logits are computed on the CPU, whatever the model's device
        # only the level tokens' rows of the LM head (a head bias or logit soft-capping would be skipped here)
        head = self.model.get_output_embeddings().weight
        level_rows = [head[ids].float().cpu() for ids in pieces.level_ids]
        out: dict[tuple[int, int], list[torch.Tensor]] = {}
        for row, (i, sample, d) in enumerate(keys):
            out.setdefault((i, sample), []).append(last[row] @ level_rows[d].T)
        return out

    def label(self, jobs: list[JudgeJob], rubric: Rubric, record: Callable[[RawLabel], None]) -> None:
        if not jobs:
            return
        pieces = PromptPieces(self.tokenizer, rubric, self.config)
        with torch.inference_mode():
            rubric_cache = self.decoder(input_ids=torch.tensor([pieces.rubric_ids], device=self.device),
                                        use_cache=True).past_key_values
        by_item: dict[str, list[JudgeJob]] = {}
        for job in jobs:
            by_item.setdefault(job.item.id, []).append(job)
        groups = list(by_item.values())
        for start in range(0, len(groups), self.config.batch_size):
            batch = groups[start : start + self.config.batch_size]
            began = time.perf_counter()
            logits = self.level_logits(
                pieces, rubric_cache, [g[0].item for g in batch], [[j.sample for j in g] for g in batch]
            )
            self.stats["forward_s"] += time.perf_counter() - began
            self.stats["calls"] += 1
            for i, group in enumerate(batch):
                for job in group:
                    record(self._raw_label(job, rubric, logits[(i, job.sample)]))

    def _raw_label(self, job: JudgeJob, rubric: Rubric, logits: list[torch.Tensor]) -> RawLabel:
        scores, expected, level_probs = {}, {}, {}
        for name, dim_logits in zip(rubric.names, logits):
            p = torch.softmax(dim_logits, dim=-1)
            levels = torch.arange(len(p), dtype=p.dtype)
            scores[name] = int(p.argmax())
            expected[name] = round(float((p * levels).sum()), 4)
            level_probs[name] = [round(float(x), 4) for x in p]
        return RawLabel(item_id=job.item.id, rubric_hash=rubric.hash, judge=self.name, sample=job.sample,
                        status="ok", scores=scores, expected=expected, probs=level_probs)
