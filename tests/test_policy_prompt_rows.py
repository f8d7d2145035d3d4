"""Prompt rows carry the chat with the student profile, the RM context and the leak judge's columns; a dialogue
over the token limit loses its oldest turns (never the prompt), and the cut is logged; only a prompt that cannot
fit with its last turn alone is an error naming the file, line and id."""
from __future__ import annotations

import pytest

from core.models import load_tokenizer
from core.schema import DataError, PromptItem, StudentProfile, Turn, write_jsonl
from policy.prompts import load_prompt_rows, prompt_tokens

PROFILE = StudentProfile(grade="4th grade", interests=["chess"])


def long_dialogue(n_pairs: int) -> PromptItem:
    turns = []
    for i in range(n_pairs):
        turns += [Turn(role="student", text=f"Step {i}: I added the numbers again and got {40 + i}, is that it?"),
                  Turn(role="tutor", text=f"Let us look at step {i} together. What does each number stand for?")]
    turns.append(Turn(role="student", text="So the last thing is to multiply by 3?"))
    return PromptItem(id="long", source="mathdial", problem_id="long", kind="multi_turn", profile=PROFILE,
                      problem="A farm has 1,250 hens and sells 3 eggs each.", turns=turns,
                      reference_solution="1,250 x 3 = 3,750", meta={"final_answer": "3750"})


def test_rows_carry_the_chat_and_the_reward_columns(tmp_path):
    items = [
        PromptItem(id="a", source="gsm8k", problem_id="a", kind="single_turn", profile=PROFILE,
                   problem="Tom has 3 cats and 2 dogs. How many pets?", reference_solution="3 + 2 = 5\n#### 5"),
        PromptItem(id="b", source="mathdial", problem_id="b", kind="multi_turn", profile=PROFILE,
                   problem="A farm has 1,250 hens.", turns=[Turn(role="student", text="I think 40?")],
                   reference_solution="It is 1,200 + 50 = 1,250.", meta={"final_answer": "1250"}),
    ]
    path = tmp_path / "rl.jsonl"
    write_jsonl(path, items)
    rows = load_prompt_rows(path, "Be a tutor.", tokenizer=load_tokenizer("smollm2-135m-instruct"),
                            max_prompt_tokens=200)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["final_answer"] == "5" and rows[1]["final_answer"] == "1250"
    assert "chess" in rows[0]["prompt"][0]["content"] and rows[0]["prompt"][-1]["role"] == "user"
    assert rows[0]["context"] == items[0].context
    assert "I think 40?" in rows[1]["student_known"] and "1,250 hens" in rows[1]["student_known"]


def test_long_dialogue_is_cut_from_the_left_keeping_problem_profile_and_last_turns(tmp_path, capsys):
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    item = long_dialogue(12)
    short = PromptItem(id="short", source="gsm8k", problem_id="short", kind="single_turn", problem="2 + 2?")
    path = tmp_path / "rl.jsonl"
    write_jsonl(path, [short, item])
    full = prompt_tokens(tokenizer, item.chat_messages("Be a tutor."))
    limit = 200
    assert full > 2 * limit  # the test needs a dialogue that must lose many turns
    rows = load_prompt_rows(path, "Be a tutor.", tokenizer=tokenizer, max_prompt_tokens=limit)
    assert [r["id"] for r in rows] == ["short", "long"]
    chat = rows[1]["prompt"]
    assert limit - 40 < prompt_tokens(tokenizer, chat) <= limit  # cut as little as needed, in whole turns
    text = "\n".join(m["content"] for m in chat)
    assert "1,250 hens" in chat[0]["content"] and "chess" in chat[0]["content"]
    assert chat[-1]["content"] == "So the last thing is to multiply by 3?" and "Step 11:" in text
    assert "Step 0:" not in text  # the oldest turns went first
    assert "Step 0:" not in rows[1]["context"] and "multiply by 3" in rows[1]["context"]
    assert "Step 0:" in rows[1]["student_known"]  # what the student said earlier is still no leak
    log = capsys.readouterr().out
    assert f"cut 1 of 2 prompts to {limit} tokens" in log
    assert len(load_prompt_rows(path, "Be a tutor.")[1]["prompt"]) == len(item.turns) + 1  # no limit: no cut


def test_prompt_that_cannot_fit_names_file_line_and_id(tmp_path):
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    path = tmp_path / "rl.jsonl"
    huge = PromptItem(id="huge", source="gsm8k", problem_id="c", kind="single_turn", problem="word " * 400)
    path.write_text(long_dialogue(3).model_dump_json() + "\n\n" + huge.model_dump_json() + "\n")
    with pytest.raises(DataError, match=rf"{path}:3: id huge: longer than max_prompt_tokens 200"):
        load_prompt_rows(path, "Be a tutor.", tokenizer=tokenizer, max_prompt_tokens=200)
