"""`python -m hpc_rm.crossval_seeds --runs DIR DIR ... --out DIR`: how far a cross-validation result moves with
the training seed, and what averaging the seeds' reward models gives.

Each DIR is the output of `python -m hpc_rm.crossval` on the same labels and folds with the same training config
except `train.seed`. From each run's crossval.json and oof_predictions.jsonl this writes seeds.md, seeds.json and
seeds.png: every seed's macro-F1 per dimension, their mean and standard deviation, and the ensemble that averages
the seeds' out-of-fold level probabilities. The ensemble's levels are read like a single RM's: the argmax of the
log-probabilities plus the per-level shift that training sets from each fold's training labels. When the
predictions name each item's context (`group`, written by crossval), every row also gives the pairs ordered within
a context (`hpc_rm.metrics.within_group_pair_accuracy`, mean over dimensions).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from core.cli import ArgumentParser
from core.errors import exits_on_bad_input
from core.rubric import Rubric, load_rubric
from core.schema import DataError, iter_jsonl, save_figure, write_json, write_text
from hpc_rm.baseline import scores_and_levels
from hpc_rm.data import MISSING, level_logit_shift
from hpc_rm.metrics import GROUP_PAIR_ACCURACY_NOTE, all_metrics

SYSTEM = "rm_ordinal"  # the head kind that has level probabilities


class OofLine(BaseModel):
    """The fields of an oof_predictions.jsonl line this reads (a line names its file, line and field if one lacks)."""

    model_config = ConfigDict(extra="allow")
    id: str
    fold: int
    human: dict[str, int | None]
    rm_ordinal: dict[str, dict]


def _read_run(run: Path) -> tuple[dict, list[dict]]:
    for name in ("crossval.json", "oof_predictions.jsonl"):
        if not (run / name).exists():
            raise DataError(f"{run / name}: missing; is {run} an output folder of python -m hpc_rm.crossval?")
    try:
        report = json.loads((run / "crossval.json").read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{run / 'crossval.json'}:{err.lineno}: not valid JSON ({err.msg})") from None
    if SYSTEM not in report:
        raise DataError(f"{run / 'crossval.json'}: no '{SYSTEM}' system (run crossval with the ordinal head)")
    lines = [line.model_dump() for line in iter_jsonl(run / "oof_predictions.jsonl", OofLine)]
    return report, lines


# What may differ between seed runs: the seed, how training is logged, where the labels and the report live (the
# labels themselves are compared item by item).
FREE_FIELDS = {"train.seed", "train.progress", "train.logging_steps", "out", "labels"}


def _comparable(config: dict) -> dict:
    """The config flattened to 'train.x' / 'x' keys, without FREE_FIELDS."""
    flat = {f"train.{k}": v for k, v in config.get("train", {}).items()}
    flat.update({k: v for k, v in config.items() if k != "train"})
    return {k: v for k, v in flat.items() if k not in FREE_FIELDS}


def check_same_experiment(runs: list[Path], reports: list[dict], oofs: list[list[dict]]) -> None:
    """Raise if two runs differ in anything but the training seed: config, items, human labels or folds."""
    first = _comparable(reports[0]["config"])
    seeds = [r["config"]["train"]["seed"] for r in reports]
    if len(set(seeds)) < len(seeds):
        raise DataError(f"runs share a training seed ({seeds}); give runs made with different --train.seed")
    for run, report, oof in zip(runs[1:], reports[1:], oofs[1:]):
        other = _comparable(report["config"])
        differ = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
        if differ:
            raise DataError(f"{run}: config differs from {runs[0]} in {', '.join(differ)} (only train.seed may)")
        if [(x["id"], x["fold"], x["human"]) for x in oof] != [(x["id"], x["fold"], x["human"]) for x in oofs[0]]:
            raise DataError(f"{run / 'oof_predictions.jsonl'}: items, human labels or folds differ from {runs[0]}")


def _truth(rubric: Rubric, lines: list[dict]) -> np.ndarray:
    return np.array([[MISSING if x["human"][d] is None else x["human"][d] for d in rubric.names] for x in lines])


def _groups(lines: list[dict]) -> np.ndarray | None:
    """Which context each item answers, as ints; None for predictions written before crossval recorded it."""
    if not all("group" in x for x in lines):
        return None
    return np.unique([x["group"] for x in lines], return_inverse=True)[1]


def system_pair_accuracy(rubric: Rubric, lines: list[dict], system: str) -> float | None:
    """Mean over dimensions of a system's within-context pair accuracy, from its out-of-fold scores."""
    groups = _groups(lines)
    if groups is None:
        return None
    levels = {d: np.array([x[system][d]["level"] for x in lines]) for d in rubric.names}
    scores = {d: np.array([x[system][d]["score"] for x in lines]) for d in rubric.names}
    return all_metrics(rubric, _truth(rubric, lines), levels, scores, groups)["mean"].get("group_pair_accuracy")


