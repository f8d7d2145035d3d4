"""The local judge's prefix sharing (rubric cache -> padded item batch -> per-dimension suffixes) must give the
same level logits as running each full prompt on its own, whatever the padding and batch."""
from __future__ import annotations

import torch

from core.judges import JudgeJob, RawLabel, build_judges
from core.judges.local_judge import PromptPieces
from core.rubric import load_rubric
from core.schema import LabeledItem


def _items() -> list[LabeledItem]:
    return [
        LabeledItem(id="a", context="## Problem\nWhat is 3 + 4?", response="Try counting on from 3."),
        LabeledItem(id="b", context="## Dialogue so far\n" + "Student: I think it is 12 because 3 times 4.\n" * 30,
                    response="Let's check: does the problem ask you to multiply or to add? " * 3),
        LabeledItem(id="c", context="## Problem\nHalf of 10?", response="5."),
        LabeledItem(id="d", context="## Problem\nWhat is 3 + 4?", response="It is 7, well done."),  # shares a's context
    ]


def _full_prompt_logits(judge, pieces, item, dim_index, sample):
    ids = (pieces.rubric_ids + pieces.context_ids(item.context) + pieces.response_ids(item.response)
           + pieces.suffix_ids(dim_index, sample))
    with torch.inference_mode():
        logits = judge.model(input_ids=torch.tensor([ids])).logits[0, -1]
    return logits[pieces.level_ids[dim_index]].float()


def test_cached_batched_logits_equal_full_prompt(tiny_causal_lm):
    rubric = load_rubric("hpc")
    (judge,) = build_judges([f"local?model={tiny_causal_lm}&dtype=float32&batch_size=4&max_context_tokens=64"])
    pieces = PromptPieces(judge.tokenizer, rubric, judge.config)
    items = _items()
    assert len(pieces.context_ids(items[1].context)) < 64 + 10  # the long context was cut
    with torch.inference_mode():
        rubric_cache = judge.decoder(input_ids=torch.tensor([pieces.rubric_ids]), use_cache=True).past_key_values
    samples = [[0, 1], [1], [0, 2], [3]]
    batched = judge.level_logits(pieces, rubric_cache, items, samples)
    assert sorted(batched) == sorted((i, s) for i, ss in enumerate(samples) for s in ss)
    for (i, sample), per_dim in batched.items():
        for d, logits in enumerate(per_dim):
            reference = _full_prompt_logits(judge, pieces, items[i], d, sample)
            assert torch.allclose(logits, reference, atol=1e-5, rtol=0), (i, sample, d, logits, reference)


def test_raw_labels_carry_argmax_expected_and_probabilities(tiny_causal_lm):
    rubric = load_rubric("hpc")
    (judge,) = build_judges([f"local?model={tiny_causal_lm}&dtype=float32&batch_size=2"])
    labels: list[RawLabel] = []
    jobs = [JudgeJob(item, sample) for item in _items() for sample in (0, 1)]
    judge.label(jobs, rubric, labels.append)
    assert sorted((r.item_id, r.sample) for r in labels) == sorted((j.item.id, j.sample) for j in jobs)
    pieces = PromptPieces(judge.tokenizer, rubric, judge.config)
    by_id = {item.id: item for item in _items()}
    for raw in labels:
        assert raw.status == "ok" and raw.rubric_hash == rubric.hash and raw.judge == "local"
        for d, name in enumerate(rubric.names):
            p = torch.softmax(_full_prompt_logits(judge, pieces, by_id[raw.item_id], d, raw.sample), dim=-1)
            assert raw.scores[name] == int(p.argmax())
            assert abs(raw.expected[name] - float((p * torch.arange(3)).sum())) < 1e-3
            assert abs(sum(raw.probs[name]) - 1) < 1e-3


def test_samples_change_the_question_wording(tiny_causal_lm):
    rubric = load_rubric("hpc")
    (judge,) = build_judges([f"local?model={tiny_causal_lm}&dtype=float32"])
    pieces = PromptPieces(judge.tokenizer, rubric, judge.config)
    assert pieces.suffix_ids(0, 0) != pieces.suffix_ids(0, 1)
