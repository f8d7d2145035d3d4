"""Agreement between annotators: human vs human, human vs each LLM judge, and each LLM judge vs itself.

`python -m annotation agreement --labels FILE [FILE ...] --rubric hpc --out DIR` writes `agreement.json`,
`agreement.md` and PNG plots (see `annotation.agreement_report`). Annotator names decide the comparison:
`human:*` are humans, `llm:*` are judges. A judge's repeated samples come either from `meta["samples"]`
(score dicts per sample, as the label stage writes them) or from annotators named `llm:<judge>#<k>`.

Statistics come from libraries: quadratic-weighted Cohen's kappa from sklearn, Spearman from scipy, ordinal
Krippendorff's alpha from `krippendorff`. Undefined values (constant vectors, no overlap) are None in the
output, never a made-up number, and every figure carries the n it was computed on.
"""
from __future__ import annotations

import itertools
import json
import math
import warnings
from collections import defaultdict
from pathlib import Path

import krippendorff
import numpy as np
from pydantic import Field
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from core.cli import ArgumentParser
from core.config import Config, add_arguments, build_config
from core.errors import exits_on_bad_input
from core.rubric import Rubric, load_rubric, majority
from core.schema import DataError, LabeledItem, read_labels_jsonl

HUMAN_PREFIX = "human:"
LLM_PREFIX = "llm:"
SAMPLE_SEPARATOR = "#"  # llm:<judge>#<k> = sample k of one judge

# annotator -> item id -> dimension -> level
ScoreTable = dict[str, dict[str, dict[str, int]]]


class AgreementConfig(Config):
    labels: list[Path] = Field(description="interchange JSONL files with labels (humans and LLM judges, any mix)")
    rubric: str = Field("hpc", description="rubric name in configs/rubrics/ or a YAML path")
    out: Path = Field(Path("reports/agreement"), description="output folder for agreement.json/.md/.png")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def pairwise_agreement(a, b, n_levels: int) -> dict:
    """Exact agreement, quadratic-weighted kappa and Spearman on the positions where both a and b have a label.

    None/NaN marks a missing label. Statistics that are undefined (no overlap, constant vectors) are None.
    """
    if len(a) != len(b):
        raise ValueError(f"pairwise_agreement: vectors differ in length ({len(a)} vs {len(b)})")
    pairs = [(int(x), int(y)) for x, y in zip(a, b) if not _missing(x) and not _missing(y)]
    result = {"n": len(pairs), "exact": None, "qwk": None, "spearman": None}
    if not pairs:
        return result
    x, y = np.array(pairs).T
    result["exact"] = float(np.mean(x == y))
    with warnings.catch_warnings():  # constant inputs give NaN with a warning; NaN becomes None below
        warnings.simplefilter("ignore")
        result["qwk"] = _finite_or_none(
            cohen_kappa_score(x, y, weights="quadratic", labels=list(range(n_levels)))
        )
        result["spearman"] = _finite_or_none(spearmanr(x, y).statistic) if len(pairs) > 1 else None
    return result


def krippendorff_alpha(matrix, n_levels: int) -> float:
    """Ordinal Krippendorff's alpha; rows = annotators, columns = items, NaN/None = missing. NaN if undefined."""
    data = np.array([[np.nan if _missing(v) else float(v) for v in row] for row in matrix], dtype=float)
    if data.ndim != 2 or data.shape[0] < 2:
        return float("nan")
    if not ((~np.isnan(data)).sum(axis=0) >= 2).any():  # no item with two labels: nothing to compare
        return float("nan")
    with warnings.catch_warnings():  # a single value in the data gives 0/0 = NaN with a warning
        warnings.simplefilter("ignore")
        return float(
            krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal", value_domain=range(n_levels))
        )


def score_table(items: list[LabeledItem], rubric: Rubric) -> ScoreTable:
    """annotator -> item -> scores; a second, different label for the same (item, annotator) is an error."""
    table: ScoreTable = defaultdict(dict)
    for item in items:
        if item.scores is None or item.annotator is None:
            continue
        try:
            rubric.check_scores(item.scores)
        except ValueError as err:
            raise DataError(f"item {item.id} ({item.annotator}): {err}") from None
        previous = table[item.annotator].get(item.id)
        if previous is not None and previous != item.scores:
            raise DataError(
                f"item {item.id}: annotator {item.annotator} labeled it twice with different scores "
                f"({previous} vs {item.scores})"
            )
        table[item.annotator][item.id] = dict(item.scores)
    return dict(table)


