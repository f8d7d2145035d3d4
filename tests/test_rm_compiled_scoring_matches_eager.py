"""`HPCRewardModel.compile_backbone` and `hpc_rm score --compile true`: the backbone really runs as compiled graphs,
scores equal eager scores (batches with and without padding, single pairs), and the folder still saves and loads.
Also: a batch without padding is scored without an attention mask, a padded batch is padded to a multiple of
SCORING_LENGTH_MULTIPLE tokens and a single pair not at all, all with the same scores as one pair at a time; with no
C++ compiler, compiling fails at once with a plain message."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.schema import LabeledItem, write_jsonl
from core.reward_model import SCORING_LENGTH_MULTIPLE, HPCRewardModel

LONG = "Student: I added 17 and 25 and got 32 because 7 plus 5 is 12, so I wrote 2. " * 8


def pairs() -> tuple[list[str], list[str]]:
    """Four long contexts (cut to max_length: one batch without padding) and three short ones."""
    contexts = [LONG + f"Turn {k}." for k in range(4)] + ["Student: 2+2=5?", "Student: is 9 prime?", "Student: hi"]
    responses = ["What do you get when you add the tens?", "Check the ones column again.", "Good start!",
                 "Let's count on our fingers together, one step at a time.", "What is 2+2?", "Try dividing by 3.",
                 "Hello! What shall we work on?"]
    return contexts, responses


@pytest.fixture()
def rm(tiny_encoder):
    return HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=48, max_response_tokens=16).eval()


def test_batch_padding_and_mask_keep_single_pair_scores(rm):
    contexts, responses = pairs()
    # Long pairs fill max_length less a fixed slack; raise max_length so that they fill a multiple of 16 tokens.
    rm.spec.max_length += 3 * SCORING_LENGTH_MULTIPLE - len(rm.encode(contexts[:1], responses[:1])[0]["input_ids"])
    lengths = [len(f["input_ids"]) for f in rm.encode(contexts, responses)]
    assert lengths[0] % SCORING_LENGTH_MULTIPLE == 0 and len(set(lengths[:4])) == 1  # a batch needing no padding
    assert max(lengths[4:]) % SCORING_LENGTH_MULTIPLE and lengths[-1] % SCORING_LENGTH_MULTIPLE
    calls = []
    rm.backbone.register_forward_pre_hook(
        lambda _, args, kwargs: calls.append((kwargs["input_ids"].shape, kwargs["attention_mask"])), with_kwargs=True)
    batched = rm.score(contexts, responses, batch_size=4)
    (unpadded_shape, unpadded_mask), (padded_shape, padded_mask) = calls
    assert unpadded_mask is None and unpadded_shape == (4, lengths[0])
    assert padded_mask is not None and padded_shape[1] % SCORING_LENGTH_MULTIPLE == 0
    assert padded_shape[1] > max(lengths[4:])
    for k in range(len(contexts)):
        single = rm.score(contexts[k:k + 1], responses[k:k + 1], batch_size=1)
        for name in rm.dimensions:
            assert batched[name][k] == pytest.approx(single[name][0], abs=1e-5)
    assert calls[-1][0] == (1, lengths[-1])  # a single pair is not padded


def test_compiled_scores_equal_eager_and_folder_round_trips(rm, tmp_path):
    from torch._dynamo.utils import counters

    contexts, responses = pairs()
    eager = rm.score(contexts, responses, batch_size=4)
    names = list(rm.state_dict())
    graphs = counters["stats"]["unique_graphs"]
    rm.compile_backbone()
    compiled = rm.score(contexts, responses, batch_size=4)
    single = rm.score(contexts[-1:], responses[-1:], batch_size=1)
    assert counters["stats"]["unique_graphs"] > graphs  # Dynamo captured the backbone, it did not run eagerly
    for name in rm.dimensions:
        np.testing.assert_allclose(compiled[name], eager[name], atol=1e-5)
        assert single[name][0] == pytest.approx(eager[name][-1], abs=1e-5)
    assert list(rm.state_dict()) == names  # compiling in place keeps parameter names: the folder format holds
    rm.save_pretrained(tmp_path / "rm")
    again = HPCRewardModel.from_pretrained(tmp_path / "rm").score(contexts, responses, batch_size=4)
    for name in rm.dimensions:
        np.testing.assert_allclose(again[name], eager[name], atol=1e-5)


def test_score_cli_compile_flag(rm, tmp_path):
    from hpc_rm.score import main

    contexts, responses = pairs()
    rm.save_pretrained(tmp_path / "rm")
    items = [LabeledItem(id=f"i{k}", context=c, response=r)
             for k, (c, r) in enumerate(zip(contexts, responses))]
    write_jsonl(tmp_path / "in.jsonl", items)
    main(["--model", str(tmp_path / "rm"), "--input", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"),
          "--compile", "true", "--batch-size", "4"])
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    eager = rm.score(contexts, responses, batch_size=4)
    assert [line["id"] for line in lines] == [item.id for item in items]
    for k, line in enumerate(lines):
        for name in rm.dimensions:
            assert line["pred"][name] == pytest.approx(float(eager[name][k]), abs=1e-4)


def test_compile_without_cpp_compiler_fails_with_a_plain_message(rm, monkeypatch):
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("no-such-compiler-for-this-test",))
    with pytest.raises(RuntimeError, match="needs a C[+][+] compiler"):
        rm.compile_backbone()
    assert rm.backbone._compiled_call_impl is None  # nothing was half set up
