"""Import human labels into the interchange format (`python -m annotation import`).

Inputs: CSV, JSONL, a Label Studio JSON export, or the MRBench V3 JSON (`--format mrbench`). `--map FIELD=COLUMN` (repeatable; a mapping under `map:` in
a YAML `--config`) says which column holds each field: `id`, `context`, `response`, `annotator`, and either one
column per rubric dimension (wide layout) or `dimension` + `score` columns (long layout, one row per label).
Unmapped fields use the column of the same name; in JSONL a column may be a dotted path (`scores.Helpfulness`).
Levels go through the rubric (`0/1/2`, `Yes/To some extent/No`, level labels and aliases all work).

Output: one `LabeledItem` per (item, annotator), written atomically. Errors name the file, the line (for CSV
the row number as a spreadsheet shows it, header = row 1) and the field.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from core.cli import ArgumentParser
from core.config import Config, ConfigError, add_arguments, build_config
from core.errors import exits_on_bad_input
from annotation.labelstudio import iter_export_annotations
from core.rubric import Rubric, load_rubric
from core.schema import DataError, LabeledItem, parse_json_lines, read_jsonl, read_text, write_jsonl
from core.sources import load_mrbench

ITEM_FIELDS = ("id", "context", "response", "annotator")
LONG_FIELDS = ("dimension", "score")
KNOWN_PREFIXES = ("human:", "llm:")
_ABSENT = object()


class ImportConfig(Config):
    input: Path = Field(description="CSV, JSONL, or Label Studio JSON export holding the labels")
    out: Path = Field(Path("data/labels/human.jsonl"), description="interchange JSONL to write")
    rubric: str = Field("hpc", description="rubric name in configs/rubrics/ or a YAML path")
    format: Literal["auto", "csv", "jsonl", "labelstudio", "mrbench"] = Field(
        "auto", description="input format; auto: .csv = csv, .jsonl = jsonl, .json = Label Studio export; "
        "mrbench = the MRBench V3 JSON (its human labels as annotator human:mrbench, with rubric mrbench)"
    )
    layout: Literal["auto", "wide", "long"] = Field(
        "auto", description="wide: one column per dimension; long: dimension and score columns, one row per "
        "label; auto: long when the dimension field is mapped or a 'dimension' column exists"
    )
    map: dict[str, str] = Field(
        default_factory=dict, description="FIELD=COLUMN: input column for a field (id, context, response, "
        "annotator, dimension, score, or a dimension name); repeat the flag for each field"
    )
    annotator_prefix: str = Field(
        "human:", description="prefix for annotator names that start with neither 'human:' nor 'llm:'"
    )
    default_annotator: str | None = Field(None, description="annotator name for inputs without an annotator column")
    items: Path | None = Field(
        None, description="interchange JSONL giving context and response for rows that only carry an item id"
    )
    missing_values: list[str] = Field(
        default_factory=lambda: ["", "na", "n/a", "nan", "none", "null", "-"],
        description="cell values (any case) that mean 'not labeled on this dimension'",
    )


@dataclass
class Collected:
    """Labels gathered so far for one (item, annotator), with where each came from (for conflict errors)."""

    item_id: str
    annotator: str
    where: str
    scores: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


class LabelCollector:
    """Merges labels per (item, annotator); a second, different label for the same dimension is an error."""

    def __init__(self, rubric: Rubric, config: ImportConfig):
        self.rubric = rubric
        self.config = config
        self.records: dict[tuple[str, str], Collected] = {}
        self.texts: dict[str, dict[str, str]] = {}  # item id -> context/response, each with the row it came from
        self.missing_values = {m.strip().lower() for m in config.missing_values}
        self.rows_without_labels = 0

    def annotator_name(self, raw) -> str:
        name = str(raw).strip()
        return name if name.startswith(KNOWN_PREFIXES) else self.config.annotator_prefix + name

    def is_missing(self, value) -> bool:
        return value is None or str(value).strip().lower() in self.missing_values

    def parse(self, where: str, column: str, dimension: str, value) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*\d+\.0*\s*", value):  # spreadsheets write 2 as "2.0"
            value = int(float(value))
        try:
            return self.rubric.dimension(dimension).parse_level(value)
        except ValueError as err:
            raise DataError(f"{where}: field {column}: {err}") from None

    def add(self, where: str, item_id, annotator, context, response, labels: dict[str, tuple[str, object]]) -> None:
        """labels: dimension -> (column it came from, raw value)."""
        if self.is_missing(item_id):
            raise DataError(f"{where}: field {self.config.map.get('id', 'id')}: empty item id")
        if self.is_missing(annotator):
            raise DataError(f"{where}: field {self.config.map.get('annotator', 'annotator')}: empty annotator")
        item_id, annotator = str(item_id).strip(), self.annotator_name(annotator)
        self._check_texts(where, item_id, context, response)
        scores = {d: self.parse(where, col, d, v) for d, (col, v) in labels.items() if not self.is_missing(v)}
        if not scores:
            self.rows_without_labels += 1
            return
        record = self.records.setdefault((item_id, annotator), Collected(item_id, annotator, where))
        for dim, level in scores.items():
            if record.scores.get(dim, level) != level:
                raise DataError(
                    f"{where}: field {labels[dim][0]}: {annotator} labeled {item_id} {dim}={level} here but "
                    f"{record.scores[dim]} at {record.sources[dim]}"
                )
            record.scores[dim] = level
            record.sources.setdefault(dim, where)

    def _check_texts(self, where: str, item_id: str, context, response) -> None:
        """Remember the item's texts; every row that gives them must give the same ones."""
        seen = self.texts.setdefault(item_id, {})
        for name, value in (("context", context), ("response", response)):
            if value is None or value == "":  # an empty cell gives no text; another row of the item may
                continue
            column = self.config.map.get(name, name)
            if not isinstance(value, str):
                raise DataError(f"{where}: field {column}: expected text, got {value!r}")
            first, first_where = seen.setdefault(name, (value, where))
            if first != value:
                raise DataError(f"{where}: field {column}: item {item_id} has another {name} than at {first_where}")

    def labeled_items(self, items_file: Path | None) -> list[LabeledItem]:
        """The collected labels; context/response missing from the input come from `items_file`."""
        known = {}
        if items_file is not None:
            for item in read_jsonl(items_file, LabeledItem):
                known.setdefault(item.id, item)
        out = []
        for record in self.records.values():
            texts = self.texts[record.item_id]
            context, response = (texts[n][0] if n in texts else None for n in ("context", "response"))
            if context is None or response is None:
                source = known.get(record.item_id)
                if source is None:
                    what = "context" if context is None else "response"
                    hint = f"not in {items_file}" if items_file else f"map it with --map {what}=COLUMN or pass --items"
                    raise DataError(f"{record.where}: field {what}: missing for item {record.item_id} ({hint})")
                context = source.context if context is None else context
                response = source.response if response is None else response
            out.append(LabeledItem(
                id=record.item_id, context=context, response=response, scores=record.scores,
                annotator=record.annotator, meta={"source": record.where},
            ))
        return out


