"""Bad records fail with a DataError naming the file, the line where the record starts and the field."""
from __future__ import annotations

import json

import pytest

from core.schema import DataError
from core.sources import load_gsm8k, load_mathdial, load_mathtutorbench, load_mrbench, load_mrbench_unlabeled

GOOD_GSM8K = {"question": "Ann has 2 apples and buys 3. How many now?", "answer": "2+3=5\n#### 5"}


def write_lines(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def test_gsm8k_answer_without_final_line(tmp_path):
    path = write_lines(tmp_path / "g.jsonl", [GOOD_GSM8K, GOOD_GSM8K, {"question": "Q?", "answer": "no final line"}])
    with pytest.raises(DataError, match=rf"^{path}:3: field answer: no final '#### <number>' line"):
        load_gsm8k(path)


def test_gsm8k_missing_field_and_bad_json(tmp_path):
    path = write_lines(tmp_path / "g.jsonl", [GOOD_GSM8K, {"answer": "#### 1"}])
    with pytest.raises(DataError, match=rf"^{path}:2: field question: Field required"):
        load_gsm8k(path)
    path = write_lines(tmp_path / "h.jsonl", [GOOD_GSM8K, GOOD_GSM8K, GOOD_GSM8K, '{"question": '])
    with pytest.raises(DataError, match=rf"^{path}:4: not valid JSON"):
        load_gsm8k(path)


def mathdial_record(conversation):
    return {"qid": 1, "scenario": 2, "question": "Q?", "ground_truth": "4", "student_incorrect_solution": "3",
            "student_profile": "Riya is a 5th grade student. She rushes.", "teacher_described_confusion": "adds",
            "conversation": conversation}


def test_mathdial_unknown_speaker(tmp_path):
    good = mathdial_record("Teacher: (probing)Why 3?|EOM|Riya: I added.|EOM|Teacher: (telling)|EOM|Student: Oh.")
    bad = mathdial_record("Teacher: (focus)Check it|EOM|Narrator: Meanwhile")
    path = write_lines(tmp_path / "m.jsonl", [good, bad])
    with pytest.raises(DataError, match=rf"^{path}:2: field conversation: turn 2 starts with 'Narrator'"):
        load_mathdial(path)
    (dialogue,) = load_mathdial(write_lines(tmp_path / "ok.jsonl", [good]))
    assert dialogue.profile.grade == "5th grade"
    assert [(t.role, t.text) for t in dialogue.turns] == [("tutor", "Why 3?"), ("student", "I added."), ("student", "Oh.")]
    assert dialogue.moves == ["probing", None, None]  # the empty '(telling)' turn said nothing and is dropped


def test_mathtutorbench_bad_item_in_json_list(tmp_path):
    good = {"problem": "P", "reference_solution": "S", "topic": "Math Word Problem",
            "dialog_history": [{"text": "Hi", "user": "Teacher"}, {"text": "3", "user": "Student"},
                               {"text": "Why?", "user": "Teacher"}]}
    ends_with_student = {**good, "dialog_history": good["dialog_history"][:2]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps([good, ends_with_student], indent=1))
    line = path.read_text().splitlines().index(" {", 2) + 1  # where the second record starts
    with pytest.raises(DataError, match=rf"^{path}:{line}: field dialog_history: the last turn must be"):
        load_mathtutorbench(path)
    wrong_user = {**good, "dialog_history": [{"text": "x", "user": "Parent"}, *good["dialog_history"]]}
    path.write_text(json.dumps([wrong_user]))
    with pytest.raises(DataError, match=rf"^{path}:1: field dialog_history.0.user: 'Parent'"):
        load_mathtutorbench(path)


def mrbench_file(tmp_path, annotation):
    record = {"conversation_id": "c-1", "conversation_history": "Tutor: Solve 2+2.\n Student: 5",
              "tutor_responses": {"GPT4": {"response": "Check your sum.", "annotation": annotation}}}
    path = tmp_path / "mr.json"
    path.write_text(json.dumps([record, record | {"conversation_id": "c-2"}], indent=1))
    return path


def test_mrbench_unknown_label_names_conversation_and_field(tmp_path):
    path = mrbench_file(tmp_path, {"Mistake_Identification": "Maybe"})
    with pytest.raises(DataError, match=rf"^{path}:2: conversation c-1, tutor GPT4: field annotation.Mistake_Identification: .*'Maybe' is not a level"):
        load_mrbench(path)
    path = mrbench_file(tmp_path, {"Tone": "Yes"})
    with pytest.raises(DataError, match=r"conversation c-1, tutor GPT4: field annotation.Tone: not a dimension"):
        load_mrbench(path)


def test_mrbench_absent_dimension_is_a_missing_label(tmp_path):
    path = mrbench_file(tmp_path, {"Mistake_Identification": "To some extent", "Actionability": "No"})
    items = load_mrbench(path)
    assert [it.id for it in items] == ["mrbench:c-1:GPT4", "mrbench:c-2:GPT4"]
    assert items[0].scores == {"Mistake_Identification": 1, "Actionability": 0}
    assert items[0].context == "## Dialogue so far\nTutor: Solve 2+2.\nStudent: 5"
    assert load_mrbench_unlabeled(path)[0].scores is None


def test_mrbench_history_must_start_with_a_speaker(tmp_path):
    path = tmp_path / "mr.json"
    path.write_text(json.dumps([{"conversation_id": "c", "conversation_history": "hello\nTutor: hi",
                                 "tutor_responses": {}}]))
    with pytest.raises(DataError, match=rf"^{path}:1: field conversation_history: does not start with"):
        load_mrbench(path)
