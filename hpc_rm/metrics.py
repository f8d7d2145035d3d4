"""Per-dimension agreement between predictions and labels, and the calibration plot."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.rubric import Rubric
from core.schema import save_figure
from hpc_rm.data import MISSING


def dimension_metrics(truth: np.ndarray, levels: np.ndarray, scores: np.ndarray, n_levels: int) -> dict:
    """macro-F1, quadratic-weighted kappa, accuracy on discrete levels; Spearman and MAE on continuous scores."""
    from scipy.stats import spearmanr
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score

    mask = truth != MISSING
    t, lv, s = truth[mask], levels[mask], scores[mask]
    if t.size == 0:
        return {"n": 0}
    all_levels = list(range(n_levels))
    constant = np.unique(t).size < 2 or np.unique(s).size < 2
    return {
        "n": int(t.size),
        "macro_f1": float(f1_score(t, lv, labels=all_levels, average="macro", zero_division=0)),
        "qwk": float(cohen_kappa_score(t, lv, labels=all_levels, weights="quadratic")) if np.unique(t).size > 1 else 0.0,
        "spearman": 0.0 if constant else float(spearmanr(s, t).statistic),
        "accuracy": float(accuracy_score(t, lv)),
        "mae": float(np.abs(s - t).mean()),
        "label_counts": np.bincount(t, minlength=n_levels).tolist(),
        "pred_counts": np.bincount(np.clip(lv, 0, n_levels - 1), minlength=n_levels).tolist(),
        # rows: the human level, columns: the predicted level (what a QWK bound resamples)
        "confusion": confusion_matrix(t, np.clip(lv, 0, n_levels - 1), labels=all_levels).tolist(),
    }


GROUP_PAIR_ACCURACY_NOTE = (
    "Pairs ordered within a context (`group_pair_accuracy`): of two responses to the same context with different "
    "human levels, how often the score ranks them in that order (ties count half). GRPO's group-relative advantages "
    "take this order from the RM.")


def within_group_pair_accuracy(truth: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float | None:
    """Of the pairs of labeled items in the same group (responses to one context) whose labels differ, the
    fraction the scores put in the labels' order, ties counting half. GRPO turns a group's rewards into advantages
    relative to the group, so this order is what the policy gets from the RM. None when no such pair exists."""
    mask = truth != MISSING
    order = np.argsort(groups[mask], kind="stable")  # one sort, then each group is a slice
    t, s, g = truth[mask][order], scores[mask][order], groups[mask][order]
    starts = np.flatnonzero(np.diff(g)) + 1
    agree = total = 0.0
    for ts, ss in zip(np.split(t, starts), np.split(s, starts)):
        better = ts[:, None] > ts[None, :]
        diff = (ss[:, None] - ss[None, :])[better]
        agree += (diff > 0).sum() + 0.5 * (diff == 0).sum()
        total += better.sum()
    return float(agree / total) if total else None


def all_metrics(rubric: Rubric, truth: np.ndarray, levels: dict[str, np.ndarray],
                scores: dict[str, np.ndarray], groups: np.ndarray | None = None) -> dict:
    """{'dimensions': {name: metrics}, 'mean': {metric: mean over dimensions}}. With `groups` (which context each
    item answers, e.g. `hpc_rm.data.group_ids`), also `group_pair_accuracy` per dimension."""
    dims = {
        d.name: dimension_metrics(truth[:, j], levels[d.name], scores[d.name], len(d.levels))
        for j, d in enumerate(rubric.dimensions)
    }
    keys = ["macro_f1", "qwk", "spearman", "accuracy", "mae"]
    if groups is not None:
        for j, d in enumerate(rubric.dimensions):
            if dims[d.name].get("n"):
                dims[d.name]["group_pair_accuracy"] = within_group_pair_accuracy(truth[:, j], scores[d.name], groups)
        keys.append("group_pair_accuracy")
    rated = [m for m in dims.values() if m.get("n")]
    mean = {}
    for k in keys:
        values = [m[k] for m in rated if m.get(k) is not None]
        if values:
            mean[k] = float(np.mean(values))
    return {"dimensions": dims, "mean": mean}


def calibration_curve(truth: np.ndarray, scores: np.ndarray, max_level: int, bins: int = 8) -> dict:
    """Mean label per bin of predicted score; a calibrated model lies on the diagonal."""
    mask = truth != MISSING
    t, s = truth[mask].astype(float), scores[mask]
    edges = np.linspace(0, max_level, bins + 1)
    which = np.clip(np.digitize(s, edges[1:-1]), 0, bins - 1)
    points = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            points.append({"pred": float(s[sel].mean()), "label": float(t[sel].mean()), "n": int(sel.sum())})
    error = sum(p["n"] * abs(p["pred"] - p["label"]) for p in points) / max(1, int(mask.sum()))
    return {"points": points, "calibration_error": float(error)}


def plot_calibration(curves: dict[str, dict], max_levels: dict[str, int], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    top = max(max_levels.values())
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for name, curve in curves.items():
        xs = [p["pred"] for p in curve["points"]]
        ys = [p["label"] for p in curve["points"]]
        ax.plot(xs, ys, marker="o", label=f"{name} (err {curve['calibration_error']:.2f})")
    ax.set_xlabel("predicted score (bin mean)")
    ax.set_ylabel("mean human label")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def metrics_table(rows: dict[str, dict], metric_keys=("macro_f1", "qwk", "spearman", "accuracy", "mae")) -> str:
    """Markdown table: one row per dimension (and the mean) of a metrics dict from `all_metrics`
    (plus `group_pair_accuracy` when it was computed)."""
    if "group_pair_accuracy" in rows.get("mean", {}):
        metric_keys = (*metric_keys, "group_pair_accuracy")
    lines = ["| dimension | n | " + " | ".join(metric_keys) + " |", "|---|---|" + "---|" * len(metric_keys)]
    for name, m in rows["dimensions"].items():
        if not m.get("n"):
            lines.append(f"| {name} | 0 |" + " – |" * len(metric_keys))
            continue
        lines.append(f"| {name} | {m['n']} | " + " | ".join(
            "–" if m.get(k) is None else f"{m[k]:.3f}" for k in metric_keys) + " |")
    if rows.get("mean"):
        lines.append("| **mean** | | " + " | ".join(f"**{rows['mean'][k]:.3f}**" for k in metric_keys) + " |")
    return "\n".join(lines)
