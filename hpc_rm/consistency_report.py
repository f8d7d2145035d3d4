"""Summaries over seeds (mean, standard deviation), the Markdown report and the PNG of `hpc_rm consistency`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.rubric import Rubric
from core.schema import save_figure
from hpc_rm.metrics import GROUP_PAIR_ACCURACY_NOTE

SYSTEMS = ["rm_human", "rm_llm", "tfidf_human", "tfidf_llm"]


def _mean_sd(values: list) -> dict:
    vals = [v for v in values if v is not None and not np.isnan(v)]
    if not vals:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(np.mean(vals)), "sd": float(np.std(vals)), "n": len(vals)}


def summarise_seeds(seeds: list[dict], rubric: Rubric) -> dict:
    """Mean and spread over seeds of every figure the report shows."""
    out: dict = {"systems": {}, "rm_agreement": {}, "llm_labels_vs_human": {}, "length_correlation": {},
                 "profile_shift": {}}
    for system in SYSTEMS:
        per_dim = {
            d: {k: _mean_sd([s["systems"][system]["dimensions"][d].get(k) for s in seeds])
                for k in ("macro_f1", "qwk", "accuracy", "spearman")}
            for d in rubric.names
        }
        out["systems"][system] = {
            "dimensions": per_dim,
            "mean_macro_f1": _mean_sd([s["systems"][system]["mean"]["macro_f1"] for s in seeds]),
            "mean_qwk": _mean_sd([s["systems"][system]["mean"]["qwk"] for s in seeds]),
            "mean_group_pair_accuracy": _mean_sd([s["systems"][system]["mean"].get("group_pair_accuracy")
                                                  for s in seeds]),
        }
    for d in rubric.names:
        out["rm_agreement"][d] = {k: _mean_sd([s["rm_agreement"][d][k] for s in seeds])
                                  for k in ("qwk", "spearman", "exact")}
        out["llm_labels_vs_human"][d] = {
            k: _mean_sd([s["llm_labels_vs_human"]["dimensions"][d].get(k) for s in seeds])
            for k in ("macro_f1", "qwk", "accuracy")
        }
        out["length_correlation"][d] = {
            "human_labels": _mean_sd([s["human_length_correlation"][d] for s in seeds]),
            **{sys_: _mean_sd([s["systems"][sys_]["length_correlation"][d] for s in seeds])
               for sys_ in ("rm_human", "rm_llm")},
        }
        out["profile_shift"][d] = {
            sys_: {k: _mean_sd([s["systems"][sys_]["profile_shift"][d][k] for s in seeds])
                   for k in ("mean_shift", "mean_abs_shift")}
            for sys_ in ("rm_human", "rm_llm")
        }
    return out


def _fmt(stat: dict, digits: int = 3) -> str:
    if stat["mean"] is None:
        return "–"
    return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def consistency_markdown(report: dict, rubric: Rubric) -> str:
    s = report["summary"]
    n_seeds = len(report["seeds"])
    first = report["seeds"][0]
    lines = [
        "# Consistency: RM trained on human labels vs RM trained on LLM labels",
        "",
        f"{report['items']} items labeled in both `{report['human_file']}` and `{report['llm_file']}`; "
        f"{n_seeds} seeds, each a fresh grouped split ({first['train_items']} train / {first['test_items']} test "
        "items for seed " f"{first['seed']}). **Every system is scored against held-out HUMAN labels.** "
        "Figures are mean ± standard deviation over seeds.",
        "",
        "## Macro-F1 on held-out human labels",
        "",
        "| dimension | " + " | ".join(SYSTEMS) + " | LLM labels themselves |",
        "|---|" + "---|" * (len(SYSTEMS) + 1),
    ]
    for d in rubric.names:
        lines.append(f"| {d} | " + " | ".join(_fmt(s["systems"][x]["dimensions"][d]["macro_f1"]) for x in SYSTEMS)
                     + f" | {_fmt(s['llm_labels_vs_human'][d]['macro_f1'])} |")
    lines.append("| **mean** | " + " | ".join(f"**{_fmt(s['systems'][x]['mean_macro_f1'])}**" for x in SYSTEMS) + " | |")
    lines.append("| mean QWK | " + " | ".join(_fmt(s["systems"][x]["mean_qwk"]) for x in SYSTEMS) + " | |")
    lines.append("| mean pairs ordered within a context | " + " | ".join(
        _fmt(s["systems"][x]["mean_group_pair_accuracy"]) for x in SYSTEMS) + " | |")
    gain_h = s["systems"]["rm_human"]["mean_macro_f1"]["mean"] - s["systems"]["tfidf_human"]["mean_macro_f1"]["mean"]
    gain_l = s["systems"]["rm_llm"]["mean_macro_f1"]["mean"] - s["systems"]["tfidf_llm"]["mean_macro_f1"]["mean"]
    diff = s["systems"]["rm_llm"]["mean_macro_f1"]["mean"] - s["systems"]["rm_human"]["mean_macro_f1"]["mean"]
    lines += [
        "",
        f"The RM adds {gain_h:+.3f} mean macro-F1 over TF-IDF when trained on human labels and {gain_l:+.3f} when "
        f"trained on LLM labels. RM(LLM) minus RM(human): {diff:+.3f}. {GROUP_PAIR_ACCURACY_NOTE}",
        "",
        "## Agreement of the two RMs with each other (test items)",
        "",
        "| dimension | QWK | Spearman | same level |",
        "|---|---|---|---|",
    ]
    for d in rubric.names:
        a = s["rm_agreement"][d]
        lines.append(f"| {d} | {_fmt(a['qwk'])} | {_fmt(a['spearman'])} | {_fmt(a['exact'])} |")
    lines += [
        "",
        "## Biases",
        "",
        "Spearman correlation with response length (words); the human labels' own correlation is the reference: "
        "a head far above it rewards length itself.",
        "",
        "| dimension | human labels | rm_human | rm_llm |",
        "|---|---|---|---|",
    ]
    for d in rubric.names:
        c = s["length_correlation"][d]
        lines.append(f"| {d} | {_fmt(c['human_labels'])} | {_fmt(c['rm_human'])} | {_fmt(c['rm_llm'])} |")
    lines += [
        "",
        f"Score shift when the same response is shown with another student's profile ({report['profile_source']}); "
        "signed mean and mean absolute change of the head's score:",
        "",
        "| dimension | rm_human shift | rm_human abs | rm_llm shift | rm_llm abs |",
        "|---|---|---|---|---|",
    ]
    for d in rubric.names:
        p = s["profile_shift"][d]
        lines.append(f"| {d} | {_fmt(p['rm_human']['mean_shift'])} | {_fmt(p['rm_human']['mean_abs_shift'])} | "
                     f"{_fmt(p['rm_llm']['mean_shift'])} | {_fmt(p['rm_llm']['mean_abs_shift'])} |")
    lines += ["", "![macro-F1 per dimension](consistency.png)", ""]
    return "\n".join(lines)


def plot_consistency(summary: dict, rubric: Rubric, path: Path) -> None:
    """Grouped bars: macro-F1 on held-out human labels per dimension and system, error bars = sd over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = rubric.names
    x = np.arange(len(names))
    width = 0.8 / len(SYSTEMS)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(names)), 4))
    for k, system in enumerate(SYSTEMS):
        stats = [summary["systems"][system]["dimensions"][d]["macro_f1"] for d in names]
        ax.bar(x + (k - (len(SYSTEMS) - 1) / 2) * width, [st["mean"] or 0 for st in stats], width,
               yerr=[st["sd"] or 0 for st in stats], capsize=3, label=system)
    ax.set_xticks(x, [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylabel("macro-F1 vs held-out human labels")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)
