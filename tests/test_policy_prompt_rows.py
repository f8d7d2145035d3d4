"""Prompt rows carry the chat with the student profile, the RM context and the leak judge's columns; prompts over
the token limit are skipped, and a file with none left is an error naming it."""
from __future__ import annotations

import pytest

from core.models import load_tokenizer
from core.schema import DataError, PromptItem, StudentProfile, Turn, write_jsonl
from policy.prompts import load_prompt_rows


def test_rows_columns_and_long_prompt_skip(tmp_path):
    profile = StudentProfile(grade="4th grade", interests=["chess"])
    items = [
        PromptItem(id="a", source="gsm8k", problem_id="a", kind="single_turn", profile=profile,
                   problem="Tom has 3 cats and 2 dogs. How many pets?", reference_solution="3 + 2 = 5\n#### 5"),
        PromptItem(id="b", source="mathdial", problem_id="b", kind="multi_turn", profile=profile,
                   problem="A farm has 1,250 hens.", turns=[Turn(role="student", text="I think 40?")],
                   reference_solution="It is 1,200 + 50 = 1,250.", meta={"final_answer": "1250"}),
        PromptItem(id="c", source="gsm8k", problem_id="c", kind="single_turn", problem="word " * 400,
                   reference_solution="no number here"),
    ]
    path = tmp_path / "rl.jsonl"
    write_jsonl(path, items)
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    rows = load_prompt_rows(path, "Be a tutor.", tokenizer=tokenizer, max_prompt_tokens=200)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["final_answer"] == "5" and rows[1]["final_answer"] == "1250"
    assert "chess" in rows[0]["prompt"][0]["content"] and rows[0]["prompt"][-1]["role"] == "user"
    assert rows[0]["context"] == items[0].context
    assert "I think 40?" in rows[1]["student_known"] and "1,250 hens" in rows[1]["student_known"]
    assert len(load_prompt_rows(path, "Be a tutor.")) == 3
    with pytest.raises(DataError, match=str(path)):
        load_prompt_rows(path, "Be a tutor.", tokenizer=tokenizer, max_prompt_tokens=5)
