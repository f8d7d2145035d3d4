"""Bad import input fails with a message naming the file, the row (CSV) or line (JSONL) and the field,
and writes nothing."""
import pytest

from annotation.human_import import main

HEADER = "id,context,response,annotator,Helpfulness,Creativity\n"


def _run(tmp_path, text, *flags, name="in.csv"):
    (tmp_path / name).write_text(text)
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as err:
        main(["--input", str(tmp_path / name), "--out", str(out), *flags])
    assert not out.exists()
    return str(err.value)


def test_bad_level_names_row_and_column(tmp_path):
    text = HEADER + "a,c,r,ann,2,1\nb,c,r,ann,lots,1\n"
    message = _run(tmp_path, text)
    assert "in.csv:3: field Helpfulness: Helpfulness: 'lots' is not a level" in message
    message = _run(tmp_path, HEADER + "a,c,r,ann,2,3\n")
    assert "in.csv:2: field Creativity" in message


def test_bad_value_in_a_mapped_column_names_the_column(tmp_path):
    text = "id,context,response,annotator,h\na,c,r,ann,Maybe\n"
    assert "in.csv:2: field h: Helpfulness: 'Maybe'" in _run(tmp_path, text, "--map", "Helpfulness=h")


def test_unknown_dimension_in_long_layout(tmp_path):
    text = "id,context,response,annotator,dimension,score\na,c,r,ann,Helpfulness,2\na,c,r,ann,Clarity,1\n"
    message = _run(tmp_path, text)
    assert "in.csv:3: field dimension: unknown dimension 'Clarity'" in message


def test_unknown_field_in_the_map(tmp_path):
    message = _run(tmp_path, HEADER + "a,c,r,ann,2,1\n", "--map", "Helpfullness=x")
    assert "unknown field or dimension 'Helpfullness'" in message


def test_mapped_column_that_does_not_exist(tmp_path):
    message = _run(tmp_path, HEADER + "a,c,r,ann,2,1\n", "--map", "annotator=rater")
    assert "in.csv:2: field rater: no such column for annotator" in message
    message = _run(tmp_path, HEADER + "a,c,r,ann,2,1\n", "--map", "Creativity=creative")
    assert "in.csv: field creative: no row has this column (mapped to Creativity)" in message


def test_conflicting_labels_for_the_same_item_and_annotator(tmp_path):
    message = _run(tmp_path, HEADER + "a,c,r,ann,2,1\na,c,r,ann,0,1\n")
    assert "in.csv:3: field Helpfulness: human:ann labeled a Helpfulness=0 here but 2 at" in message
    assert "in.csv:2" in message.split("at", 1)[1]


def test_same_id_with_another_response(tmp_path):
    message = _run(tmp_path, HEADER + "a,c,r,ann,2,1\na,c,r2,bo,2,1\n")
    assert "in.csv:3: field response: item a has another response than at" in message


def test_missing_response_without_items_file(tmp_path):
    message = _run(tmp_path, "id,annotator,Helpfulness\na,ann,2\n")
    assert "in.csv:2: field context: missing for item a" in message


def test_jsonl_bad_line_and_bad_value(tmp_path):
    good = '{"id": "a", "context": "c", "response": "r", "annotator": "x", "Helpfulness": 2}\n'
    assert "in.jsonl:2: not valid JSON" in _run(tmp_path, good + "{oops\n", name="in.jsonl")
    bad = good.replace('"Helpfulness": 2', '"Helpfulness": 7')
    assert "in.jsonl:2: field Helpfulness: Helpfulness: 7 is not a level" in _run(tmp_path, good + bad, name="in.jsonl")
