"""`python -m annotation data`: splits never share a problem, every item has a profile, reruns are identical."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from annotation.prompts import main
from core.schema import PromptItem, read_jsonl

REPO = Path(__file__).resolve().parent.parent
SPLITS = ("rm", "rl", "eval")


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prompts")
    main(["--out", str(out)])
    return out


def load(out: Path) -> dict[str, list[PromptItem]]:
    return {s: read_jsonl(out / f"{s}.jsonl", PromptItem) for s in SPLITS}


def test_default_sizes_and_summary(demo):
    sets = load(demo)
    kinds = {s: [it.kind for it in sets[s]] for s in SPLITS}
    assert (kinds["rm"].count("single_turn"), kinds["rm"].count("multi_turn")) == (140, 60)
    assert (kinds["rl"].count("single_turn"), kinds["rl"].count("multi_turn")) == (48, 16)
    assert (kinds["eval"].count("single_turn"), kinds["eval"].count("multi_turn")) == (32, 16)
    assert all(it.split == s for s in SPLITS for it in sets[s])
    summary = json.loads((demo / "summary.json").read_text())
    assert summary["items"] == {"rm": 200, "rl": 64, "eval": 48}
    assert sum(k.get("multi_turn", 0) for k in summary["counts"]["rm"].values()) == 60
    assert summary["checks"] == {"problems_shared_between_splits": 0, "mrbench_problems_in_rm_rl": 0,
                                 "items_without_profile": 0}
    assert "| rm | gsm8k | 140 | 0 |" in (demo / "summary.md").read_text()


def test_no_problem_text_in_two_splits(demo):
    sets = load(demo)
    texts = {s: {words(it.problem) for it in sets[s]} for s in SPLITS}
    ids = {s: {it.problem_id for it in sets[s]} for s in SPLITS}
    for a, b in [("rm", "rl"), ("rm", "eval"), ("rl", "eval")]:
        assert not texts[a] & texts[b], (a, b)
        assert not ids[a] & ids[b], (a, b)
    assert all(it.meta["group"] == it.problem_id for s in SPLITS for it in sets[s])
    assert len({it.id for s in SPLITS for it in sets[s]}) == 312


def test_every_item_has_a_profile_and_a_shape_per_kind(demo):
    items = [it for its in load(demo).values() for it in its]
    assert all(it.profile is not None and it.profile.grade for it in items)
    for it in items:
        if it.kind == "single_turn":
            assert it.source == "gsm8k" and not it.turns and it.profile.interests and it.profile.misconception
            assert "<<" not in it.reference_solution and it.reference_solution.endswith(f"#### {it.meta['final_answer']}")
        else:
            assert it.source in {"mathdial", "mathtutorbench"} and it.turns and it.reference_responses
        messages = it.chat_messages("You are a tutor.")
        assert "## Student profile" in messages[0]["content"] and messages[-1]["role"] == "user"


def test_gsm8k_test_problems_only_in_eval(demo):
    test_problems = {words(json.loads(line)["question"]) for line in (REPO / "data/gsm8k/test.jsonl").open()}
    sets = load(demo)
    assert not any(words(it.problem) in test_problems for s in ("rm", "rl") for it in sets[s])


def test_rerun_in_another_process_gives_identical_files(demo, tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-m", "annotation", "data", "--out", str(tmp_path)], cwd=REPO, env=env,
                   check=True, capture_output=True)
    for split in SPLITS:
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (demo / f"{split}.jsonl").read_bytes()


def test_another_seed_gives_other_splits(demo, tmp_path):
    main(["--out", str(tmp_path), "--seed", "1"])
    assert (tmp_path / "rm.jsonl").read_bytes() != (demo / "rm.jsonl").read_bytes()