def ensemble_report(rubric: Rubric, oofs: list[list[dict]], class_weighting: str, rare_level_boost: float) -> dict:
    """Metrics of the seeds' averaged level probabilities, levels read with each fold's training-label shift."""
    lines = oofs[0]
    truth = _truth(rubric, lines)
    fold = np.array([x["fold"] for x in lines])
    probas = {d: np.mean([[x[SYSTEM][d]["proba"] for x in oof] for oof in oofs], axis=0) for d in rubric.names}
    scores, _ = scores_and_levels(probas)
    levels = {}
    for j, dim in enumerate(rubric.dimensions):
        logp = np.log(np.clip(probas[dim.name], 1e-12, None))
        levels[dim.name] = np.zeros(len(lines), dtype=np.int64)
        for k in np.unique(fold):
            shift = level_logit_shift(truth[fold != k, j], len(dim.levels), class_weighting, rare_level_boost)
            levels[dim.name][fold == k] = (logp[fold == k] + np.array(shift)).argmax(1)
    return all_metrics(rubric, truth, levels, scores, _groups(lines))


def summarize_seeds(runs: list[Path]) -> dict:
    runs = [Path(r) for r in runs]
    reports, oofs = zip(*(_read_run(r) for r in runs))
    check_same_experiment(runs, list(reports), list(oofs))
    train = reports[0]["config"]["train"]
    rubric = load_rubric(train["rubric"])
    per_seed = [{"seed": r["config"]["train"]["seed"], "run": str(run), "macro_f1": r[SYSTEM]["mean"]["macro_f1"],
                 "dimensions": {d: r[SYSTEM]["dimensions"][d]["macro_f1"] for d in rubric.names},
                 "group_pair_accuracy": system_pair_accuracy(rubric, oof, SYSTEM)}
                for run, r, oof in zip(runs, reports, oofs)]
    f1 = np.array([s["macro_f1"] for s in per_seed])
    pairs = [s["group_pair_accuracy"] for s in per_seed]
    pairs = pairs if None not in pairs else []  # a mean over some of the seeds would read as over all
    ensemble = ensemble_report(rubric, list(oofs), train["class_weighting"], train["rare_level_boost"])
    return {
        "rubric": rubric.name, "backbone": train["backbone"], "per_seed": per_seed,
        "mean_macro_f1": float(f1.mean()), "sd_macro_f1": float(f1.std(ddof=1)) if len(f1) > 1 else 0.0,
        "dimension_mean": {d: float(np.mean([s["dimensions"][d] for s in per_seed])) for d in rubric.names},
        "mean_group_pair_accuracy": float(np.mean(pairs)) if pairs else None,
        "sd_group_pair_accuracy": float(np.std(pairs, ddof=1)) if len(pairs) > 1 else None,
        "ensemble": ensemble,
        "tfidf": {"macro_f1": reports[0]["tfidf"]["mean"]["macro_f1"],
                  "dimensions": {d: reports[0]["tfidf"]["dimensions"][d]["macro_f1"] for d in rubric.names},
                  "group_pair_accuracy": system_pair_accuracy(rubric, oofs[0], "tfidf")},
        "quality_bar": reports[0]["config"].get("quality_bar"),
    }


