"""`python -m annotation label`: label responses on a rubric with one or more LLM judges, several samples each.

Every raw answer goes to the append-only `DIR/raw.jsonl`, keyed by (item id, rubric hash, judge, sample).
A rerun skips keys already there (failed ones too, unless `--retry-failed true`), so a stopped run resumes
without repeating a call or losing a label. From the raw log it then rebuilds:
  DIR/labels.jsonl  one interchange line per (item, judge), annotator `llm:<judge>`: per-dimension majority
                    over samples (ties -> rounded mean), with the mean and the per-sample scores in meta;
                    plus `llm:ensemble` (majority over the judges' labels) when there are several judges
  DIR/summary.json  calls, failures, retries, tokens and time per judge (also printed)
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, field_validator
from scipy.stats import rankdata
from tqdm import tqdm

from core.config import Config, ConfigError, run_cli
from core.judges import Judge, JudgeJob, RawLabel, build_judges
from core.rubric import Rubric, load_rubric, majority
from core.schema import AppendLog, DataError, LabeledItem, read_jsonl, write_json, write_jsonl

ENSEMBLE = "ensemble"


class LabelConfig(Config):
    items: Path | None = Field(None, description="LabeledItem JSONL to label (e.g. written by `annotation generate`)")
    out: Path | None = Field(None, description="output folder for raw.jsonl, labels.jsonl and summary.json")
    rubric: str = Field("hpc", description="rubric name in configs/rubrics/ or a YAML path")
    judges: list[str] = Field(
        default_factory=lambda: ["local"],
        description="judge specs, comma-separated: a name in configs/judges/ or a YAML path, "
        "optionally with ?key=value&... overrides (e.g. 'local,openai' or 'local?model=/my/model')",
    )
    samples: int = Field(1, ge=1, description="samples per item and judge (for self-consistency)")
    limit: int | None = Field(None, ge=1, description="label only the first N items (quick checks)")
    retry_failed: bool = Field(False, description="run keys recorded as failed in raw.jsonl again")
    calibration: Literal["none", "rank"] = Field(
        "none", description="none: levels are the judge's majority vote; rank: levels from the rank of each item's "
        "mean expected score among all items (per judge and dimension), cut at `calibration_shares`, for judges "
        "that put nearly everything in one level (the vote stays in meta.majority)")
    calibration_shares: list[NonNegativeFloat] | None = Field(
        None, description="share of items per level for calibration=rank, lowest level first (None: equal shares)")

    @field_validator("judges", mode="before")
    @classmethod
    def _split_specs(cls, value):
        if isinstance(value, str):
            return [part.strip() for part in value.replace(" ", ",").split(",") if part.strip()]
        return value


def combine(score_sets: list[dict[str, int]], names: list[str]) -> tuple[dict[str, int], dict[str, float]]:
    """Per-dimension majority and mean over several score dicts."""
    scores = {n: majority([s[n] for s in score_sets]) for n in names}
    means = {n: round(sum(s[n] for s in score_sets) / len(score_sets), 4) for n in names}
    return scores, means


def latest_labels(log: AppendLog, rubric: Rubric) -> dict[tuple, RawLabel]:
    """The last record per key for this rubric (a retried failure is superseded by its rerun)."""
    latest = {}
    for record in log.records():
        raw = RawLabel.model_validate(record)
        if raw.rubric_hash == rubric.hash:
            latest[raw.key] = raw
    return latest


def aggregate(items: list[LabeledItem], raws: dict[tuple, RawLabel], rubric: Rubric,
              judge_names: list[str], samples: int) -> list[LabeledItem]:
    out = []
    for item in items:
        per_judge = {}
        for name in judge_names:
            found = [raws.get((item.id, rubric.hash, name, s)) for s in range(samples)]
            ok = [r for r in found if r is not None and r.status == "ok"]
            if not ok:
                continue
            scores, means = combine([r.scores for r in ok], rubric.names)
            per_judge[name] = scores
            meta = {**item.meta, "judge": name, "rubric": rubric.name, "rubric_hash": rubric.hash, "mean": means,
                    "samples": {str(r.sample): r.scores for r in ok},
                    "n_failed": sum(r is not None and r.status == "failed" for r in found)}
            if all(r.expected for r in ok):
                meta["expected"] = {n: round(sum(r.expected[n] for r in ok) / len(ok), 4) for n in rubric.names}
            out.append(item.model_copy(update={"scores": scores, "annotator": f"llm:{name}", "meta": meta}))
        if len(judge_names) > 1 and per_judge:
            scores, means = combine(list(per_judge.values()), rubric.names)
            meta = {**item.meta, "judge": ENSEMBLE, "rubric": rubric.name, "rubric_hash": rubric.hash,
                    "mean": means, "judges": per_judge}
            out.append(item.model_copy(update={"scores": scores, "annotator": f"llm:{ENSEMBLE}", "meta": meta}))
    return out


def rank_levels(values: np.ndarray, shares: list[float]) -> np.ndarray:
    """Levels by rank: the lowest shares[0] of the values get level 0, the next shares[1] level 1, ..."""
    percentile = (rankdata(values, method="average") - 0.5) / len(values)
    cuts = np.cumsum(shares)[:-1] / sum(shares)
    return np.searchsorted(cuts, percentile, side="right")


def calibrate_by_rank(labels: list[LabeledItem], rubric: Rubric, shares: list[float] | None) -> list[LabeledItem]:
    """Replace each judge's levels by rank-calibrated ones (see LabelConfig.calibration); re-vote the ensemble."""
    judged = [x for x in labels if x.annotator != f"llm:{ENSEMBLE}"]
    missing = [x.id for x in judged if "expected" not in x.meta]
    if missing:
        raise ValueError(f"calibration=rank needs expected scores (local judge); item {missing[0]} has none")
    for dim in rubric.dimensions:
        level_shares = shares or [1.0] * len(dim.levels)
        if len(level_shares) != len(dim.levels):
            raise ValueError(f"calibration_shares: {dim.name} has {len(dim.levels)} levels, got {len(level_shares)}")
        for judge in {x.annotator for x in judged}:
            rows = [x for x in judged if x.annotator == judge]
            levels = rank_levels(np.array([x.meta["expected"][dim.name] for x in rows]), level_shares)
            for row, level in zip(rows, levels):
                row.meta.setdefault("majority", dict(row.scores))
                row.scores[dim.name] = int(level)
    votes = defaultdict(list)
    for row in judged:
        votes[row.id].append(row.scores)
    out = []
    for x in labels:
        if x.annotator == f"llm:{ENSEMBLE}":
            scores, means = combine(votes[x.id], rubric.names)
            x = x.model_copy(update={"scores": scores, "meta": {**x.meta, "mean": means}})
        out.append(x)
    return out


