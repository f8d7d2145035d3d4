"""`serve` refuses, with file, line and field, task files it cannot use, and a database made for another rubric
or holding different text under the same item id."""
import json

import pytest

from annotation import serve
from browser_support import write_tasks


def run_serve(tmp_path, tasks, *extra):
    with pytest.raises(SystemExit) as exit_info:
        serve.main(["--tasks", str(tasks), "--db", str(tmp_path / "labels.sqlite"), *extra])
    return str(exit_info.value)


def test_labeled_or_duplicate_tasks_name_the_line(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    row = {"id": "a", "context": "c", "response": "r"}
    tasks.write_text(json.dumps(row) + "\n" + json.dumps(dict(row, id="b", scores={"Helpfulness": 1})) + "\n")
    assert "tasks.jsonl:2: field scores: tasks must be unlabeled" in run_serve(tmp_path, tasks)
    tasks.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    assert "tasks.jsonl:2: field id: 'a' already used on line 1" in run_serve(tmp_path, tasks)
    tasks.write_text(json.dumps({"id": "a", "context": "c"}) + "\n")
    assert "tasks.jsonl:1: field response: Field required" in run_serve(tmp_path, tasks)


def test_changed_rubric_or_item_text_is_refused(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    write_tasks(tasks, 2)
    store, _ = serve.prepare_store(serve.ServeConfig(tasks=tasks, db=tmp_path / "labels.sqlite"))
    assert store.coverage(2)["items"] == 2
    message = run_serve(tmp_path, tasks, "--rubric", "mrbench")
    assert "holds labels for rubric 'hpc'" in message and "Use a new --db" in message

    rows = [json.loads(line) for line in tasks.read_text().splitlines()]
    rows[1]["response"] = "a different response"
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert "item 'item-001' (task 2) differs from the stored one" in run_serve(tmp_path, tasks)
    assert store.item("item-001").response != "a different response"
