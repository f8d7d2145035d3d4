"""The eval's rule checks give the share of responses that ended on their own (EOS before the token cap), the
figure issue #33 asks the demo to keep at 0.80 or more, with an exact interval, beside the share cut at the cap."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from policy.evaluation.response_checks import rule_checks
from policy.evaluation.verdict import rule_check_markdown

EOS = 2


def response(ids: list[int]) -> SimpleNamespace:
    return SimpleNamespace(text=" ".join(map(str, ids)), completion_ids=ids)


def test_ended_on_own_counts_eos_before_the_cap_and_not_the_cut_ones():
    outs = [response([5, 6, EOS]), response([5, 6, 7, 8]), response([5, EOS]), response([9, 9, 9, EOS])]
    rows = [{"final_answer": "12", "student_known": []}] * 4
    checks = rule_checks(outs, rows, 1, max_new_tokens=4, eos_id=EOS)
    assert checks["ended_on_own"]["k"] == 3 and checks["ended_on_own"]["mean"] == pytest.approx(0.75)
    assert checks["truncated"]["k"] == 1  # the cut response, and only it; EOS exactly at the cap still ended
    assert 0 < checks["ended_on_own"]["low"] < 0.75 < checks["ended_on_own"]["high"] < 1
    text = "\n".join(rule_check_markdown({"base": checks, "tuned": checks}))
    assert "| ended on its own before the cap" in text and "0.750 [" in text
