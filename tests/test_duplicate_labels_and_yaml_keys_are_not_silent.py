"""Silent duplicates (issue #32 point 5). In a labels file an id names one (context, response): the same id and
annotator with another response is an error naming both lines, other scores too, and a repeated line is a warning
and read once. A YAML key written twice in one mapping is an error naming the key and both lines (PyYAML keeps the
last value without a word); a merge (`<<: *base`) may still override what it brings in."""
from __future__ import annotations

import json

import pytest

from core.config import ConfigError, load_yaml
from core.schema import DataError, read_labels_jsonl

LABEL = {"id": "a", "context": "Student: 2+2?", "response": "What is 2+1?", "annotator": "human:x",
         "scores": {"Helpfulness": 2}}


def write(path, *records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_same_id_and_annotator_with_another_response_names_both_lines(tmp_path):
    path = write(tmp_path / "l.jsonl", LABEL, {**LABEL, "id": "b"}, {**LABEL, "response": "4."})
    with pytest.raises(DataError) as err:
        read_labels_jsonl(path)
    assert str(err.value) == (f"{path}:3: field response: item 'a' has another response than on line 1; an id must "
                              "name one (context, response)")


def test_same_id_with_another_context_is_an_error_whoever_labeled_it(tmp_path):
    path = write(tmp_path / "l.jsonl", LABEL, {**LABEL, "annotator": "llm:judge", "context": "Student: 3+3?"})
    with pytest.raises(DataError, match=rf"^{path}:2: field context: item 'a' has another context than on line 1"):
        read_labels_jsonl(path)


def test_same_label_twice_with_other_scores_names_both_lines(tmp_path):
    path = write(tmp_path / "l.jsonl", LABEL, {**LABEL, "scores": {"Helpfulness": 0}})
    with pytest.raises(DataError, match=rf"^{path}:2: field scores: human:x labeled item 'a' .* on line 1$"):
        read_labels_jsonl(path)


def test_a_repeated_line_is_a_warning_and_read_once(tmp_path, capsys):
    other_judge = {**LABEL, "annotator": "llm:judge"}
    path = write(tmp_path / "l.jsonl", LABEL, other_judge, LABEL)
    items = read_labels_jsonl(path)
    assert [(i.id, i.annotator) for i in items] == [("a", "human:x"), ("a", "llm:judge")]
    assert capsys.readouterr().err == (f"warning: {path}:3: repeats line 1 (item 'a', annotator human:x); "
                                       "read once\n")


def test_yaml_key_twice_names_the_key_and_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\n  seed: 1\n  epochs: 1\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert str(err.value) == f"{path}:4: invalid YAML: key 'epochs' appears twice (lines 2 and 4); keep one"


def test_the_same_key_in_two_mappings_and_a_merge_override_are_fine(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: &b\n  seed: 1\n  epochs: 2\nrun:\n  <<: *b\n  seed: 5\n")
    assert load_yaml(path) == {"base": {"seed": 1, "epochs": 2}, "run": {"seed": 5, "epochs": 2}}
