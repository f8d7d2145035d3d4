"""Turn (context, response) pairs into token ids for the reward model.

Contexts are long dialogues; what matters most for judging the next tutor turn is the end of the dialogue
and who the student is. So the response is kept whole (up to a cap), the student-profile block at the top
of the context is kept (up to half of the room left), and the rest of the context is cut from the LEFT,
keeping the last turns. Encoders get a text pair ([CLS] context [SEP] response [SEP]); decoders get one
text with a response marker and a final EOS token, whose hidden state is the pooled one.
"""
from __future__ import annotations

from annotation.schema import PROFILE_HEADER

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


def _keep_last_tokens(tokenizer, text: str, budget: int) -> str:
    """The shortest suffix of `text` that holds its last `budget` tokens (cut at a token boundary)."""
    if budget <= 0:
        return ""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = enc["offset_mapping"]
    if len(offsets) <= budget:
        return text
    return ELLIPSIS + text[offsets[len(offsets) - budget][0]:]


def _keep_first_tokens(tokenizer, text: str, budget: int) -> str:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = enc["offset_mapping"]
    if len(offsets) <= budget:
        return text
    return text[: offsets[budget - 1][1]] if budget > 0 else ""


def _n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]) if text else 0


def fit_pair(tokenizer, context: str, response: str, max_length: int, max_response_tokens: int) -> tuple[str, str]:
    """Shorten context (from the left, profile kept) and response (from the right) to fit max_length tokens."""
    response = _keep_first_tokens(tokenizer, response, max_response_tokens)
    # Room for special tokens / the response marker, measured rather than guessed per tokenizer.
    overhead = len(tokenizer("a", "b")["input_ids"]) - 2 + _n_tokens(tokenizer, RESPONSE_MARKER) + 2
    budget = max_length - _n_tokens(tokenizer, response) - overhead
    if _n_tokens(tokenizer, context) <= budget:
        return context, response
    profile, rest = _split_profile(context)
    profile = _keep_first_tokens(tokenizer, profile, max(budget // 2, 0))
    rest_budget = budget - _n_tokens(tokenizer, profile) - _n_tokens(tokenizer, ELLIPSIS)
    return profile + _keep_last_tokens(tokenizer, rest, rest_budget), response


def encode_pair(tokenizer, context: str, response: str, *, decoder: bool, max_length: int,
                max_response_tokens: int) -> dict[str, list[int]]:
    """Token ids (and attention mask, token types if any) for one pair; never longer than max_length."""
    context, response = fit_pair(tokenizer, context, response, max_length, max_response_tokens)
    if decoder:
        enc = tokenizer(context + RESPONSE_MARKER + response, truncation=True, max_length=max_length - 1)
        enc = {k: list(v) for k, v in enc.items()}
        enc["input_ids"].append(tokenizer.eos_token_id)
        enc["attention_mask"].append(1)
        enc.pop("token_type_ids", None)
        return enc
    # "only_first" + left truncation is a safety net: fit_pair already made it fit in nearly every case.
    enc = tokenizer(context, response, truncation="only_first", max_length=max_length)
    features = {k: list(v) for k, v in enc.items()}
    # Which tokens belong to the response, for pooling the response on its own (tokenizer-independent).
    features["response_mask"] = [1 if s == 1 else 0 for s in enc.sequence_ids()]
    return features


def encode_pairs(tokenizer, contexts: list[str], responses: list[str], *, decoder: bool, max_length: int,
                 max_response_tokens: int) -> list[dict[str, list[int]]]:
    if len(contexts) != len(responses):
        raise ValueError(f"{len(contexts)} contexts but {len(responses)} responses")
    return [
        encode_pair(tokenizer, c, r, decoder=decoder, max_length=max_length, max_response_tokens=max_response_tokens)
        for c, r in zip(contexts, responses)
    ]


def pad_batch(tokenizer, features: list[dict[str, list[int]]]) -> dict:
    """Right-pad a list of encodings to the longest one (the pooling reads the attention mask)."""
    import torch

    longest = max(len(f["input_ids"]) for f in features)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batch = {}
    for key in features[0]:
        fill = pad_id if key == "input_ids" else 0
        batch[key] = torch.tensor([f[key] + [fill] * (longest - len(f[key])) for f in features], dtype=torch.long)
    return batch