def iter_rows(path: Path, fmt: str) -> Iterator[tuple[str, dict]]:
    """(where, row) for each CSV row or JSONL line."""
    text = read_text(path)  # UTF-8 (a spreadsheet's BOM is dropped); other bytes name their line
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise DataError(f"{path}:1: no header row")
        for row_number, row in enumerate(reader, start=2):
            yield f"{path}:{row_number}", row
        return
    for lineno, row in parse_json_lines(path, text.split("\n")):
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield f"{path}:{lineno}", row


def lookup(row: dict, column: str):
    """row[column], or a dotted path into nested JSON objects; _ABSENT when there is no such column."""
    if column in row:
        return row[column]
    value = row
    for part in column.split("."):
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


class RowReader:
    """Turns one CSV/JSONL row into the arguments of `LabelCollector.add`, following the column map."""

    def __init__(self, config: ImportConfig, rubric: Rubric):
        self.config = config
        self.rubric = rubric
        self.layout = config.layout
        self.seen_dimensions: set[str] = set()

    def check_mapped_columns_seen(self, source: Path) -> None:
        """A mapped dimension column that no row has is a typo in the map, not a dimension nobody labeled."""
        if self.layout != "wide":
            return
        for dim in self.rubric.names:
            if dim in self.config.map and dim not in self.seen_dimensions:
                raise DataError(f"{source}: field {self.column(dim)}: no row has this column (mapped to {dim})")

    def column(self, name: str) -> str:
        return self.config.map.get(name, name)

    def get(self, where: str, row: dict, name: str, required: bool = True):
        value = lookup(row, self.column(name))
        if value is _ABSENT and required:
            columns = ", ".join(map(str, row))
            raise DataError(f"{where}: field {self.column(name)}: no such column for {name} (columns: {columns})")
        return None if value is _ABSENT else value

    def read(self, where: str, row: dict) -> tuple:
        if self.layout == "auto":
            long = "dimension" in self.config.map or lookup(row, "dimension") is not _ABSENT
            self.layout = "long" if long else "wide"
        annotator = self.get(where, row, "annotator", required=self.config.default_annotator is None)
        if annotator is None:
            annotator = self.config.default_annotator
        texts = (self.get(where, row, "context", required=False), self.get(where, row, "response", required=False))
        return (where, self.get(where, row, "id"), annotator, *texts, self.labels(where, row))

    def labels(self, where: str, row: dict) -> dict[str, tuple[str, object]]:
        if self.layout == "long":
            name = self.get(where, row, "dimension")
            dim = self._dimension(where, name)
            return {dim: (self.column("score"), self.get(where, row, "score"))}
        found = {}
        for dim in self.rubric.names:
            value = lookup(row, self.column(dim))
            if value is not _ABSENT:  # a JSONL line may leave out a dimension it does not label
                found[dim] = (self.column(dim), value)
                self.seen_dimensions.add(dim)
        if not found:
            raise DataError(
                f"{where}: no column for any dimension of rubric {self.rubric.name} ({', '.join(self.rubric.names)}); "
                f"map them with --map {self.rubric.names[0]}=COLUMN"
            )
        return found

    def _dimension(self, where: str, name) -> str:
        text = str(name).strip()
        for dim in self.rubric.names:
            if text.lower() == dim.lower():
                return dim
        raise DataError(
            f"{where}: field {self.column('dimension')}: unknown dimension {name!r} "
            f"(rubric {self.rubric.name} has {', '.join(self.rubric.names)})"
        )


