"""`python -m hpc_rm.crossval --labels FILE --rubric R --folds 5 --out DIR`: grouped k-fold cross-validation of
the reward model (each head kind asked for) next to the TF-IDF + logistic regression baseline, on the same folds.

Folds are grouped (`meta.group`, e.g. the dialogue), so no context is in both train and test. Metrics are computed
on the pooled out-of-fold predictions; each fold's macro-F1, their mean and spread are reported too. With
`--leave-out KEY` there is one fold per value of `meta.KEY` instead (e.g. `origin`: train on MRBench's MathDial
dialogues, test on its Bridge ones, and the reverse), to see whether what the RM learned carries over. With
`--train.freeze-backbone true` the backbone's vectors are computed once and shared by all folds and heads.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from core.cli import ArgumentParser
from core.config import Config, Seed, add_arguments, build_config
from core.errors import exits_on_bad_input
from core.models import check_model_exists
from core.rubric import Rubric, load_rubric
from core.schema import DataError, LabeledItem, save_figure, write_json, write_text
from hpc_rm.baseline import TfidfBaseline, scores_and_levels
from hpc_rm.data import MISSING, folds_by_meta, group_ids, group_of, grouped_folds, label_matrix, read_labels
from hpc_rm.metrics import GROUP_PAIR_ACCURACY_NOTE, all_metrics
from core.reward_config import HeadKind
from hpc_rm.train import TrainConfig, build_model, train_reward_model


class CrossValConfig(Config):
    labels: Path | None = Field(None, description="interchange JSONL with human scores")
    annotator: str | None = Field(None, description="use only lines whose annotator starts with this")
    out: Path | None = Field(None, description="report folder")
    folds: int = Field(5, ge=2, description="number of grouped folds")
    leave_out: str | None = Field(None, description="meta key: one fold per value of it, trained on the other values "
                                                    "(e.g. 'origin', MRBench's mathdial/bridge), instead of --folds")
    split_seed: Seed = Field(0, description="seed of the fold assignment")
    heads: list[HeadKind] = Field(["ordinal", "regression"], description="head kinds to compare")
    quality_bar: float | None = Field(None, ge=0, le=1, description="draw this mean macro-F1 target on the plot")
    train: TrainConfig = Field(default_factory=TrainConfig,
                               description="how each fold's RM is trained (see configs/rm/crossval.yaml)")


class OutOfFold:
    """Collects each fold's test predictions into arrays over all items."""

    def __init__(self, rubric: Rubric, n: int):
        self.scores = {d: np.zeros(n) for d in rubric.names}
        self.levels = {d: np.zeros(n, dtype=np.int64) for d in rubric.names}
        self.fold_f1: list[float] = []
        self.fold_dimension_f1: list[dict[str, float]] = []
        self.proba: dict[str, np.ndarray] = {}  # per-level probabilities, for systems that have them

    def add(self, rubric: Rubric, test_idx, truth, scores, levels, proba=None) -> None:
        for d in rubric.names:
            self.scores[d][test_idx] = scores[d]
            self.levels[d][test_idx] = levels[d]
            if proba is not None:
                self.proba.setdefault(d, np.zeros((len(self.levels[d]), proba[d].shape[1])))[test_idx] = proba[d]
        fold = all_metrics(rubric, truth[test_idx], levels, scores)
        self.fold_f1.append(fold["mean"]["macro_f1"])
        self.fold_dimension_f1.append({d: fold["dimensions"][d]["macro_f1"] for d in rubric.names})

    def report(self, rubric: Rubric, truth: np.ndarray, groups: np.ndarray, seconds: float) -> dict:
        report = all_metrics(rubric, truth, self.levels, self.scores, groups)
        report["fold_mean_macro_f1"] = float(np.mean(self.fold_f1))
        report["fold_std_macro_f1"] = float(np.std(self.fold_f1))
        report["fold_macro_f1"] = self.fold_f1
        report["fold_dimension_macro_f1"] = self.fold_dimension_f1
        report["seconds"] = round(seconds, 1)
        return report


