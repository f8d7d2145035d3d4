"""The loaders read the shipped datasets completely: counts match each SOURCE.md, fields are parsed."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from core.sources import (
    load_gsm8k, load_mathdial, load_mathtutorbench, load_mrbench, load_mrbench_problems, load_mrbench_unlabeled,
)

DATA = Path(__file__).resolve().parent.parent / "data"
MRBENCH = DATA / "mrbench_v3_dev" / "mrbench_v3_devset.json"


@pytest.mark.parametrize("name, count", [("train", 7473), ("test", 1319)])
def test_gsm8k_counts_and_final_answers(name, count):
    problems = load_gsm8k(DATA / "gsm8k" / f"{name}.jsonl")
    assert len(problems) == count
    assert len({p.id for p in problems}) == count
    assert problems[0].id == f"gsm8k:{name}:0"
    assert all("####" not in p.solution and p.final_answer for p in problems)
    if name == "train":
        assert problems[0].final_answer == "72"  # Natalia's clips
        assert problems[0].plain_solution.startswith("Natalia sold 48/2 = 24 clips in May.\n")


def test_mathdial_dialogues_profiles_and_turns():
    dialogues = load_mathdial(DATA / "mathdial" / "test.jsonl")
    assert len(dialogues) == 599
    assert len({d.id for d in dialogues}) == 599
    assert len({d.qid for d in dialogues}) == 394
    first = dialogues[0]
    assert first.profile.grade == "7th grade"
    assert first.profile.misconception == "subtracting instead of adding"
    assert first.profile.personality.startswith("Mariana is a 7th grade student")
    assert first.turns[0].role == "tutor" and first.turns[0].text == "Hi Mariana, please talk me through your solution"
    assert first.moves[:3] == ["generic", None, "focus"]
    texts = [t.text for d in dialogues for t in d.turns]
    assert not any(t.startswith(("Teacher:", "Student:", "(focus)", "(probing)")) for t in texts)
    assert all(texts)
    # 3,095 "Student:" turns + 234 spoken under the student's name ("Mariana: ..."); 3,699 teacher turns
    # minus 13 that carry only a move and no text
    assert Counter(t.role for d in dialogues for t in d.turns) == {"student": 3329, "tutor": 3686}


@pytest.mark.parametrize("name, count", [("mathdial_bridge", 1002), ("mathdial_bridge_hard", 265)])
def test_mathtutorbench_gold_turn_is_the_reference(name, count):
    path = DATA / "mathtutorbench" / f"{name}.mathdial_only.json"
    items = load_mathtutorbench(path)
    raw = json.loads(path.read_text())
    assert len(items) == count
    for item, record in zip(items, raw):
        assert item.reference_responses == [record["dialog_history"][-1]["text"].strip()]
        assert len(item.turns) == len(record["dialog_history"]) - 1
        assert item.kind == "multi_turn" and item.problem == record["problem"]


def test_mrbench_items_scores_follow_the_labels():
    items = load_mrbench(MRBENCH, "mrbench")
    raw = json.loads(MRBENCH.read_text())
    assert len(items) == 2476
    assert len({it.meta["group"] for it in items}) == 300
    assert len({it.id for it in items}) == 2476
    labels = Counter(v for r in raw for t in r["tutor_responses"].values() for v in t["annotation"].values())
    scores = Counter(v for it in items for v in it.scores.values())
    assert scores == {2: labels["Yes"], 1: labels["To some extent"], 0: labels["No"]}
    first = items[0]
    conv = raw[0]["conversation_id"]
    tutor = next(iter(raw[0]["tutor_responses"]))
    assert first.id == f"mrbench:{conv}:{tutor}" and first.annotator == "human:mrbench"
    assert {k: first.meta[k] for k in ("group", "tutor", "source")} == {"group": conv, "tutor": tutor, "source": "mrbench"}
    assert first.context.startswith("## Dialogue so far\nTutor: Hi, could you please")
    assert "\nStudent: The cost of 1 pound of meat is $7.00." in first.context


def test_mrbench_unlabeled_has_same_ids_and_no_labels():
    labeled = load_mrbench(MRBENCH)
    unlabeled = load_mrbench_unlabeled(MRBENCH)
    assert [it.id for it in unlabeled] == [it.id for it in labeled]
    assert [it.context for it in unlabeled] == [it.context for it in labeled]
    assert all(it.scores is None and it.annotator is None for it in unlabeled)


def test_mrbench_problems_all_found_in_gsm8k():
    problems = load_mrbench_problems(MRBENCH)
    gsm8k = {p.problem_id for name in ("train", "test") for p in load_gsm8k(DATA / "gsm8k" / f"{name}.jsonl")}
    assert sum(map(len, problems.values())) == 224  # MathDial-derived contexts quote their problem
    assert len(problems) == 156
    assert set(problems) <= gsm8k  # including those where MRBench renamed "teachers" to "Tutors"
