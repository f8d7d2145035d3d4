"""`annotation generate` with the local backend: one response per (prompt, generator, style, sample) with the
documented ids and meta, real teacher turns as `human:teacher`, left-padded batches that match unbatched
generation, and a resumed run that makes only what is missing."""
from __future__ import annotations

import json

import pytest

import annotation.generate as generate
from annotation.generate import main as generate_main
from core.schema import AppendLog, LabeledItem, PromptItem, StudentProfile, Turn, read_jsonl, write_jsonl


def write_prompts(path) -> list[PromptItem]:
    prompts = [
        PromptItem(id="p1", source="gsm8k", problem_id="g1", split="rm", kind="single_turn",
                   profile=StudentProfile(grade="5th grade", interests=["football"]),
                   problem="A team scores 3 goals per game. How many in 4 games?"),
        PromptItem(id="p2", source="mathdial", problem_id="g2", split="rl", kind="multi_turn",
                   problem="What is half of 18?",
                   turns=[Turn(role="tutor", text="What did you get?"), Turn(role="student", text="I got 8.")],
                   reference_responses=["How did you get 8? Try splitting 18 into two equal groups.", "Check again."]),
    ]
    write_jsonl(path, prompts)
    return prompts


def argv(tmp_path, model, *extra) -> list[str]:
    return ["--prompts", str(tmp_path / "prompts.jsonl"), "--out", str(tmp_path / "out.jsonl"),
            "--generators", f"local:{model},human:teacher", "--styles", "socratic_hint,direct_answer",
            "--samples-per-style", "2", "--max-new-tokens", "6", "--batch-size", "3", *extra]


def test_ids_meta_and_human_turns(tmp_path, tiny_causal_lm):
    write_prompts(tmp_path / "prompts.jsonl")
    generate_main(argv(tmp_path, tiny_causal_lm))
    items = read_jsonl(tmp_path / "out.jsonl", LabeledItem)
    local = f"local:{tiny_causal_lm}"
    expected = {f"{p}:{local}:{s}:{k}" for p in ("p1", "p2") for s in ("socratic_hint", "direct_answer") for k in (0, 1)}
    expected |= {"p2:human:teacher:reference:0", "p2:human:teacher:reference:1"}
    assert {item.id for item in items} == expected and len(items) == len(expected)
    by_id = {item.id: item for item in items}
    socratic = by_id[f"p1:{local}:socratic_hint:0"]
    assert socratic.meta | {"new_tokens": 0} == {
        "prompt_id": "p1", "problem_id": "g1", "group": "g1", "split": "rm", "source": "gsm8k", "generator": local,
        "style": "socratic_hint", "profile": {"grade": "5th grade", "interests": ["football"]}, "new_tokens": 0}
    assert "Socratic" in socratic.prompt[0].content and "football" in socratic.prompt[0].content
    assert socratic.context.startswith("## Student profile") and socratic.scores is None
    assert 1 <= socratic.meta["new_tokens"] <= 6
    teacher = by_id["p2:human:teacher:reference:0"]
    assert teacher.response.startswith("How did you get 8?") and teacher.meta["style"] == "reference"
    assert not (tmp_path / "out.jsonl.partial").exists()
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["generators"][local]["responses"] == 8 and summary["generators"][local]["tokens_per_s"] > 0


def test_left_padded_batches_match_one_by_one(tmp_path, tiny_causal_lm):
    write_prompts(tmp_path / "prompts.jsonl")
    generate_main(argv(tmp_path, tiny_causal_lm, "--temperature", "0", "--batch-size", "8"))
    batched = {i.id: i.response for i in read_jsonl(tmp_path / "out.jsonl", LabeledItem)}
    (tmp_path / "out.jsonl").unlink()
    generate_main(argv(tmp_path, tiny_causal_lm, "--temperature", "0", "--batch-size", "1"))
    single = {i.id: i.response for i in read_jsonl(tmp_path / "out.jsonl", LabeledItem)}
    assert batched == single


def test_resume_makes_only_the_missing_responses(tmp_path, tiny_causal_lm, monkeypatch):
    write_prompts(tmp_path / "prompts.jsonl")
    original_append, appended = AppendLog.append, []

    def dying_append(self, record):
        if len(appended) == 3:
            raise RuntimeError("killed")
        original_append(self, record)
        appended.append(record.id)

    monkeypatch.setattr(AppendLog, "append", dying_append)
    with pytest.raises(RuntimeError, match="killed"):
        generate_main(argv(tmp_path, tiny_causal_lm))
    monkeypatch.undo()
    assert not (tmp_path / "out.jsonl").exists() and (tmp_path / "out.jsonl.partial").exists()

    asked, original_local = [], generate.generate_local

    def counting_local(model, requests, config, record):
        asked.extend(r.id for r in requests)
        return original_local(model, requests, config, record)

    monkeypatch.setattr(generate, "generate_local", counting_local)
    generate_main(argv(tmp_path, tiny_causal_lm))
    items = read_jsonl(tmp_path / "out.jsonl", LabeledItem)
    assert len(items) == len({i.id for i in items}) == 10
    assert not set(asked) & set(appended) and len(asked) == 8 - 3
