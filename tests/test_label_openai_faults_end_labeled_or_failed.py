"""Against a server that injects 429s, 500s, time-outs, garbled bodies and malformed JSON, every (item, sample)
ends labeled or recorded as failed, retries and re-asks are counted, and the aggregates are well formed."""
from __future__ import annotations

import json

import yaml

from annotation.label import main as label_main
from core.rubric import load_rubric, majority
from core.schema import LabeledItem, read_jsonl, write_jsonl
from tests.fake_openai_server import FakeOpenAI


def write_items(path, n: int, poison: int | None = None) -> list[LabeledItem]:
    items = [
        LabeledItem(id=f"item-{i}", context=f"## Problem\nWhat is {i} + {i}?",
                    response=("POISON " if i == poison else "") + f"Response number {i}: what do you get if you count?",
                    meta={"prompt_id": f"p{i}"})
        for i in range(n)
    ]
    write_jsonl(path, items)
    return items


def write_judge(path, server: FakeOpenAI, **overrides) -> str:
    config = dict(backend="openai", name="fake", base_url=server.base_url, model="fake-judge", timeout_s=0.5,
                  max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05, concurrency=4, max_reasks=1)
    path.write_text(yaml.safe_dump({**config, **overrides}))
    return str(path)


def test_faults_end_labeled_or_failed(tmp_path):
    items = write_items(tmp_path / "items.jsonl", 10, poison=7)
    faults = {0: "429", 1: "500", 2: "slow", 3: "malformed", 4: "garbage", 6: "429", 11: "500", 12: "malformed"}
    with FakeOpenAI(faults=faults, slow_s=1.5, always_malformed="POISON") as server:
        judge = write_judge(tmp_path / "judge.yaml", server, concurrency=1)  # one at a time: the schedule is exact
        label_main(["--items", str(tmp_path / "items.jsonl"), "--out", str(tmp_path / "out"), "--judges", judge,
                    "--samples", "2"])
    raw = [json.loads(line) for line in (tmp_path / "out" / "raw.jsonl").read_text().splitlines()]
    keys = [(r["item_id"], r["sample"]) for r in raw]
    assert sorted(keys) == sorted((item.id, s) for item in items for s in range(2))  # each once, none lost
    failed = {(r["item_id"], r["sample"]) for r in raw if r["status"] == "failed"}
    assert failed == {("item-7", 0), ("item-7", 1)}
    assert all("malformed answer" in r["error"] for r in raw if r["status"] == "failed")
    assert server.calls_containing("POISON") == 4  # asked, re-asked once, per sample; then recorded failed

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    stats = summary["judges"]["fake"]
    assert stats["ok"] == 18 and stats["failed"] == 2
    assert stats["retries"] == 6  # 429, 500, slow, garbage, 429, 500 (malformed JSON is a re-ask, not a retry)
    assert stats["reasks"] == 2 + 2  # two scheduled malformed answers, two for the poisoned item
    assert stats["calls"] == len(server.requests)
    assert stats["tokens"] > 0 and summary["unlabeled_item_judge_pairs"] == 1

    labels = read_jsonl(tmp_path / "out" / "labels.jsonl", LabeledItem)
    assert sorted(label.id for label in labels) == sorted(item.id for item in items if item.id != "item-7")
    rubric = load_rubric("hpc")
    for label in labels:
        rubric.check_scores(label.scores)
        assert label.annotator == "llm:fake" and set(label.scores) == set(rubric.names)
        assert label.meta["rubric_hash"] == rubric.hash and label.meta["prompt_id"]
        per_sample = label.meta["samples"]
        assert set(per_sample) == {"0", "1"}
        for name in rubric.names:
            assert label.scores[name] == majority([s[name] for s in per_sample.values()])


def test_majority_ties_go_to_rounded_mean():
    assert majority([2, 2, 1]) == 2
    assert majority([0, 2]) == 1
    assert majority([1, 2]) == 2  # 1.5 rounds half up
    assert majority([0, 1]) == 1
    assert majority([0, 0, 2, 2, 1]) == 1


def test_two_judges_give_an_ensemble(tmp_path):
    items = write_items(tmp_path / "items.jsonl", 3)
    with FakeOpenAI() as server:
        a = write_judge(tmp_path / "a.yaml", server, name="judge-a")
        b = write_judge(tmp_path / "b.yaml", server, name="judge-b", model="other")
        label_main(["--items", str(tmp_path / "items.jsonl"), "--out", str(tmp_path / "out"),
                    "--judges", f"{a},{b}"])
    labels = read_jsonl(tmp_path / "out" / "labels.jsonl", LabeledItem)
    assert sorted(label.annotator for label in labels) == sorted(["llm:judge-a", "llm:judge-b", "llm:ensemble"] * 3)
    for label in labels:
        if label.annotator == "llm:ensemble":
            assert set(label.meta["judges"]) == {"judge-a", "judge-b"}
    assert len(items) == 3


def test_failed_keys_are_kept_until_retry_failed_is_asked(tmp_path):
    write_items(tmp_path / "items.jsonl", 4, poison=2)
    out = tmp_path / "out"
    argv = ["--items", str(tmp_path / "items.jsonl"), "--out", str(out)]
    with FakeOpenAI(always_malformed="POISON") as server:
        label_main([*argv, "--judges", write_judge(tmp_path / "judge.yaml", server, max_reasks=0)])
    with FakeOpenAI() as healthy:
        judge = write_judge(tmp_path / "judge.yaml", healthy)
        label_main([*argv, "--judges", judge])
        assert healthy.requests == []  # a failed key counts as finished
        label_main([*argv, "--judges", judge, "--retry-failed", "true"])
        assert len(healthy.requests) == 1 and healthy.calls_containing("POISON") == 1
    labels = read_jsonl(out / "labels.jsonl", LabeledItem)
    assert sorted(label.id for label in labels) == ["item-0", "item-1", "item-2", "item-3"]
    assert next(label for label in labels if label.id == "item-2").meta["n_failed"] == 0  # the rerun superseded it
