"""`python -m hpc_rm consistency --human FILE --llm FILE --rubric R --out DIR`: the EduAlign experiment, checked.

For each seed: a grouped split of the items both files label; one RM trained on the human labels and one on the
LLM labels of the same training items; both (and a TF-IDF baseline on each label set) evaluated on the held-out
HUMAN labels; the two RMs' agreement with each other; the LLM labels' own agreement with the humans; biases
(each head's correlation with response length, next to the human labels' own; the score shift when the same
response is shown with another student's profile). Mean and spread over seeds; Markdown + JSON + PNG.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from pydantic import Field

from core.cli import ArgumentParser
from core.config import Config, Seed, add_arguments, build_config
from core.errors import exits_on_bad_input
from core.models import check_model_exists
from core.rubric import Rubric, load_rubric, majority
from core.schema import DataError, LabeledItem, write_json, write_text
from hpc_rm.baseline import TfidfBaseline
from hpc_rm.bias import length_correlation, profile_shift, swapped_contexts
from hpc_rm.consistency_report import consistency_markdown, plot_consistency, summarise_seeds
from hpc_rm.crossval import shared_pooled
from hpc_rm.data import MISSING, group_ids, grouped_split, label_matrix, read_labels
from hpc_rm.metrics import all_metrics
from hpc_rm.train import TrainConfig, train_reward_model


class ConsistencyConfig(Config):
    human: Path | None = Field(None, description="human labels (interchange JSONL, or the MRBench .json)")
    llm: Path | None = Field(None, description="LLM labels of the same items (e.g. `annotation label` labels.jsonl)")
    out: Path | None = Field(None, description="report folder")
    seeds: list[Seed] = Field([0, 1, 2], min_length=1,
                              description="seeds (split, init, shuffling); at least 3 for a spread")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of groups held out for the human-label test")
    train: TrainConfig = Field(default_factory=TrainConfig,
                               description="how each RM is trained (see configs/rm/consistency.yaml)")


def llm_consensus(llm_items: list[LabeledItem], rubric: Rubric) -> dict[str, dict[str, int]]:
    """item id -> dimension -> majority over every LLM line for that item (several judges or samples)."""
    votes: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for item in llm_items:
        for name, value in (item.scores or {}).items():
            if name in rubric.names:
                votes[item.id][name].append(value)
    return {i: {d: majority(v) for d, v in dims.items()} for i, dims in votes.items()}


def paired_items(human: list[LabeledItem], llm: dict[str, dict[str, int]]) -> tuple[list[LabeledItem], list[LabeledItem]]:
    """Items labeled by both, once each: (human-labeled, the same items with LLM scores)."""
    seen, human_rows, llm_rows = set(), [], []
    for item in human:
        if item.id in llm and item.id not in seen:
            seen.add(item.id)
            human_rows.append(item)
            llm_rows.append(item.model_copy(update={"scores": llm[item.id], "annotator": "llm:consensus"}))
    return human_rows, llm_rows


def rm_agreement(rubric: Rubric, a: tuple[dict, dict], b: tuple[dict, dict]) -> dict:
    """Per dimension QWK between the two models' levels, and Spearman of A's levels against B's scores."""
    (_, levels_a), (scores_b, levels_b) = a, b
    truth_like = np.stack([levels_a[d] for d in rubric.names], axis=1)
    metrics = all_metrics(rubric, truth_like, levels_b, scores_b)
    return {d: {"qwk": m["qwk"], "spearman": m["spearman"], "exact": m["accuracy"]}
            for d, m in metrics["dimensions"].items()}


class SharedInputs:
    """What every seed reuses: the items with another student's profile, and (frozen backbone) the pooled
    vectors of the original and the swapped pairs, computed once."""

    def __init__(self, cfg: ConsistencyConfig, human: list[LabeledItem], rubric: Rubric):
        contexts, self.profile_source = swapped_contexts(human, cfg.seeds[0])
        self.swapped = [item.model_copy(update={"context": c}) for item, c in zip(human, contexts)]
        self.pooled = self.pooled_swapped = None
        if cfg.train.freeze_backbone:
            cache = cfg.out / "work" / "cache"
            self.pooled = shared_pooled(cfg.train, rubric, human, cache)
            self.pooled_swapped = shared_pooled(cfg.train, rubric, self.swapped, cache)

    def predict(self, rm, items: list[LabeledItem], idx: np.ndarray, swapped: bool = False):
        pooled = self.pooled_swapped if swapped else self.pooled
        if pooled is not None:
            return rm.predict_pooled(pooled[idx])
        rows = [(self.swapped if swapped else items)[i] for i in idx]
        return rm.predict([r.context for r in rows], [r.response for r in rows])


