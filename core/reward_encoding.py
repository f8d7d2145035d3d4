"""Turn (context, response) pairs into token ids for the reward model.

Contexts are long dialogues; what matters most for judging the next tutor turn is the end of the dialogue
and who the student is. So the response is kept whole (up to a cap), the student-profile block at the top
of the context is kept (up to half of the room left), and the rest of the context is cut from the LEFT,
keeping the last turns. Encoders get a text pair ([CLS] context [SEP] response [SEP]); decoders get one
text with a response marker and a final EOS token, whose hidden state is the pooled one.
"""
from __future__ import annotations

import bisect
from typing import Callable

from core.schema import PROFILE_HEADER

RESPONSE_MARKER = "\n\n## Tutor response\n"
ELLIPSIS = "...\n"


def _split_profile(context: str) -> tuple[str, str]:
    """(profile block with its trailing blank line, the rest); profile is '' when the context has none."""
    if not context.startswith(PROFILE_HEADER):
        return "", context
    head, sep, rest = context.partition("\n\n## ")
    if not sep:
        return context, ""
    return head + "\n\n", "## " + rest


def _n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]) if text else 0


def _offsets(tokenizer, texts: list[str]) -> list[list[tuple[int, int]]]:
    """Character span of every token of each text, from one batched call (the Rust tokenizer's threads)."""
    return tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]


# Tokenizing whole dialogues only to keep their last turns was over half of the tokenizing time (0.23 of 0.40 ms
# per MRBench pair at max length 128). So only a window of each long text is tokenized: CHARS_PER_TOKEN characters
# per token that may be kept (English averages ~4), plus SPARE_TOKENS, cut at a whitespace so that no word is
# split. A window holding too few tokens is tokenized again in full, so what is kept never depends on the window.
CHARS_PER_TOKEN = 6
SPARE_TOKENS = 8  # the first tokens of a tail window may differ from the full text's (e.g. a split space)


def _head_end(text: str, n_tokens: int) -> int:
    """End of a window at the start of `text` for its first `n_tokens` tokens (len(text): the whole text)."""
    end = (n_tokens + SPARE_TOKENS) * CHARS_PER_TOKEN
    while 0 < end < len(text) and not text[end].isspace():
        end -= 1
    return end if 0 < end < len(text) else len(text)


def _tail_start(text: str, start: int, n_tokens: int) -> int:
    """Start of a window at the end of `text[start:]` for its last `n_tokens` tokens (`start`: all of it). It
    starts at a word, not at the space before it, as the text after a profile block does (see _split_profile)."""
    begin = len(text) - (n_tokens + SPARE_TOKENS) * CHARS_PER_TOKEN
    while start < begin < len(text) and not (text[begin - 1].isspace() and not text[begin].isspace()):
        begin += 1
    return begin if start < begin < len(text) else start


def _window_offsets(tokenizer, texts: list[str], windows: list[tuple[int, int]],
                    enough: Callable[[int, list[tuple[int, int]]], bool]) -> list[list[tuple[int, int]]]:
    """Token spans (in characters of the whole text) of text[:a] + text[b:] for each window (a, b). Where the
    window cuts the text but not enough(i, spans) holds, the whole text is tokenized instead."""
    windows = list(windows)

    def tokenize(rows: list[int]) -> dict[int, list[tuple[int, int]]]:
        if not rows:
            return {}
        cut = [texts[i][:windows[i][0]] + texts[i][windows[i][1]:] for i in rows]
        spans = {}
        for i, offsets in zip(rows, _offsets(tokenizer, cut)):
            gap = windows[i][1] - windows[i][0]  # characters after the gap move back to their place in the text
            spans[i] = [(s + gap, e + gap) if s >= windows[i][0] else (s, e) for s, e in offsets] if gap else offsets
        return spans

    spans = tokenize(list(range(len(texts))))
    short = [i for i, (a, b) in enumerate(windows) if a < b and not enough(i, spans[i])]
    for i in short:
        windows[i] = (len(texts[i]), len(texts[i]))
    spans.update(tokenize(short))
    return [spans[i] for i in range(len(texts))]


def _n_profile_tokens(offsets: list[tuple[int, int]], profile_end: int) -> int:
    return bisect.bisect_right([end for _, end in offsets], profile_end)