def load_items(path: Path, limit: int | None) -> list[LabeledItem]:
    items = read_jsonl(path, LabeledItem)[:limit]
    seen = set()
    for item in items:
        if item.id in seen:
            raise DataError(f"{path}: field id: {item.id!r} occurs twice; ids must be unique")
        seen.add(item.id)
    return items


def run_judge(judge: Judge, items: list[LabeledItem], rubric: Rubric, samples: int, log: AppendLog,
              done: set[tuple]) -> dict:
    jobs = [JudgeJob(item, s) for item in items for s in range(samples)
            if (item.id, rubric.hash, judge.name, s) not in done]
    counts = Counter()
    began = time.perf_counter()
    with tqdm(total=len(jobs), desc=f"label {judge.name}", unit="label") as bar:
        def record(raw: RawLabel) -> None:
            log.append(raw)
            counts[raw.status] += 1
            bar.update(1)

        judge.label(jobs, rubric, record)
    seconds = time.perf_counter() - began
    return {"labels_run": len(jobs), "ok": counts["ok"], "failed": counts["failed"],
            "skipped_done": len(items) * samples - len(jobs), "seconds": round(seconds, 2),
            "labels_per_s": round(len(jobs) / seconds, 3) if jobs and seconds else None,
            **{k: round(v, 2) if isinstance(v, float) else v for k, v in judge.stats.items()}}


def run_label(config: LabelConfig) -> dict:
    if config.items is None or config.out is None:
        raise ConfigError("fields items and out: give --items FILE and --out DIR (or set them in the config file)")
    began = time.perf_counter()
    items = load_items(config.items, config.limit)
    rubric = load_rubric(config.rubric)
    judges = build_judges(config.judges)
    out = Path(config.out)
    with AppendLog(out / "raw.jsonl") as log:
        done = {key for key, raw in latest_labels(log, rubric).items()
                if raw.status == "ok" or not config.retry_failed}
        per_judge = {judge.name: run_judge(judge, items, rubric, config.samples, log, done) for judge in judges}
        raws = latest_labels(log, rubric)
    labels = aggregate(items, raws, rubric, [j.name for j in judges], config.samples)
    if config.calibration == "rank":
        labels = calibrate_by_rank(labels, rubric, config.calibration_shares)
    write_jsonl(out / "labels.jsonl", labels)
    summary = {
        "items": len(items), "rubric": rubric.name, "rubric_hash": rubric.hash, "samples": config.samples,
        "judges": per_judge, "labels_written": len(labels),
        "unlabeled_item_judge_pairs": len(items) * len(judges)
        - sum(label.annotator != f"llm:{ENSEMBLE}" for label in labels),
        "seconds": round(time.perf_counter() - began, 2),
    }
    write_json(out / "summary.json", summary)
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"labeled {summary['items']} items on rubric {summary['rubric']} ({summary['rubric_hash']}), "
             f"{summary['samples']} sample(s), {summary['seconds']} s; {summary['labels_written']} label lines, "
             f"{summary['unlabeled_item_judge_pairs']} (item, judge) pairs without a label"]
    for name, stats in summary["judges"].items():
        lines.append(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    _, summary = run_cli(LabelConfig, argv, "python -m annotation label", __doc__, run_label)
    print(format_summary(summary))