def shared_pooled(train_cfg: TrainConfig, rubric: Rubric, items: list[LabeledItem], cache_dir: Path) -> torch.Tensor:
    """Frozen-backbone vectors of all items, computed once and cached on disk (keyed by backbone and inputs)."""
    digest = hashlib.sha256(
        f"{train_cfg.backbone}|{train_cfg.pooling}|{train_cfg.max_length}|{train_cfg.max_response_tokens}|"
        f"{train_cfg.read_context}".encode())
    for item in items:
        digest.update(f"\0{item.id}\0{item.context}\0{item.response}".encode())
    key = digest.hexdigest()[:16]
    path = cache_dir / f"pooled-{key}.pt"
    if path.exists():
        return torch.load(path)
    rm = build_model(train_cfg, rubric)
    pooled = rm.embed_pairs([i.context for i in items], [i.response for i in items],
                            batch_size=train_cfg.batch_size, progress=train_cfg.progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(pooled, tmp)
    tmp.replace(path)
    return pooled


def make_folds(cfg: CrossValConfig,
               items: list[LabeledItem]) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]:
    """(fold names, (train, test) index pairs): one fold per value of meta[cfg.leave_out], else grouped k-fold."""
    if cfg.leave_out:
        return folds_by_meta(items, cfg.leave_out)
    folds = grouped_folds(items, cfg.folds, cfg.split_seed)
    return [str(k) for k in range(len(folds))], folds


def cross_validate(cfg: CrossValConfig, items: list[LabeledItem], rubric: Rubric, work_dir: Path,
                   predictions_path: Path | None = None, folds: tuple[list[str], list] | None = None) -> dict:
    """{'tfidf': report, 'rm_<head>': report, 'rm_ordinal+tfidf': report, ...} on the same folds (`folds`: what
    make_folds returned, made from cfg when None).

    'rm_ordinal+tfidf' averages the two models' per-level probabilities (equal weights, nothing tuned): it shows
    how much of what TF-IDF gets right the RM misses."""
    truth, groups = label_matrix(items, rubric), group_ids(items)
    names, folds = folds or make_folds(cfg, items)
    results = {"folds": [{"name": name, "test_items": len(test_idx)} for name, (_, test_idx) in zip(names, folds)]}
    oofs = {}
    start = time.time()
    baseline = OutOfFold(rubric, len(items))
    tfidf_proba = {d.name: np.zeros((len(items), d.max_score + 1)) for d in rubric.dimensions}
    for train_idx, test_idx in folds:
        model = TfidfBaseline(rubric, seed=cfg.train.seed).fit([items[i] for i in train_idx])
        proba = model.predict_proba([items[i] for i in test_idx])
        for d in rubric.names:
            tfidf_proba[d][test_idx] = proba[d]
        baseline.add(rubric, test_idx, truth, *scores_and_levels(proba), proba)
    oofs["tfidf"] = baseline
    results["tfidf"] = baseline.report(rubric, truth, groups, time.time() - start)

    pooled = None
    if cfg.train.freeze_backbone:
        start = time.time()
        pooled = shared_pooled(cfg.train, rubric, items, work_dir / "cache")
        results["embedding_seconds"] = round(time.time() - start, 1)
    for head in cfg.heads:
        start = time.time()
        train_cfg = cfg.train.model_copy(update={"head": head, "resume": False, "checkpoints": False})
        oof, blend = OutOfFold(rubric, len(items)), OutOfFold(rubric, len(items))
        for k, (train_idx, test_idx) in enumerate(folds):
            fold_items = [items[i] for i in train_idx]
            fold_pooled = pooled[train_idx] if pooled is not None else None
            rm = train_reward_model(train_cfg, fold_items, rubric, work_dir / f"ckpt-{head}-fold{k}", fold_pooled)
            if pooled is not None:
                outputs = rm.pooled_outputs(pooled[test_idx])
            else:
                test = [items[i] for i in test_idx]
                outputs = rm.predict_outputs([i.context for i in test], [i.response for i in test])
            rm_proba = {d: outputs[d].softmax(-1).numpy() for d in rubric.names} if head == "ordinal" else None
            oof.add(rubric, test_idx, truth, *rm.readout(outputs), rm_proba)
            if head == "ordinal":
                mixed = {d: (rm_proba[d] + tfidf_proba[d][test_idx]) / 2 for d in rubric.names}
                blend.add(rubric, test_idx, truth, *scores_and_levels(mixed), mixed)
        oofs[f"rm_{head}"] = oof
        results[f"rm_{head}"] = oof.report(rubric, truth, groups, time.time() - start)
        if head == "ordinal":
            oofs["rm_ordinal+tfidf"] = blend
            results["rm_ordinal+tfidf"] = blend.report(rubric, truth, groups, time.time() - start)
    if predictions_path is not None:
        write_oof_predictions(predictions_path, items, truth, folds, oofs, rubric)
    return results


