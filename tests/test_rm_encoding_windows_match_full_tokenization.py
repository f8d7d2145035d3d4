"""`fit_pairs` tokenizes only a window of each long context and response: the pairs it fits must be exactly the
ones it fits when every text is tokenized whole (WordPiece and byte-level BPE tokenizers, with and without student
profiles, odd whitespace, text without spaces, and windows too short for their text, which fall back to the whole
text), and it must really tokenize less."""
from __future__ import annotations

import random

import pytest

from core.models import load_tokenizer
from core.schema import PROFILE_HEADER
from core import reward_encoding as encoding

WORDS = ["Student:", "Tutor:", "I", "think", "7", "x", "8", "=", "54,", "so", "the", "answer", "is", "$12.50.",
         "Let's", "check", "denominators", "again", "\u00a0and", "multiplication", "(3/4)", "of", "half"]


def dialogue(rng: random.Random, n_words: int) -> str:
    parts = []
    for _ in range(n_words):
        parts.append(rng.choice(WORDS))
        parts.append(rng.choice([" ", " ", " ", "\n", "\n\u00a0", "  "]))
    return "".join(parts).strip()


def pairs() -> tuple[list[str], list[str]]:
    rng = random.Random(0)
    profile = f"{PROFILE_HEADER}\nGrade level: 6\nMisconception: adds denominators\n\n"
    contexts, responses = [], []
    for k in range(40):
        body = f"## Dialogue so far\n{dialogue(rng, rng.choice([5, 60, 400]))}"
        contexts.append((profile if k % 2 else "") + body)
        responses.append(dialogue(rng, rng.choice([3, 30, 150])))
    contexts += ["x" * 3000, PROFILE_HEADER + "\n" + "long profile " * 300 + "\n\n## Dialogue so far\n" + "a " * 900]
    responses += ["y" * 2000, "fine"]
    return contexts, responses


@pytest.mark.parametrize("backbone", ["minilm-l6", "smollm2-135m-instruct"])
@pytest.mark.parametrize("max_length,max_response_tokens", [(128, 64), (64, 0), (256, 192)])
def test_windows_fit_the_same_pairs_as_whole_texts(monkeypatch, backbone, max_length, max_response_tokens):
    tokenizer = load_tokenizer(backbone)
    contexts, responses = pairs()
    default_chars_per_token = encoding.CHARS_PER_TOKEN
    tokenized_chars = []
    offsets = encoding._offsets
    monkeypatch.setattr(encoding, "_offsets",
                        lambda tok, texts: tokenized_chars.append(sum(map(len, texts))) or offsets(tok, texts))

    def fit(chars_per_token: int):
        monkeypatch.setattr(encoding, "CHARS_PER_TOKEN", chars_per_token)
        tokenized_chars.clear()
        fitted = encoding.fit_pairs(tokenizer, contexts, responses, max_length, max_response_tokens)
        return fitted, sum(tokenized_chars)

    whole, whole_chars = fit(10 ** 6)  # every window covers its whole text
    windowed, windowed_chars = fit(default_chars_per_token)
    too_short, _ = fit(1)  # windows hold too few tokens: tokenized again in full
    assert whole_chars == sum(map(len, contexts)) + sum(map(len, responses))
    assert windowed == whole
    assert too_short == whole
    if max_length == 64:  # short budgets: the windows skip most of the long dialogues
        assert windowed_chars < 0.5 * whole_chars
