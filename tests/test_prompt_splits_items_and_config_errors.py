"""How items are cut and profiled, and how bad configs fail (naming the field to change)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.config import ConfigError
from annotation.prompts import (
    DataConfig, attach_profiles, build_prompt_sets, load_profile_lists, main, mathdial_items, single_turn_items,
)
from core.sources import load_gsm8k, load_mathdial, load_mathtutorbench

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"


@pytest.fixture(scope="module")
def dialogues():
    return load_mathdial(DATA / "mathdial/test.jsonl")


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def test_mathdial_cuts_end_before_the_real_teacher_turn(dialogues):
    items = mathdial_items(dialogues[:40], DataConfig(mathdial_cuts_per_dialogue=3))
    by_id = {d.id: d for d in dialogues}
    assert len(items) == sum(min(3, sum(t.role == "tutor" for t in d.turns)) for d in dialogues[:40])
    for item in items:
        d = by_id[item.meta["dialogue"]]
        cut = int(item.id.rsplit(":t", 1)[1])
        full = [item.turns[0], *d.turns]  # the written solution opens the dialogue
        assert item.turns[0].role == "student" and d.student_incorrect_solution.strip() in item.turns[0].text
        assert item.turns == full[:cut] and item.reference_responses == [full[cut].text]
        assert full[cut].role == "tutor" and item.meta["reference_move"] == d.moves[cut - 1]
        assert item.profile == d.profile


def test_tutorbench_profiles_come_from_the_matching_mathdial_dialogue(dialogues):
    lists = load_profile_lists(REPO / "configs/profiles.yaml")
    items = attach_profiles(load_mathtutorbench(DATA / "mathtutorbench/mathdial_bridge.mathdial_only.json"),
                            dialogues, lists, seed=0)
    by_id = {d.id: d for d in dialogues}
    matched = [it for it in items if it.meta["profile_source"] == "mathdial"]
    assert 250 < len(matched) < len(items)  # 290 of 1,002: the rest come from MathDial train, not shipped
    for it in matched:
        d = by_id[it.meta["dialogue"]]
        assert it.profile == d.profile and it.problem_id == d.problem_id
        assert {words(t.text) for t in it.turns if t.role == "student"} & {words(t.text) for t in d.turns}
    synthetic = [it for it in items if it.meta["profile_source"] == "synthetic"]
    assert all(it.profile.grade in lists.grades and it.profile.personality in lists.personalities for it in synthetic)


def test_synthetic_profiles_are_seeded_per_item():
    lists = load_profile_lists(REPO / "configs/profiles.yaml")
    problems = load_gsm8k(DATA / "gsm8k/test.jsonl")[:50]
    once = single_turn_items(problems, lists, DataConfig(profiles_per_problem=2))
    again = single_turn_items(problems[::-1], lists, DataConfig(profiles_per_problem=2))
    assert len(once) == 100
    assert {it.id: it.profile for it in once} == {it.id: it.profile for it in again}
    assert len({it.profile.model_dump_json() for it in once}) > 90  # students differ, also on the same problem
    other_seed = single_turn_items(problems, lists, DataConfig(seed=7))
    assert [it.profile for it in other_seed] != [it.profile for it in once[::2]]


def test_too_many_items_names_the_size_to_change():
    config = DataConfig(sizes={"rm": {"single_turn": 10, "multi_turn": 5000},
                               "rl": {"single_turn": 1, "multi_turn": 1}, "eval": {"single_turn": 1, "multi_turn": 1}})
    with pytest.raises(ConfigError, match=r"field sizes.rm.multi_turn: asked for 5000 items, but split rm has only \d+"):
        build_prompt_sets(config)


def test_bad_profiles_file_names_file_and_field(tmp_path):
    path = tmp_path / "profiles.yaml"
    path.write_text("grades: []\ninterests: [chess]\npersonalities: [shy]\nmisconceptions: [units]\n")
    with pytest.raises(ConfigError, match=rf"{path}: invalid config: field grades: List should have at least 1 item"):
        load_profile_lists(path)


def test_cli_flags_and_missing_out(tmp_path, capsys):
    with pytest.raises(SystemExit, match="field out: give the output folder"):
        main([])
    with pytest.raises(SystemExit, match="flag --sizes.eval.multi-turn: Input should be greater than or equal to 0"):
        main(["--out", str(tmp_path), "--sizes.eval.multi-turn", "-1"])
    config_file = tmp_path / "data.yaml"
    config_file.write_text("sizes:\n  rm: {single_turn: 5, multi_turn: 5}\n  rl: {single_turn: 2, multi_turn: 2}\n"
                           "  eval: {single_turn: 3, multi_turn: 1}\n")
    main(["--out", str(tmp_path / "p"), "--config", str(config_file), "--sizes.rm.single-turn", "7"])
    assert "rm=12 rl=4 eval=4" in capsys.readouterr().out