def write_oof_predictions(path: Path, items: list[LabeledItem], truth: np.ndarray, folds,
                          oofs: dict[str, OutOfFold], rubric: Rubric) -> Path:
    """One JSON line per item: its fold, the context it answers (`group`), human levels, and each system's
    out-of-fold level, score and per-level probabilities, so readouts and blends can be studied without retraining."""
    fold_of = {int(i): k for k, (_, test_idx) in enumerate(folds) for i in test_idx}
    lines = []
    for n, item in enumerate(items):
        human = {d: (None if truth[n, j] == MISSING else int(truth[n, j])) for j, d in enumerate(rubric.names)}
        line = {"id": item.id, "fold": fold_of[n], "group": group_of(item), "human": human}
        for system, oof in oofs.items():
            line[system] = {d: {"level": int(oof.levels[d][n]), "score": round(float(oof.scores[d][n]), 5),
                                **({"proba": [round(float(p), 5) for p in oof.proba[d][n]]} if d in oof.proba else {})}
                            for d in rubric.names}
        lines.append(json.dumps(line))
    write_text(path, "\n".join(lines) + "\n")
    return path


def cv_markdown(results: dict, rubric: Rubric, cfg: CrossValConfig, n_items: int) -> str:
    systems = [k for k in results if k == "tfidf" or k.startswith("rm_")]
    folds = results["folds"]
    title = (f"Leave-one-`{cfg.leave_out}`-out cross-validation ({', '.join(f['name'] for f in folds)})"
             if cfg.leave_out else f"{len(folds)}-fold grouped cross-validation")
    lines = [
        f"# {title}: reward model vs TF-IDF",
        "",
        f"{n_items} items, rubric `{rubric.name}`, backbone `{cfg.train.backbone}`, "
        f"frozen backbone: {cfg.train.freeze_backbone}, head hidden width {cfg.train.head_hidden}, "
        f"epochs {cfg.train.epochs}, max length {cfg.train.max_length}, class weighting "
        f"`{cfg.train.class_weighting}`. Metrics on pooled out-of-fold predictions.",
        "",
        "## Macro-F1 per dimension",
        "",
        "| dimension | " + " | ".join(systems) + " |",
        "|---|" + "---|" * len(systems),
    ]
    for name in rubric.names:
        lines.append(f"| {name} | " + " | ".join(
            f"{results[s]['dimensions'][name]['macro_f1']:.3f}" for s in systems) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{results[s]['mean']['macro_f1']:.3f}**" for s in systems) + " |")
    lines.append("| fold mean ± sd | " + " | ".join(
        f"{results[s]['fold_mean_macro_f1']:.3f} ± {results[s]['fold_std_macro_f1']:.3f}" for s in systems) + " |")
    lines += ["", "## Mean over dimensions", "",
              "| system | macro-F1 | QWK | Spearman | accuracy | MAE | pairs ordered within a context | seconds |",
              "|---|---|---|---|---|---|---|---|"]
    for s in systems:
        m = results[s]["mean"]
        pairs = f"{m['group_pair_accuracy']:.3f}" if "group_pair_accuracy" in m else "–"
        lines.append(f"| {s} | {m['macro_f1']:.3f} | {m['qwk']:.3f} | {m['spearman']:.3f} | {m['accuracy']:.3f} | "
                     f"{m['mae']:.3f} | {pairs} | {results[s]['seconds']} |")
    lines += ["", GROUP_PAIR_ACCURACY_NOTE, "", "## Mean macro-F1 per test fold", "",
              f"| {cfg.leave_out or 'fold'} held out | test items | " + " | ".join(systems) + " |",
              "|---|---|" + "---|" * len(systems)]
    lines += [f"| {fold['name']} | {fold['test_items']} | " + " | ".join(
        f"{results[s]['fold_macro_f1'][k]:.3f}" for s in systems) + " |" for k, fold in enumerate(folds)]
    if "embedding_seconds" in results:
        lines += ["", f"Backbone vectors computed once for all folds and heads in {results['embedding_seconds']} s."]
    return "\n".join(lines) + "\n"


def plot_cv(results: dict, rubric: Rubric, path: Path, bar: float | None = None) -> Path:
    """Macro-F1 per dimension and mean for each system: bars = pooled out-of-fold, whiskers = fold min..max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [k for k in results if k == "tfidf" or k.startswith("rm_")]
    names = rubric.names + ["mean"]
    width = 0.8 / len(systems)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 4))
    for k, system in enumerate(systems):
        r = results[system]
        pooled = [r["dimensions"][d]["macro_f1"] for d in rubric.names] + [r["mean"]["macro_f1"]]
        folds = np.array([[f[d] for d in rubric.names] + [m] for f, m in
                          zip(r["fold_dimension_macro_f1"], r["fold_macro_f1"])])
        x = np.arange(len(names)) + (k - (len(systems) - 1) / 2) * width
        err = np.vstack([np.maximum(pooled - folds.min(0), 0), np.maximum(folds.max(0) - pooled, 0)])
        ax.bar(x, pooled, width, yerr=err, capsize=3, label=system)
    if bar is not None:
        ax.axhline(bar, color="black", linestyle="--", linewidth=1, label=f"quality bar {bar}")
    ax.set_xticks(np.arange(len(names)), [n.replace("_", "\n") for n in names])
    ax.set_ylabel("macro-F1 (whiskers: fold range)")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Grouped cross-validation on human labels")
    return save_figure(fig, path)


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m hpc_rm.crossval", description=__doc__.split("\n\n")[0])
    add_arguments(parser, CrossValConfig)
    cfg = build_config(CrossValConfig, parser.parse_args(argv))
    if cfg.labels is None or cfg.out is None:
        parser.error("--labels and --out are required")
    check_model_exists(cfg.train.backbone)
    rubric = load_rubric(cfg.train.rubric)
    items = read_labels(cfg.labels, rubric, cfg.annotator)
    try:  # a split that cannot be made (a missing meta key, too few groups) fails here, before any training
        folds = make_folds(cfg, items)
    except ValueError as err:
        raise DataError(f"{cfg.labels}: {err}") from None
    results = cross_validate(cfg, items, rubric, cfg.out / "work", cfg.out / "oof_predictions.jsonl", folds)
    results["config"] = cfg.model_dump(mode="json")
    write_json(cfg.out / "crossval.json", results)
    text = cv_markdown(results, rubric, cfg, len(items))
    plot_cv(results, rubric, cfg.out / "crossval.png", cfg.quality_bar)
    write_text(cfg.out / "crossval.md", text + "\n![macro-F1 per dimension](crossval.png)\n")
    print(text)


if __name__ == "__main__":
    main()