def rater_agreement(ratings: dict[str, dict[str, dict[str, int]]], dimension: str, n_levels: int) -> dict:
    """Alpha over all raters plus exact agreement and QWK averaged over rater pairs that share items."""
    raters = sorted(ratings)
    item_ids = sorted({i for r in raters for i, s in ratings[r].items() if dimension in s})
    matrix = [[ratings[r].get(i, {}).get(dimension) for i in item_ids] for r in raters]
    pairs = {}
    for (ra, a), (rb, b) in itertools.combinations(zip(raters, matrix), 2):
        stats = pairwise_agreement(a, b, n_levels)
        if stats["n"]:
            pairs[f"{ra} | {rb}"] = stats
    alpha = krippendorff_alpha(matrix, n_levels) if len(raters) >= 2 else float("nan")
    return {
        "alpha": _finite_or_none(alpha),
        "exact": _mean_of(pairs, "exact"),
        "qwk": _mean_of(pairs, "qwk"),
        "n_items": int(sum(sum(not _missing(row[j]) for row in matrix) >= 2 for j in range(len(item_ids)))),
        "n_raters": len(raters),
        "n_pairs": len(pairs),
        "pairs": pairs,
    }


def _mean_of(pairs: dict[str, dict], key: str) -> float | None:
    values = [p[key] for p in pairs.values() if p[key] is not None]
    return float(np.mean(values)) if values else None


def _by_prefix(table: ScoreTable, prefix: str) -> ScoreTable:
    return {name: labels for name, labels in table.items() if name.startswith(prefix)}


def human_agreement(items: list[LabeledItem], rubric: Rubric) -> dict[str, dict]:
    """Per dimension, among `human:*` annotators: alpha, mean pairwise exact agreement and QWK, and n_items
    (items with at least two human labels)."""
    humans = _by_prefix(score_table(items, rubric), HUMAN_PREFIX)
    return {d.name: rater_agreement(humans, d.name, len(d.levels)) for d in rubric.dimensions}


def consensus(ratings: ScoreTable, dimension: str) -> dict[str, int]:
    """item -> consensus of all raters that labeled `dimension` on it: the label stage's rule (majority;
    a tie goes to the mean rounded half up), so human and judge consensus are built the same way."""
    per_item: dict[str, list[int]] = defaultdict(list)
    for labels in ratings.values():
        for item_id, scores in labels.items():
            if dimension in scores:
                per_item[item_id].append(scores[dimension])
    return {item_id: majority(values) for item_id, values in per_item.items()}


def judge_samples(items: list[LabeledItem], table: ScoreTable, rubric: Rubric) -> dict[str, ScoreTable]:
    """judge -> sample name -> item -> scores: `llm:<judge>#<k>` annotators if the judge has any, else the
    per-sample scores in `meta["samples"]` of the judge's items (a dict sample -> scores, or a list)."""
    by_name: dict[str, ScoreTable] = defaultdict(dict)
    for name, labels in _by_prefix(table, LLM_PREFIX).items():
        if SAMPLE_SEPARATOR in name:
            judge, k = name.split(SAMPLE_SEPARATOR, 1)
            by_name[judge][SAMPLE_SEPARATOR + k] = labels
    from_meta: dict[str, ScoreTable] = defaultdict(dict)
    for item in items:
        judge = item.annotator or ""
        if not judge.startswith(LLM_PREFIX) or SAMPLE_SEPARATOR in judge or judge in by_name:
            continue
        stored = item.meta.get("samples") or []  # the label stage writes {"0": scores, ...}; a list also works
        for k, sample in (stored.items() if isinstance(stored, dict) else enumerate(stored)):
            scores = {d: v for d, v in (sample or {}).items() if d in rubric.names and v is not None}
            try:
                rubric.check_scores(scores)
            except ValueError as err:
                raise DataError(f"item {item.id} ({judge}): meta.samples.{k}: {err}") from None
            from_meta[judge].setdefault(f"sample{k}", {})[item.id] = scores
    return {**from_meta, **by_name}


def judge_labels(table: ScoreTable, samples: dict[str, ScoreTable], rubric: Rubric) -> ScoreTable:
    """judge -> item -> scores: the judge's own label, or the consensus of its samples when it has none."""
    judges = {n: labels for n, labels in _by_prefix(table, LLM_PREFIX).items() if SAMPLE_SEPARATOR not in n}
    for judge, sample_table in samples.items():
        if judge in judges:
            continue
        merged: dict[str, dict[str, int]] = defaultdict(dict)
        for dim in rubric.names:
            for item_id, level in consensus(sample_table, dim).items():
                merged[item_id][dim] = level
        judges[judge] = dict(merged)
    return judges


