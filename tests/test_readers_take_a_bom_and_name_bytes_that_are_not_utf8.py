"""Files from other tools (issue #32 points 1-3): every reader takes the UTF-8 BOM that Windows tools and
spreadsheet exports write; bytes that are not UTF-8 (a Latin-1 export) are one DataError naming the file, the line
and the byte offset; a JSON array where JSONL is expected says so and how to convert it, and so does a `.json`
file of interchange records given where a `.json` is read as the MRBench release. The table in
test_cli_bad_input_one_error_line.py runs the last two through every command."""
from __future__ import annotations

import codecs
import json

import pytest

from core.config import ConfigError, load_yaml
from core.schema import DataError, LabeledItem, read_jsonl

BOM = codecs.BOM_UTF8
LATIN1_E = "\u00e9".encode("latin-1")
LABEL = {"id": "a", "context": "Student: 2+2?", "response": "What is 2+1?", "annotator": "human:x",
         "scores": {"Helpfulness": 2}}


def jsonl(*records) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def test_jsonl_with_a_bom_reads_as_without(tmp_path):
    from core.schema import read_labels_jsonl

    second = {**LABEL, "id": "b", "context": "Élodie: 2+2?"}
    (tmp_path / "plain.jsonl").write_bytes(jsonl(LABEL, second))
    (tmp_path / "bom.jsonl").write_bytes(BOM + jsonl(LABEL, second))
    assert read_jsonl(tmp_path / "bom.jsonl", LabeledItem) == read_jsonl(tmp_path / "plain.jsonl", LabeledItem)
    assert [i.id for i in read_labels_jsonl(tmp_path / "bom.jsonl")] == ["a", "b"]


def test_yaml_csv_json_list_and_label_studio_export_with_a_bom(tmp_path):
    from annotation.human_import import iter_rows
    from annotation.labelstudio import iter_export_annotations
    from core.sources import load_gsm8k

    (tmp_path / "c.yaml").write_bytes(BOM + b"seed: 3\nname: caf\xc3\xa9\n")
    assert load_yaml(tmp_path / "c.yaml") == {"seed": 3, "name": "café"}
    (tmp_path / "r.csv").write_bytes(BOM + b"id,annotator,Helpfulness\na,x,2\n")
    assert [row for _, row in iter_rows(tmp_path / "r.csv", "csv")] == [{"id": "a", "annotator": "x",
                                                                         "Helpfulness": "2"}]
    gsm8k = [{"question": "What is 2+3?", "answer": "2+3=5\n#### 5"}]
    (tmp_path / "g.json").write_bytes(BOM + json.dumps(gsm8k).encode())
    assert [p.final_answer for p in load_gsm8k(tmp_path / "g.json")] == ["5"]
    export = [{"id": 1, "data": {"id": "a"}, "annotations": [{"completed_by": 7, "result": [
        {"type": "choices", "from_name": "Helpfulness", "value": {"choices": ["2"]}}]}]}]
    (tmp_path / "ls.json").write_bytes(BOM + json.dumps(export).encode())
    assert [a[2:] for a in iter_export_annotations(tmp_path / "ls.json")] == [("7", {"Helpfulness": "2"})]


def test_latin1_byte_names_file_line_and_byte_offset(tmp_path):
    path = tmp_path / "labels.jsonl"
    first = jsonl(LABEL)
    second = json.dumps({**LABEL, "id": "b", "context": "caf\u00e9"}, ensure_ascii=False).encode("latin-1")
    path.write_bytes(first + second + b"\n")
    offset = len(first) + second.index(LATIN1_E)
    with pytest.raises(DataError) as err:
        read_jsonl(path, LabeledItem)
    assert str(err.value) == f"{path}:2: not UTF-8 text (byte 0xe9 at byte offset {offset}); save the file as UTF-8"
    path.write_bytes(BOM + first + second + b"\n")  # the BOM's three bytes count in the offset
    with pytest.raises(DataError, match=rf"^{path}:2: not UTF-8 text \(byte 0xe9 at byte offset {offset + 3}\)"):
        read_jsonl(path, LabeledItem)


@pytest.mark.parametrize("reader", ["yaml", "csv", "json_list"])
def test_latin1_byte_in_whole_file_readers_names_its_line(reader, tmp_path):
    from annotation.human_import import iter_rows
    from core.sources import load_gsm8k

    text = {"yaml": b"seed: 3\nname: caf\xe9\n", "csv": b"id,annotator\na,caf\xe9\n",
            "json_list": b'[{"question": "1+1?",\n  "answer": "caf\xe9 #### 2"}]'}[reader]
    path = tmp_path / f"file.{reader}"
    path.write_bytes(text)
    read = {"yaml": load_yaml, "csv": lambda p: list(iter_rows(p, "csv")), "json_list": load_gsm8k}[reader]
    error, offset = ConfigError if reader == "yaml" else DataError, text.index(LATIN1_E)
    with pytest.raises(error, match=rf"^{path}:2: not UTF-8 text \(byte 0xe9 at byte offset {offset}\)"):
        read(path)


def test_json_array_in_a_jsonl_reader_says_what_it_is_and_how_to_convert(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps([LABEL, {**LABEL, "id": "b"}], indent=2))
    with pytest.raises(DataError) as err:
        read_jsonl(path, LabeledItem)
    assert str(err.value) == (f"{path}: a JSON array; this command reads JSONL, one object per line (convert it: "
                              f"jq -c '.[]' {path} > {tmp_path / 'labels.lines.jsonl'})")
    path.write_text(json.dumps([LABEL]))  # on one line, it is still an array, not a record
    with pytest.raises(DataError, match=r": a JSON array; this command reads JSONL"):
        read_jsonl(path, LabeledItem)


def test_interchange_records_in_a_json_file_are_not_taken_for_mrbench(tmp_path):
    """hpc_rm reads a `.json` labels file as the MRBench release; interchange records there used to fail with
    'field conversation_id: Field required'."""
    from core.rubric import load_rubric
    from hpc_rm.data import read_labels

    array = tmp_path / "labels.json"
    array.write_text(json.dumps([LABEL], indent=2))
    with pytest.raises(DataError) as err:
        read_labels(array, load_rubric("hpc"))
    assert str(err.value) == (
        f"{array}:2: a JSON array of interchange records (context, response), not the MRBench release that a .json "
        f"file is read as; this command reads JSONL, one object per line (convert it: jq -c '.[]' {array} > "
        f"{tmp_path / 'labels.jsonl'})")
    lines = tmp_path / "lines.json"
    lines.write_bytes(jsonl(LABEL))
    with pytest.raises(DataError, match=rf"^{lines}:1: an interchange record .*; name the file {lines}l$"):
        read_labels(lines, load_rubric("hpc"))
