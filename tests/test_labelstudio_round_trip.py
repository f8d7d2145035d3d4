"""export-labelstudio writes tasks and a rubric-generated labeling config; a Label Studio export built from
those tasks imports back to the same scores."""
import json
import random
import xml.etree.ElementTree as ET

import pytest

from annotation.human_import import main as import_main
from annotation.labelstudio import main as export_main
from core.rubric import load_rubric
from core.schema import LabeledItem, read_jsonl, write_jsonl


def _export(tmp_path, rubric="hpc"):
    items = [LabeledItem(id=f"q{i}", context=f"## Problem\n{i} + 4 = ?", response=f"What is {i} plus 4?")
             for i in range(5)]
    items.append(items[0].model_copy(update={"annotator": "llm:judge", "scores": {"Helpfulness": 1}}))  # same id again
    write_jsonl(tmp_path / "items.jsonl", items)
    export_main(["--items", str(tmp_path / "items.jsonl"), "--rubric", rubric, "--out", str(tmp_path / "ls")])
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    config = ET.parse(tmp_path / "ls" / "labeling_config.xml").getroot()
    return tasks, config


def test_labeling_config_has_one_choices_per_dimension(tmp_path):
    tasks, config = _export(tmp_path)
    assert [t["data"]["id"] for t in tasks] == [f"q{i}" for i in range(5)]  # one task per item id
    assert tasks[3]["data"] == {"id": "q3", "context": "## Problem\n3 + 4 = ?", "response": "What is 3 plus 4?"}
    rubric = load_rubric("hpc")
    choices = config.findall("Choices")
    assert [c.get("name") for c in choices] == rubric.names
    for control, dim in zip(choices, rubric.dimensions):
        assert control.get("toName") == "response" and control.get("choice") == "single-radio"
        options = control.findall("Choice")
        assert [o.get("value") for o in options] == [lv.label for lv in dim.levels]
        assert [o.get("alias") for o in options] == ["0", "1", "2"]
        assert options[2].get("hint") == " ".join(dim.levels[2].description.split())
    assert {t.get("value") for t in config.findall("Text")} == {"$context", "$response"}


def _labelstudio_export(tasks, config, annotators, seed=0, use_alias=True):
    """What Label Studio's JSON export looks like after `annotators` labeled every task."""
    rng = random.Random(seed)
    truth = {}
    exported = []
    for n, task in enumerate(tasks):
        annotations = []
        for who in annotators:
            result = []
            for control in config.findall("Choices"):
                option = rng.choice(control.findall("Choice"))
                truth[(task["data"]["id"], who["name"], control.get("name"))] = int(option.get("alias"))
                chosen = option.get("alias") if use_alias else option.get("value")
                result.append({"from_name": control.get("name"), "to_name": "response", "type": "choices",
                               "value": {"choices": [chosen]}})
            result.append({"from_name": "comment", "to_name": "response", "type": "textarea",
                           "value": {"text": ["free text is ignored"]}})
            annotations.append({"id": 100 + n, "completed_by": who["by"], "result": result, "was_cancelled": False})
        annotations.append({"id": 999, "completed_by": 9, "was_cancelled": True, "result": []})
        exported.append({"id": 1000 + n, "data": task["data"], "annotations": annotations, "predictions": []})
    return exported, truth


@pytest.mark.parametrize("use_alias", [True, False])
def test_round_trip_gives_the_same_scores(tmp_path, use_alias):
    tasks, config = _export(tmp_path)
    annotators = [{"name": "human:3", "by": 3},
                  {"name": "human:ana@school.org", "by": {"id": 4, "email": "ana@school.org"}}]
    exported, truth = _labelstudio_export(tasks, config, annotators, use_alias=use_alias)
    (tmp_path / "export.json").write_text(json.dumps(exported))
    out = tmp_path / "human.jsonl"
    import_main(["--input", str(tmp_path / "export.json"), "--rubric", "hpc", "--out", str(out)])
    items = read_jsonl(out, LabeledItem)
    assert len(items) == len(tasks) * len(annotators)  # the cancelled annotation is not imported
    got = {(i.id, i.annotator, d): v for i in items for d, v in i.scores.items()}
    assert got == truth
    assert items[0].context == tasks[0]["data"]["context"] and items[0].response == tasks[0]["data"]["response"]


def test_export_errors_name_task_and_field(tmp_path):
    tasks, config = _export(tmp_path)
    exported, _ = _labelstudio_export(tasks[:1], config, [{"name": "human:3", "by": 3}])
    exported[0]["annotations"][0]["result"][0]["from_name"] = "Clarity"
    (tmp_path / "bad.json").write_text(json.dumps(exported))
    where = r"bad.json: task 0 \(Label Studio id 1000\), annotation 0"
    with pytest.raises(SystemExit, match=where + ": field result.Clarity: unknown dimension"):
        import_main(["--input", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o.jsonl")])
    two_choices = {"choices": ["Helpful", "Not helpful"]}
    exported[0]["annotations"][0]["result"][0].update(from_name="Helpfulness", value=two_choices)
    (tmp_path / "bad.json").write_text(json.dumps(exported))
    with pytest.raises(SystemExit, match=r"annotation 0: field result.Helpfulness: expected exactly one choice"):
        import_main(["--input", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o.jsonl")])
