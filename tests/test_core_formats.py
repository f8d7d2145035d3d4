"""The shared ground: interchange format errors, atomic writes, append-only logs, rubrics, configs."""
import json

import pytest

from core.config import Config, ConfigError, add_arguments, build_config, load_config
from core.rubric import load_rubric
from core.schema import (
    AppendLog, DataError, LabeledItem, PromptItem, StudentProfile, Turn, read_jsonl, swap_profile, write_jsonl,
)


def test_bad_line_names_file_line_and_field(tmp_path):
    path = tmp_path / "labels.jsonl"
    good = {"id": "a", "context": "c", "response": "r", "scores": {"Helpfulness": 2}, "annotator": "human:x"}
    bad = dict(good, scores={"Helpfulness": "lots"})
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"labels.jsonl:2: field scores.Helpfulness"):
        read_jsonl(path, LabeledItem)
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(DataError, match=r"labels.jsonl:2: not valid JSON"):
        read_jsonl(path, LabeledItem)


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"a": 1}])

    def records():
        yield {"a": 2}
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(path, records())
    assert path.read_text() == '{"a": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_append_log_drops_torn_last_line(tmp_path):
    path = tmp_path / "log.jsonl"
    with AppendLog(path) as log:
        log.append({"k": 1})
    with path.open("a") as handle:
        handle.write('{"k": 2, "trunc')  # a kill in the middle of a write
    with AppendLog(path) as log:
        log.append({"k": 3})
        assert [r["k"] for r in log.records()] == [1, 3]


def test_rubrics_load_and_map_labels():
    hpc = load_rubric("hpc")
    assert hpc.names == ["Helpfulness", "Personalization", "Creativity"]
    assert abs(sum(hpc.default_weights().values()) - 1) < 1e-9
    mr = load_rubric("mrbench")
    dim = mr.dimension("Mistake_Location")
    assert [dim.parse_level(v) for v in ("Yes", "To some extent", "no", 2, "0")] == [2, 1, 0, 2, 0]
    with pytest.raises(ValueError, match="Mistake_Location"):
        dim.parse_level("maybe")
    with pytest.raises(ValueError, match="scores.Creativity: 3"):
        hpc.check_scores({"Creativity": 3})


def test_rubric_errors_name_the_file(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("name: x\ndimensions:\n  - name: A\n    description: d\n    levels: [{score: 0, label: a, description: d}, {score: 2, label: b, description: d}]\n")
    with pytest.raises(ConfigError, match=r"(?s)r.yaml.*field dimensions.0.*levels must be scored 0..n-1"):
        load_rubric(bad)


def test_profile_swap_changes_only_the_profile():
    item = PromptItem(
        id="p1", source="mathdial", problem_id="q1", kind="multi_turn",
        profile=StudentProfile(grade="7th grade", personality="shy"), problem="2+2?",
        turns=[Turn(role="student", text="5")],
    )
    other = StudentProfile(grade="3rd grade", interests=["football"])
    swapped = swap_profile(item.context, other)
    assert "3rd grade" in swapped and "7th grade" not in swapped
    assert swapped.split("## Problem")[1] == item.context.split("## Problem")[1]
    messages = item.chat_messages("You are a tutor.")
    assert messages[0]["role"] == "system" and "7th grade" in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": "5"}


class _Inner(Config):
    lr: float = 1e-3


class _Demo(Config):
    model: str = "minilm-l6"
    epochs: int = 1
    inner: _Inner = _Inner()


def test_config_yaml_then_flags_override(tmp_path):
    import argparse

    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\ninner: {lr: 0.5}\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser, _Demo)
    cfg = build_config(_Demo, parser.parse_args(["--config", str(path), "--inner.lr", "0.1", "--model", "no"]))
    assert (cfg.epochs, cfg.inner.lr, cfg.model) == (3, 0.1, "no")
    path.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: invalid config: field epoch: Extra inputs"):
        load_config(_Demo, path)
