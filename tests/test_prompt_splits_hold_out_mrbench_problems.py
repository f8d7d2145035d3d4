"""Problems quoted in MRBench (held-out human labels) never reach the rm or rl prompt sets.

Checked independently of the loaders' problem ids: an item's problem text, reduced to words, must not occur
in any MRBench conversation (MRBench renamed every 'Teacher' to 'Tutor', so that is undone first)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.config import load_config
from annotation.prompts import DataConfig, build_prompt_sets

REPO = Path(__file__).resolve().parent.parent


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.fixture(scope="module")
def mrbench_text() -> str:
    records = json.loads((REPO / "data/mrbench_v3_dev/mrbench_v3_devset.json").read_text())
    return " | ".join(words(re.sub(r"tutor", "teacher", r["conversation_history"], flags=re.I)) for r in records)


def in_mrbench(items, mrbench_text) -> set[str]:
    return {words(it.problem) for it in items if words(it.problem) in mrbench_text}


@pytest.fixture(scope="module")
def paper_config() -> DataConfig:
    return load_config(DataConfig, REPO / "configs/data_paper.yaml")


def test_paper_sizes_hold_out_mrbench(paper_config, mrbench_text):
    drawn, summary = build_prompt_sets(paper_config)
    assert summary["items"] == {"rm": 8000, "rl": 2000, "eval": 500}
    assert not in_mrbench(drawn["rm"] + drawn["rl"], mrbench_text)
    assert in_mrbench(drawn["eval"], mrbench_text)  # pinned to eval, and some are drawn
    # nor does any MRBench dialogue turn (MathTutorBench and MathDial share dialogues with MRBench)
    shared_turns = [it.id for it in drawn["rm"] + drawn["rl"] for t in it.turns
                    if t.role == "student" and len(words(t.text)) > 60 and words(t.text) in mrbench_text]
    assert not shared_turns
    assert summary["checks"]["problems_shared_between_splits"] == 0


def test_without_the_holdout_mrbench_problems_would_leak(paper_config, mrbench_text):
    drawn, summary = build_prompt_sets(paper_config.model_copy(update={"mrbench_path": None}))
    assert len(in_mrbench(drawn["rm"] + drawn["rl"], mrbench_text)) > 10


def test_drop_keeps_mrbench_problems_out_of_every_split(paper_config, mrbench_text):
    drawn, summary = build_prompt_sets(paper_config.model_copy(update={"mrbench_problems": "drop"}))
    assert not in_mrbench(drawn["rm"] + drawn["rl"] + drawn["eval"], mrbench_text)
    assert summary["pinned_problems"]["dropped"] == 156