def human_vs_judge(humans: ScoreTable, judge: dict[str, dict[str, int]], dimension: str, n_levels: int) -> dict:
    """One judge against the per-item human consensus (with the confusion matrix, rows = human), and its mean
    pairwise agreement with each human, which compares directly with the human-human pairwise mean."""
    reference = consensus(humans, dimension)
    shared = sorted(i for i in reference if dimension in judge.get(i, {}))
    human = [reference[i] for i in shared]
    llm = [judge[i][dimension] for i in shared]
    stats = pairwise_agreement(human, llm, n_levels)
    stats["confusion"] = confusion_matrix(human, llm, labels=list(range(n_levels))).tolist() if shared else None
    per_human = {}
    for name, labels in sorted(humans.items()):
        ids = sorted(i for i, s in labels.items() if dimension in s and dimension in judge.get(i, {}))
        pair = pairwise_agreement([labels[i][dimension] for i in ids], [judge[i][dimension] for i in ids], n_levels)
        if pair["n"]:
            per_human[name] = pair
    stats["vs_each_human"] = {"exact": _mean_of(per_human, "exact"), "qwk": _mean_of(per_human, "qwk"),
                              "n_humans": len(per_human), "pairs": per_human}
    return stats


def label_counts(table: ScoreTable, dimension: str, n_levels: int) -> dict[str, list[int]]:
    """annotator -> how often it gave each level; kappa and alpha read low when one level dominates."""
    return {
        name: np.bincount([s[dimension] for s in labels.values() if dimension in s], minlength=n_levels).tolist()
        for name, labels in sorted(table.items())
    }


def agreement_report(items: list[LabeledItem], rubric: Rubric) -> dict:
    """Everything the agreement report shows, per dimension, as plain JSON-ready data."""
    table = score_table(items, rubric)
    humans = _by_prefix(table, HUMAN_PREFIX)
    samples = judge_samples(items, table, rubric)
    judges = judge_labels(table, samples, rubric)
    dimensions = {}
    for dim in rubric.dimensions:
        n_levels = len(dim.levels)
        dimensions[dim.name] = {
            "n_levels": n_levels,
            "human_human": rater_agreement(humans, dim.name, n_levels),
            "human_llm": {j: human_vs_judge(humans, judges[j], dim.name, n_levels) for j in sorted(judges)},
            "llm_self": {
                j: rater_agreement(samples[j], dim.name, n_levels) for j in sorted(samples) if len(samples[j]) >= 2
            },
            "label_counts": label_counts(table, dim.name, n_levels),
        }
    return {
        "rubric": {"name": rubric.name, "hash": rubric.hash, "dimensions": rubric.names},
        "annotators": {name: len(labels) for name, labels in sorted(table.items())},
        "n_items": len({i for labels in table.values() for i in labels}),
        "human_reference": "per-item majority of human labels; ties go to the mean rounded half up",
        "dimensions": dimensions,
    }


def load_labels(paths: list[Path], rubric: Rubric) -> list[LabeledItem]:
    """Read every file; a label that does not fit the rubric is an error naming the file and line."""
    items = []
    for path in paths:
        file_items = read_labels_jsonl(path, check=rubric.check_item)  # a bad score or a clashing id names its lines
        try:
            score_table(file_items, rubric)  # an item labeled twice by one annotator
        except DataError as err:
            raise DataError(f"{path}: {err}") from None
        items.extend(file_items)
    return items


def parse_config(argv: list[str] | None) -> AgreementConfig:
    parser = ArgumentParser(
        prog="python -m annotation agreement", description=__doc__.split("\n")[0], conflict_handler="resolve"
    )
    add_arguments(parser, AgreementConfig)
    # several files after one flag; replaces the single-value flag add_arguments generated
    parser.add_argument(
        "--labels", dest="cfg:labels", nargs="+", metavar="FILE",
        help=AgreementConfig.model_fields["labels"].description,
    )
    args = parser.parse_args(argv)
    labels = getattr(args, "cfg:labels")
    if labels is not None:
        setattr(args, "cfg:labels", json.dumps(labels))  # build_config parses flag values as YAML
    return build_config(AgreementConfig, args)


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    from annotation.agreement_report import write_report

    config = parse_config(argv)
    rubric = load_rubric(config.rubric)
    items = load_labels(config.labels, rubric)
    report = agreement_report(items, rubric)
    for path in write_report(report, config.out):
        print(f"wrote {path}")
