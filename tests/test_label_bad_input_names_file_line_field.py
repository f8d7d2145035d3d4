"""Bad input stops `label` with one clear line naming the file, the line and the field."""
from __future__ import annotations

import pytest

from annotation.label import main as label_main


def test_label_names_file_line_and_field(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "context": "c", "response": "r"}\n{"id": "b", "context": "c"}\n')
    with pytest.raises(SystemExit, match=r"items.jsonl:2: field response"):
        label_main(["--items", str(items), "--out", str(tmp_path / "out"), "--judges", "openai"])


def test_label_rejects_duplicate_ids_and_unknown_judges(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "context": "c", "response": "r"}\n' * 2)
    with pytest.raises(SystemExit, match=r"field id: 'a' occurs twice"):
        label_main(["--items", str(items), "--out", str(tmp_path / "out"), "--judges", "openai"])
    items.write_text('{"id": "a", "context": "c", "response": "r"}\n')
    with pytest.raises(SystemExit, match=r"judge spec 'nope'"):
        label_main(["--items", str(items), "--out", str(tmp_path / "out"), "--judges", "nope"])
    with pytest.raises(SystemExit, match=r"field concurrency"):
        label_main(["--items", str(items), "--out", str(tmp_path / "out"), "--judges", "openai?concurrency=0"])
