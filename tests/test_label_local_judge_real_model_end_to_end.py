"""End to end with the real SmolLM2-135M-Instruct (offline, from its PyPI wheel): `annotation label` on three
MRBench-style items with two samples writes raw labels with level probabilities, majority labels and a summary."""
from __future__ import annotations

import json

from annotation.label import main as label_main
from core.rubric import load_rubric
from core.schema import LabeledItem, read_jsonl, write_jsonl

CONTEXT = ("## Dialogue so far\nTutor: What is 20 divided by 4?\nStudent: 20 divided by 4 is 6, so Tyson needs 6 "
           "sandwiches.")
RESPONSES = [
    "Not quite: check 20 divided by 4 again. How many groups of 4 fit into 20?",
    "Great job, that is correct!",
    "The answer is 5 sandwiches, so he spends $50.",
]


def test_real_smollm2_labels_three_items(tmp_path):
    items = [LabeledItem(id=f"r{i}", context=CONTEXT, response=text) for i, text in enumerate(RESPONSES)]
    write_jsonl(tmp_path / "items.jsonl", items)
    label_main(["--items", str(tmp_path / "items.jsonl"), "--out", str(tmp_path / "out"), "--rubric", "mrbench",
                "--judges", "local", "--samples", "2"])
    rubric = load_rubric("mrbench")
    raw = [json.loads(line) for line in (tmp_path / "out" / "raw.jsonl").read_text().splitlines()]
    assert len(raw) == 6 and all(r["status"] == "ok" for r in raw)
    for r in raw:
        for name in rubric.names:
            probs = r["probs"][name]
            assert abs(sum(probs) - 1) < 1e-3
            assert r["scores"][name] == max(range(3), key=probs.__getitem__)
            assert max(probs) > 0.34  # a real model is not uniform over the level tokens
    labels = read_jsonl(tmp_path / "out" / "labels.jsonl", LabeledItem)
    assert [label.id for label in labels] == ["r0", "r1", "r2"]
    assert all(label.annotator == "llm:local" and set(label.meta["expected"]) == set(rubric.names) for label in labels)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["judges"]["local"]["ok"] == 6 and summary["judges"]["local"]["tokens"] > 0
