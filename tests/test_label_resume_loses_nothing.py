"""A label run that dies mid-way and is started again: no label lost or duplicated, and no finished
(item, sample) is sent to the judge a second time."""
from __future__ import annotations

import json
import time

import pytest

from core.judges.local_judge import LocalJudge
from annotation.label import main as label_main
from core.schema import AppendLog, LabeledItem, read_jsonl
from tests.fake_openai_server import FakeOpenAI
from tests.test_label_openai_faults_end_labeled_or_failed import write_items, write_judge


class InjectedCrash(RuntimeError):
    pass


def crash_after(monkeypatch, appends: int) -> None:
    """Make AppendLog.append die after `appends` records, as a kill would."""
    original, count = AppendLog.append, {"n": 0}

    def append(self, record):
        if count["n"] == appends:
            raise InjectedCrash(f"killed after {appends} labels")
        original(self, record)
        count["n"] += 1

    monkeypatch.setattr(AppendLog, "append", append)


def settled_request_count(server, quiet_s: float = 0.3) -> int:
    """The server's request count once no request has arrived for quiet_s: calls the crashed run had already sent
    can still land just after the crash, and must not be counted as the second run's."""
    count = -1
    while count != len(server.requests):
        count = len(server.requests)
        time.sleep(quiet_s)
    return count


def raw_keys(out) -> list[tuple[str, int]]:
    lines = (out / "raw.jsonl").read_text().splitlines()
    return [(r["item_id"], r["sample"]) for r in map(json.loads, lines)]


def test_openai_judge_resume_repeats_no_finished_call(tmp_path, monkeypatch):
    items = write_items(tmp_path / "items.jsonl", 12)
    out = tmp_path / "out"
    with FakeOpenAI(latency_s=0.02) as server:
        argv = ["--items", str(tmp_path / "items.jsonl"), "--out", str(out), "--samples", "2",
                "--judges", write_judge(tmp_path / "judge.yaml", server)]
        crash_after(monkeypatch, 9)
        with pytest.raises(InjectedCrash):
            label_main(argv)
        monkeypatch.undo()
        first = raw_keys(out)
        assert len(first) == 9 and not (out / "labels.jsonl").exists()
        first_run_requests = settled_request_count(server)
        label_main(argv)
        second_run = server.requests[first_run_requests:]

    for item_id, sample in first:  # finished keys are never asked again
        response = next(item.response for item in items if item.id == item_id)
        assert not any(r["body"]["seed"] == sample and response in r["body"]["messages"][1]["content"]
                       for r in second_run), (item_id, sample)
    assert len(second_run) == 24 - 9
    keys = raw_keys(out)
    assert sorted(keys) == sorted((item.id, s) for item in items for s in range(2))  # none lost, none twice
    labels = read_jsonl(out / "labels.jsonl", LabeledItem)
    assert sorted(label.id for label in labels) == sorted(item.id for item in items)
    assert all(len(label.meta["samples"]) == 2 for label in labels)


def test_local_judge_resume_runs_only_the_rest(tmp_path, monkeypatch, tiny_causal_lm):
    items = write_items(tmp_path / "items.jsonl", 5)
    out = tmp_path / "out"
    argv = ["--items", str(tmp_path / "items.jsonl"), "--out", str(out), "--samples", "2",
            "--judges", f"local?model={tiny_causal_lm}&dtype=float32&batch_size=2"]
    judged = []
    original_label = LocalJudge.label

    def counting_label(self, jobs, rubric, record):
        judged.extend((job.item.id, job.sample) for job in jobs)
        return original_label(self, jobs, rubric, record)

    crash_after(monkeypatch, 5)  # dies inside the second batch, after one of its labels
    with pytest.raises(InjectedCrash):
        label_main(argv)
    monkeypatch.undo()
    first = raw_keys(out)
    assert len(first) == 5
    monkeypatch.setattr(LocalJudge, "label", counting_label)
    label_main(argv)
    assert sorted(judged) == sorted(set((item.id, s) for item in items for s in range(2)) - set(first))
    assert sorted(raw_keys(out)) == sorted((item.id, s) for item in items for s in range(2))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judges"]["local"]["skipped_done"] == 5 and summary["judges"]["local"]["labels_run"] == 5
    # a third run has nothing left to do and rewrites the same labels
    before = (out / "labels.jsonl").read_text()
    judged.clear()
    label_main(argv)
    assert judged == [] and (out / "labels.jsonl").read_text() == before
