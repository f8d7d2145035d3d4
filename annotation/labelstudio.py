"""Label Studio, both ways: export tasks and a labeling config generated from the rubric, and read the JSON
export that Label Studio produces after people labeled them (`python -m annotation import --format labelstudio`).

`python -m annotation export-labelstudio --items FILE --rubric hpc --out DIR` writes
- `DIR/tasks.json`: one task per item id, `{"data": {"id", "context", "response"}}`;
- `DIR/labeling_config.xml`: the context and response, then one single-choice `<Choices>` per rubric dimension
  (named after the dimension), one `<Choice>` per level. A choice shows the level's label and description;
  its `alias` is the level's score, so the export stores "0"/"1"/"2" whatever the wording.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from core.cli import ArgumentParser
from core.config import Config, add_arguments, build_config
from core.errors import exits_on_bad_input
from core.rubric import Rubric, load_rubric
from core.schema import DataError, LabeledItem, iter_jsonl, read_text, write_json, write_text

TASKS_FILE = "tasks.json"
CONFIG_FILE = "labeling_config.xml"


class ExportConfig(Config):
    items: Path = Field(description="interchange JSONL with the (context, response) pairs to label")
    rubric: str = Field("hpc", description="rubric name in configs/rubrics/ or a YAML path")
    out: Path = Field(Path("labelstudio"), description="folder for tasks.json and labeling_config.xml")


def labeling_config(rubric: Rubric) -> str:
    """Label Studio labeling config XML: the texts, then one required single-choice question per dimension."""
    view = ET.Element("View")
    ET.SubElement(view, "Header", value="Context (student profile, problem, dialogue so far)")
    ET.SubElement(view, "Text", name="context", value="$context")
    ET.SubElement(view, "Header", value="Tutor response to rate")
    ET.SubElement(view, "Text", name="response", value="$response")
    for dim in rubric.dimensions:
        ET.SubElement(view, "Header", value=f"{dim.name}: {' '.join(dim.description.split())}", size="5")
        choices = ET.SubElement(
            view, "Choices", name=dim.name, toName="response", choice="single-radio", required="true",
            showInline="false",
        )
        for level in sorted(dim.levels, key=lambda lv: lv.score):
            description = " ".join(level.description.split())
            ET.SubElement(
                choices, "Choice", value=level.label, alias=str(level.score), hint=description,
                html=f"<b>{level.score} {level.label}</b>: {description}",
            )
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def labelstudio_tasks(items: Iterator[LabeledItem], source: str) -> list[dict]:
    """One task per item id; the same id with another context or response is an error."""
    tasks: dict[str, dict] = {}
    for item in items:
        data = {"id": item.id, "context": item.context, "response": item.response}
        if item.id in tasks and tasks[item.id]["data"] != data:
            raise DataError(f"{source}: item {item.id} appears with two different contexts or responses")
        tasks.setdefault(item.id, {"data": data})
    return list(tasks.values())


def export_labelstudio(items_path: Path, rubric: Rubric, out: Path) -> tuple[Path, Path, int]:
    tasks = labelstudio_tasks(iter_jsonl(items_path, LabeledItem), str(items_path))
    tasks_path, config_path = Path(out) / TASKS_FILE, Path(out) / CONFIG_FILE
    write_json(tasks_path, tasks)
    write_text(config_path, labeling_config(rubric))
    return tasks_path, config_path, len(tasks)


def _annotator(annotation: dict) -> str | None:
    """Label Studio names the annotator by user id, or by a user object with an email, depending on version."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    if who is None or who == "":
        who = annotation.get("created_username")
    return None if who is None or who == "" else str(who)


def iter_export_annotations(path: Path) -> Iterator[tuple[str, dict, str, dict[str, object]]]:
    """(where, task data, annotator, control name -> chosen value) per non-cancelled annotation of a
    Label Studio JSON export. `where` names the file, task and annotation for error messages."""
    path = Path(path)
    try:
        tasks = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(tasks, list):
        raise DataError(f"{path}: expected a Label Studio JSON export (a list of tasks), got {type(tasks).__name__}")
    for t, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise DataError(f"{path}: task {t}: field data: missing or not an object")
        for a, annotation in enumerate(task.get("annotations") or []):
            where = f"{path}: task {t} (Label Studio id {task.get('id')}), annotation {a}"
            if annotation.get("was_cancelled"):
                continue
            annotator = _annotator(annotation)
            if annotator is None:
                raise DataError(f"{where}: field completed_by: missing, cannot tell annotators apart")
            choices = {}
            for result in annotation.get("result") or []:
                if result.get("type") != "choices":
                    continue  # free-text comments and other controls carry no rubric level
                name = result.get("from_name")
                chosen = (result.get("value") or {}).get("choices")
                if not isinstance(chosen, list) or len(chosen) != 1:
                    raise DataError(f"{where}: field result.{name}: expected exactly one choice, got {chosen!r}")
                choices[name] = chosen[0]
            yield where, task["data"], annotator, choices


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m annotation export-labelstudio", description=__doc__.split("\n")[0])
    add_arguments(parser, ExportConfig)
    config = build_config(ExportConfig, parser.parse_args(argv))
    rubric = load_rubric(config.rubric)
    tasks_path, config_path, n = export_labelstudio(config.items, rubric, config.out)
    print(f"wrote {n} tasks to {tasks_path} and the labeling config to {config_path}")