def run_seed(cfg: ConsistencyConfig, seed: int, human: list[LabeledItem], llm: list[LabeledItem],
             rubric: Rubric, shared: SharedInputs, work: Path) -> dict:
    train_idx, test_idx = grouped_split(human, cfg.test_fraction, seed)
    test = [human[i] for i in test_idx]
    truth, groups = label_matrix(test, rubric), group_ids(test)
    train_cfg = cfg.train.model_copy(update={"seed": seed, "resume": False, "checkpoints": False})
    result: dict = {"seed": seed, "train_items": len(train_idx), "test_items": len(test_idx), "systems": {}}
    predictions = {}
    for label_source, items in (("human", human), ("llm", llm)):
        train_items = [items[i] for i in train_idx]
        rm = train_reward_model(train_cfg, train_items, rubric, work / f"ckpt-{label_source}-seed{seed}",
                                shared.pooled[train_idx] if shared.pooled is not None else None)
        preds = shared.predict(rm, human, test_idx)
        shifted = shared.predict(rm, human, test_idx, swapped=True)[0]
        predictions[label_source] = preds
        result["systems"][f"rm_{label_source}"] = {
            **all_metrics(rubric, truth, preds[1], preds[0], groups),
            "length_correlation": length_correlation(test, preds[0]),
            "profile_shift": profile_shift(preds[0], shifted),
        }
        baseline = TfidfBaseline(rubric, seed=seed).fit(train_items)
        scores, levels = baseline.predict(test)
        result["systems"][f"tfidf_{label_source}"] = all_metrics(rubric, truth, levels, scores, groups)
    llm_test = label_matrix([llm[i] for i in test_idx], rubric)
    llm_levels = {d: np.where(llm_test[:, j] == MISSING, 0, llm_test[:, j]) for j, d in enumerate(rubric.names)}
    result["llm_labels_vs_human"] = all_metrics(rubric, truth, llm_levels,
                                                {d: v.astype(float) for d, v in llm_levels.items()})
    result["rm_agreement"] = rm_agreement(rubric, predictions["human"], predictions["llm"])
    result["human_length_correlation"] = length_correlation(
        test, {d: np.where(truth[:, j] == MISSING, np.nan, truth[:, j]) for j, d in enumerate(rubric.names)})
    return result


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m hpc_rm consistency", description=__doc__.split("\n\n")[0])
    add_arguments(parser, ConsistencyConfig)
    parser.add_argument("--rubric", default=None, help="rubric name or YAML path (same as --train.rubric)")
    args = parser.parse_args(argv)
    if args.rubric:
        setattr(args, "cfg:train.rubric", args.rubric)
    cfg = build_config(ConsistencyConfig, args)
    if cfg.human is None or cfg.llm is None or cfg.out is None:
        parser.error("--human, --llm and --out are required")
    check_model_exists(cfg.train.backbone)  # before the labels are paired and split
    rubric = load_rubric(cfg.train.rubric)
    human_all = read_labels(cfg.human, rubric, None)
    llm_all = read_labels(cfg.llm, rubric, None)
    human, llm = paired_items(human_all, llm_consensus(llm_all, rubric))
    if len(human) < 10:
        raise DataError(f"{cfg.human}, {cfg.llm}: only {len(human)} items carry both human and LLM labels "
                        "(at least 10 needed; items are matched by id)")
    shared = SharedInputs(cfg, human, rubric)
    seeds = [run_seed(cfg, seed, human, llm, rubric, shared, cfg.out / "work") for seed in cfg.seeds]
    summary = summarise_seeds(seeds, rubric)
    report = {"items": len(human), "human_file": str(cfg.human), "llm_file": str(cfg.llm), "summary": summary,
              "profile_source": shared.profile_source, "seeds": seeds, "config": cfg.model_dump(mode="json")}
    write_json(cfg.out / "consistency.json", report)
    plot_consistency(summary, rubric, cfg.out / "consistency.png")
    write_text(cfg.out / "consistency.md", consistency_markdown(report, rubric))
    print(consistency_markdown(report, rubric))
