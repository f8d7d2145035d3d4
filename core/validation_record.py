"""An RM folder's validation record: its held-out agreement with human labels, the evidence an eval needs before
it trusts the RM as an independent scorer (`policy eval --rms`).

`hpc_rm train --validation FILE` and `hpc_rm eval --record` write `<rm>/validation.json`: the rubric, the number
of items, the annotators of the labels (and whether all were human), and per dimension the QWK, n and the
confusion matrix of (human level, predicted level) pairs, from which `policy.evaluation.trust` bounds QWK.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.schema import DataError, write_json

VALIDATION_RECORD_FILE = "validation.json"
HUMAN_PREFIX = "human:"
REQUIRED_FIELDS = ("rubric", "items", "annotators", "human_labels", "dimensions")


def build_validation_record(report: dict, rubric_name: str, annotators: list[str | None], labels: str,
                            written_by: str) -> dict:
    """The record of one evaluation (`hpc_rm.evaluate.evaluate_model`'s report) on labels from `annotators`."""
    names = sorted({a or "" for a in annotators})
    return {
        "rubric": rubric_name,
        "items": report["items"],
        "labels": labels,
        "annotators": names,
        "human_labels": bool(names) and all(a.startswith(HUMAN_PREFIX) for a in names),
        "written_by": written_by,
        "dimensions": {dim: {"qwk": m.get("qwk"), "n": m.get("n", 0), "confusion": m.get("confusion")}
                       for dim, m in report["dimensions"].items()},
    }


def write_validation_record(folder: Path | str, record: dict) -> Path:
    path = Path(folder) / VALIDATION_RECORD_FILE
    write_json(path, record)
    return path


def read_validation_record(folder: Path | str) -> dict | None:
    """The folder's record, None when it has none; a record that is not JSON or lacks a field is an error naming
    the file and the field."""
    path = Path(folder) / VALIDATION_RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError as err:
        raise DataError(f"{path}: not JSON ({err})") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}: not a JSON object")
    for field in REQUIRED_FIELDS:
        if field not in record:
            raise DataError(f"{path}: field {field}: missing (rewrite it with `python -m hpc_rm eval --record`)")
    return record