def input_format(config: ImportConfig) -> str:
    if config.format != "auto":
        return config.format
    suffix = config.input.suffix.lower()
    formats = {".csv": "csv", ".jsonl": "jsonl", ".json": "labelstudio"}
    if suffix not in formats:
        raise ConfigError(f"{config.input}: cannot tell the format from '{suffix}'; "
                          "pass --format csv|jsonl|labelstudio")
    return formats[suffix]


def check_map(config: ImportConfig, rubric: Rubric) -> None:
    known = (*ITEM_FIELDS, *LONG_FIELDS, *rubric.names)
    for name in config.map:
        if name not in known:
            raise ConfigError(f"--map {name}=...: unknown field or dimension {name!r} (known: {', '.join(known)})")


def import_labels(config: ImportConfig, rubric: Rubric) -> tuple[list[LabeledItem], int]:
    """The labeled items and the number of input rows that carried no label."""
    check_map(config, rubric)
    if input_format(config) == "mrbench":  # nested JSON with its own loader
        return load_mrbench(config.input, rubric), 0
    collector = LabelCollector(rubric, config)
    if input_format(config) == "labelstudio":
        for where, data, annotator, choices in iter_export_annotations(config.input):
            labels = {}
            for control, value in choices.items():
                if control not in rubric.names:
                    raise DataError(f"{where}: field result.{control}: unknown dimension (rubric {rubric.name} "
                                    f"has {', '.join(rubric.names)})")
                labels[control] = (f"result.{control}", value)
            texts = [lookup(data, config.map.get(n, n)) for n in ("id", "context", "response")]
            item_id, context, response = (None if v is _ABSENT else v for v in texts)
            collector.add(where, item_id, annotator, context, response, labels)
    else:
        reader = RowReader(config, rubric)
        for where, row in iter_rows(config.input, input_format(config)):
            collector.add(*reader.read(where, row))
        reader.check_mapped_columns_seen(config.input)
    return collector.labeled_items(config.items), collector.rows_without_labels


def parse_config(argv: list[str] | None) -> ImportConfig:
    parser = ArgumentParser(
        prog="python -m annotation import", description=__doc__.split("\n")[0], conflict_handler="resolve"
    )
    add_arguments(parser, ImportConfig)
    # repeatable FIELD=COLUMN pairs; replaces the single-value flag add_arguments generated for `map`
    parser.add_argument("--map", dest="map_pairs", action="append", default=[], metavar="FIELD=COLUMN",
                        help=ImportConfig.model_fields["map"].description)
    args = parser.parse_args(argv)
    for pair in args.map_pairs:
        name, sep, column = pair.partition("=")
        if not sep or not name.strip() or not column.strip():
            parser.error(f"--map {pair!r}: expected FIELD=COLUMN")
        # a dotted key merges into the YAML file's map; JSON quoting keeps column names like "1" strings
        setattr(args, f"cfg:map.{name.strip()}", json.dumps(column.strip()))
    return build_config(ImportConfig, args)


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    rubric = load_rubric(config.rubric)
    items, rows_without_labels = import_labels(config, rubric)
    write_jsonl(config.out, items)
    annotators = {item.annotator for item in items}
    print(f"wrote {len(items)} labeled items ({len(annotators)} annotators) to {config.out}; "
          f"{rows_without_labels} rows without any label were skipped")