def seeds_markdown(summary: dict) -> str:
    dims = list(summary["dimension_mean"])
    n = len(summary["per_seed"])
    with_pairs = summary.get("mean_group_pair_accuracy") is not None

    def row(name: str, values: dict[str, float], mean: str, pairs: float | str | None) -> str:
        pairs = "" if not with_pairs else f" {pairs:.3f} |" if isinstance(pairs, float) else f" {pairs or 'n/a'} |"
        return f"| {name} | " + " | ".join(f"{values[d]:.3f}" for d in dims) + f" | {mean} |" + pairs

    pairs_header = " pairs ordered within a context |" if with_pairs else ""
    lines = [f"# Cross-validation over {n} training seeds: `{summary['backbone']}` reward model", "",
             "Pooled out-of-fold macro-F1 per dimension; each seed is a full cross-validation run on the same folds.",
             "", "| system | " + " | ".join(dims) + " | mean |" + pairs_header,
             "|---|" + "---|" * (len(dims) + 1 + with_pairs)]
    for s in summary["per_seed"]:
        lines.append(row(f"seed {s['seed']}", s["dimensions"], f"{s['macro_f1']:.3f}", s.get("group_pair_accuracy")))
    spread = (f"**{summary['mean_group_pair_accuracy']:.3f} ± {summary['sd_group_pair_accuracy']:.3f}**"
              if with_pairs else None)
    lines.append(row(f"mean of {n} seeds", summary["dimension_mean"],
                     f"**{summary['mean_macro_f1']:.3f} ± {summary['sd_macro_f1']:.3f}** (sd)", spread))
    ens = summary["ensemble"]
    lines.append(row(f"ensemble of {n} (probabilities averaged)", {d: ens["dimensions"][d]["macro_f1"] for d in dims},
                     f"**{ens['mean']['macro_f1']:.3f}**", ens["mean"].get("group_pair_accuracy")))
    lines.append(row("TF-IDF + LR", summary["tfidf"]["dimensions"], f"{summary['tfidf']['macro_f1']:.3f}",
                     summary["tfidf"].get("group_pair_accuracy")))
    if with_pairs:
        lines += ["", GROUP_PAIR_ACCURACY_NOTE]
    if summary.get("quality_bar") is not None:
        lines += ["", f"Quality bar: {summary['quality_bar']}."]
    return "\n".join(lines) + "\n"


def plot_seeds(summary: dict, path: Path) -> Path:
    """Macro-F1 per dimension and mean: one dot per seed, a wide tick for the ensemble and one for TF-IDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = list(summary["dimension_mean"])
    names = dims + ["mean"]
    x = np.arange(len(names))
    ens = summary["ensemble"]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 4))
    ax.plot(x, [ens["dimensions"][d]["macro_f1"] for d in dims] + [ens["mean"]["macro_f1"]], "_", color="tab:purple",
            markersize=30, markeredgewidth=3, label=f"ensemble of {len(summary['per_seed'])} seeds")
    for k, s in enumerate(summary["per_seed"]):
        ax.plot(x + (k - (len(summary["per_seed"]) - 1) / 2) * 0.08,
                [s["dimensions"][d] for d in dims] + [s["macro_f1"]], "o", label=f"seed {s['seed']}")
    ax.plot(x, [summary["tfidf"]["dimensions"][d] for d in dims] + [summary["tfidf"]["macro_f1"]], "k_",
            markersize=22, label="TF-IDF + LR")
    if summary.get("quality_bar") is not None:
        ax.axhline(summary["quality_bar"], color="black", linestyle="--", linewidth=1, label="quality bar")
    ax.set_xticks(x, [n.replace("_", "\n") for n in names])
    ax.set_ylabel("macro-F1 (pooled out-of-fold)")
    shown = np.concatenate([line.get_ydata() for line in ax.lines])
    low, high = float(shown.min()), float(shown.max())
    ax.set_ylim(max(0.0, low - 0.1), min(1.0, high + 0.1))  # zoomed: the seed spread is a few hundredths
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Seed spread of the cross-validated reward model")
    return save_figure(fig, path)


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m hpc_rm.crossval_seeds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, type=Path,
                        help="output folders of python -m hpc_rm.crossval that differ only in --train.seed")
    parser.add_argument("--out", required=True, type=Path, help="folder for seeds.md, seeds.json and seeds.png")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("--runs needs at least two cross-validation folders")
    summary = summarize_seeds(args.runs)
    write_json(args.out / "seeds.json", summary)
    plot_seeds(summary, args.out / "seeds.png")
    text = seeds_markdown(summary)
    write_text(args.out / "seeds.md", text + "\n![macro-F1 per seed](seeds.png)\n")
    print(text)


if __name__ == "__main__":
    main()