def _cut_context(context: str, profile_end: int, offsets: list[tuple[int, int]], budget: int,
                 n_ellipsis: int) -> str:
    """The profile block context[:profile_end] (up to half of `budget`) + ELLIPSIS + as many of the last tokens as
    still fit. `offsets` may skip the middle of the context (see _window_offsets) if the part after the gap has
    more than `budget` tokens."""
    profile = context[:profile_end]
    n_profile = _n_profile_tokens(offsets, profile_end)
    keep = min(n_profile, max(budget // 2, 0))
    head = profile if keep == n_profile else (context[:offsets[keep - 1][1]] if keep > 0 else "")
    rest_budget = budget - keep - n_ellipsis
    n_rest = len(offsets) - n_profile
    if rest_budget <= 0:
        return head
    if n_rest <= rest_budget:
        return head + context[len(profile):]
    return head + ELLIPSIS + context[offsets[len(offsets) - rest_budget][0]:]


def fit_pairs(tokenizer, contexts: list[str], responses: list[str], max_length: int,
              max_response_tokens: int) -> tuple[list[str], list[str]]:
    """Shorten each context (from the left, profile kept) and response (from the right) to fit max_length tokens."""
    # Room for special tokens / the response marker, measured rather than guessed per tokenizer. Encoders do not
    # read the marker, but filling its room with more dialogue scored lower in the MRBench cross-validation
    # (macro-F1 0.573 and 0.567 for seeds 0 and 1, against 0.586 and 0.574), so they keep it free.
    overhead = len(tokenizer("a", "b")["input_ids"]) - 2 + _n_tokens(tokenizer, RESPONSE_MARKER) + 2
    n_ellipsis = _n_tokens(tokenizer, ELLIPSIS)
    keep_response = max(max_response_tokens, 0)
    r_windows = [(_head_end(r, keep_response), len(r)) for r in responses]
    r_offsets = _window_offsets(tokenizer, responses, r_windows, lambda i, spans: len(spans) > keep_response)
    budgets = [max_length - min(len(r_off), keep_response) - overhead for r_off in r_offsets]
    profile_ends = [len(_split_profile(context)[0]) for context in contexts]
    c_windows = [(end, _tail_start(context, end, max(budget, 0)))
                 for context, end, budget in zip(contexts, profile_ends, budgets)]
    c_offsets = _window_offsets(tokenizer, contexts, c_windows, lambda i, spans: len(spans) - _n_profile_tokens(
        spans, profile_ends[i]) >= max(budgets[i], 0) + SPARE_TOKENS)
    fitted_contexts, fitted_responses = [], []
    for context, response, profile_end, c_off, r_off, budget in zip(contexts, responses, profile_ends, c_offsets,
                                                                    r_offsets, budgets):
        if len(r_off) > keep_response:
            response = response[:r_off[keep_response - 1][1]] if keep_response > 0 else ""
        fitted_contexts.append(context if len(c_off) <= budget
                               else _cut_context(context, profile_end, c_off, budget, n_ellipsis))
        fitted_responses.append(response)
    return fitted_contexts, fitted_responses


def encode_pairs(tokenizer, contexts: list[str], responses: list[str], *, decoder: bool, max_length: int,
                 max_response_tokens: int) -> list[dict[str, list[int]]]:
    """Token ids (and attention mask, token types if any) per pair; never longer than max_length.

    Tokenizes in batched calls: tokenizing pair by pair took 15% of the time of batched bf16 scoring."""
    if len(contexts) != len(responses):
        raise ValueError(f"{len(contexts)} contexts but {len(responses)} responses")
    if not contexts:
        return []
    contexts, responses = fit_pairs(tokenizer, contexts, responses, max_length, max_response_tokens)
    if decoder:
        enc = tokenizer([c + RESPONSE_MARKER + r for c, r in zip(contexts, responses)], truncation=True,
                        max_length=max_length - 1)
        features = []
        for ids, mask in zip(enc["input_ids"], enc["attention_mask"]):
            features.append({"input_ids": list(ids) + [tokenizer.eos_token_id], "attention_mask": list(mask) + [1]})
        return features
    # "only_first" + left truncation is a safety net: fit_pairs already made it fit in nearly every case.
    enc = tokenizer(contexts, responses, truncation="only_first", max_length=max_length)
    features = []
    for k in range(len(contexts)):
        feature = {key: list(values[k]) for key, values in enc.items()}
        # Which tokens belong to the response, for pooling the response on its own (tokenizer-independent).
        feature["response_mask"] = [1 if s == 1 else 0 for s in enc.sequence_ids(k)]
        features.append(feature)
    return features


def pad_batch(tokenizer, features: list[dict[str, list[int]]], multiple_of: int = 1) -> dict:
    """Right-pad a list of encodings to the longest one, rounded up to `multiple_of` tokens (the pooling reads
    the attention mask)."""
    import torch

    longest = -(-max(len(f["input_ids"]) for f in features) // multiple_of) * multiple_of
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batch = {}
    for key in features[0]:
        fill = pad_id if key == "input_ids" else 0
        batch[key] = torch.tensor([f[key] + [fill] * (longest - len(f[key])) for f in features], dtype=torch.long)
    return batch
