"""Writes the agreement report built by `annotation.agreement.agreement_report`: JSON, Markdown tables
(every number shown with the n it rests on) and two PNG plots (kappa heatmap, confusion matrices)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from core.schema import save_figure, write_json, write_text  # noqa: E402

HUMAN_HUMAN = "human-human"


def _num(value, n=None) -> str:
    text = "n/a" if value is None else f"{value:.3f}"
    return text if n is None else f"{text} (n={n})"


def kappa_columns(report: dict) -> list[tuple[str, dict[str, tuple[float | None, int]]]]:
    """(comparison name, dimension -> (QWK, n)) for the heatmap and the summary table."""
    dims = report["dimensions"]
    columns = [(HUMAN_HUMAN, {d: (v["human_human"]["qwk"], v["human_human"]["n_items"]) for d, v in dims.items()})]
    for section, title, n_key in (("human_llm", "human vs {}", "n"), ("llm_self", "{} self", "n_items")):
        for judge in sorted({j for v in dims.values() for j in v[section]}):
            stats = {d: v[section][judge] for d, v in dims.items() if judge in v[section]}
            columns.append((title.format(judge), {d: (s["qwk"], s[n_key]) for d, s in stats.items()}))
    return columns


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def render_markdown(report: dict) -> str:
    dims = report["dimensions"]
    rubric = report["rubric"]
    lines = [
        "# Agreement report", "",
        f"Rubric `{rubric['name']}` (hash {rubric['hash']}), {report['n_items']} items labeled.",
        f"Human reference for human-vs-LLM: {report['human_reference']}.",
        "QWK = quadratic-weighted Cohen's kappa; alpha = ordinal Krippendorff's alpha; n/a = undefined "
        "(no overlap or a constant label vector).", "",
        "## Annotators", "",
    ]
    lines += _table(["annotator", "items labeled"], [[f"`{a}`", str(n)] for a, n in report["annotators"].items()])

    lines += ["## Summary: QWK per dimension and comparison", ""]
    columns = kappa_columns(report)
    lines += _table(
        ["dimension"] + [name for name, _ in columns],
        [[d] + [_num(*col[d]) if d in col else "-" for _, col in columns] for d in dims],
    )

    lines += ["## Human vs human", "", "Exact and QWK are means over annotator pairs that share items; "
              "n = items with at least two human labels.", ""]
    lines += _table(
        ["dimension", "alpha", "exact", "QWK", "n items", "raters", "pairs"],
        [[d, _num(h["alpha"]), _num(h["exact"]), _num(h["qwk"]), str(h["n_items"]), str(h["n_raters"]),
          str(h["n_pairs"])] for d, h in ((d, v["human_human"]) for d, v in dims.items())],
    )

    rows = [[d, f"`{j}`", str(s["n"]), _num(s["exact"]), _num(s["qwk"]), _num(s["spearman"]),
             _num(s["vs_each_human"]["exact"]), _num(s["vs_each_human"]["qwk"]), str(s["vs_each_human"]["n_humans"])]
            for d, v in dims.items() for j, s in v["human_llm"].items()]
    lines += ["## Human consensus vs each LLM judge", "", "The last three columns average the judge's agreement with "
              "each human separately: compare them with the human-human means above.", ""]
    header = ["dimension", "judge", "n", "exact", "QWK", "Spearman", "exact vs each human", "QWK vs each human",
              "humans"]
    lines += _table(header, rows) if rows else ["No human-labeled items shared with an LLM judge.", ""]

    rows = [[d, f"`{j}`", _num(s["alpha"]), _num(s["exact"]), _num(s["qwk"]), str(s["n_items"]), str(s["n_raters"])]
            for d, v in dims.items() for j, s in v["llm_self"].items()]
    lines += ["## LLM self-consistency across samples", ""]
    lines += _table(["dimension", "judge", "alpha", "exact", "QWK", "n items", "samples"], rows) if rows else [
        "No judge with two or more samples.", ""]

    lines += ["## Label distributions", "", "How often each annotator gave each level. When one level dominates, "
              "kappa and alpha stay low (or undefined) even where exact agreement is high.", ""]
    n_levels = max(v["n_levels"] for v in dims.values())
    lines += _table(
        ["dimension", "annotator", *(f"level {k}" for k in range(n_levels)), "n"],
        [[d, f"`{a}`", *(str(c) for c in counts), *[""] * (n_levels - len(counts)), str(sum(counts))]
         for d, v in dims.items() for a, counts in v["label_counts"].items()],
    )

    lines += ["## Confusion matrices (rows = human consensus, columns = judge)", ""]
    for d, v in dims.items():
        for judge, s in v["human_llm"].items():
            if s["confusion"] is None:
                continue
            lines += [f"**{d}, `{judge}`** (n={s['n']})", ""]
            levels = list(range(v["n_levels"]))
            lines += _table(["human \\ judge"] + [str(k) for k in levels],
                            [[str(k)] + [str(c) for c in row] for k, row in zip(levels, s["confusion"])])
    return "\n".join(lines)


def plot_kappa_heatmap(report: dict, path: Path) -> None:
    dims = list(report["dimensions"])
    columns = kappa_columns(report)
    values = np.array([[col.get(d, (None, 0))[0] for _, col in columns] for d in dims], dtype=float)
    fig, ax = plt.subplots(figsize=(1.8 + 1.7 * len(columns), 1.2 + 0.6 * len(dims)))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=-1, vmax=1, aspect="auto")
    ax.set_facecolor("lightgrey")
    for r, d in enumerate(dims):
        for c, (_, col) in enumerate(columns):
            qwk, n = col.get(d, (None, 0))
            ax.text(c, r, f"{_num(qwk)}\nn={n}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(columns)), [name for name, _ in columns], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(dims)), dims, fontsize=8)
    ax.set_title("Quadratic-weighted kappa (grey = undefined)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion_matrices(report: dict, path: Path) -> bool:
    """One panel per (judge, dimension); returns False (and writes nothing) when no judge meets a human label."""
    dims = report["dimensions"]
    judges = sorted({j for v in dims.values() for j, s in v["human_llm"].items() if s["confusion"] is not None})
    if not judges:
        return False
    fig, axes = plt.subplots(len(judges), len(dims), figsize=(2.6 * len(dims), 2.4 * len(judges)), squeeze=False)
    for r, judge in enumerate(judges):
        for c, (d, v) in enumerate(dims.items()):
            ax = axes[r][c]
            stats = v["human_llm"].get(judge)
            if stats is None or stats["confusion"] is None:
                ax.axis("off")
                continue
            matrix = np.array(stats["confusion"])
            ax.imshow(matrix, cmap="Blues")
            for (i, k), count in np.ndenumerate(matrix):
                ax.text(k, i, str(count), ha="center", va="center", fontsize=8,
                        color="white" if count > matrix.max() / 2 else "black")
            ax.set_xticks(range(v["n_levels"]))
            ax.set_yticks(range(v["n_levels"]))
            ax.set_title(f"{d} (n={stats['n']})", fontsize=8)
            ax.set_xlabel(judge, fontsize=7)
            ax.set_ylabel("human", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return True



def write_report(report: dict, out: Path) -> list[Path]:
    """Write agreement.json, agreement.md, agreement_heatmap.png and (when there is one) agreement_confusion.png."""
    out = Path(out)
    written = [out / "agreement.json", out / "agreement.md", out / "agreement_heatmap.png"]
    write_json(written[0], report)
    write_text(written[1], render_markdown(report))
    plot_kappa_heatmap(report, written[2])
    if plot_confusion_matrices(report, out / "agreement_confusion.png"):
        written.append(out / "agreement_confusion.png")
    return written
