"""compare.md (one table, method x scorer) and overoptimisation.png for `policy compare`."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from core.schema import save_figure, write_text  # noqa: E402
from core.stats import holm  # noqa: E402

TRAINING = "rm:training"


def gain(entry: dict, scorer: str, dim: str | None = None) -> dict | None:
    """The normalised gain (difference / the rubric's top level) of an entry by a scorer: its weighted reward for
    the training RM, the mean over its dimensions for the others."""
    dim = dim or ("weighted" if scorer == TRAINING else "mean")
    cell = entry["scores"].get(scorer, {}).get(dim, {})
    return cell.get("normalised_gain")


def holm_stars(entries: list[dict], names: list[str], alpha: float = 0.05) -> dict[tuple[str, str], bool]:
    """(entry label, scorer) -> significant after Holm-Bonferroni over every cell of one table (its family)."""
    cells, p_values = [], []
    for entry in entries:
        for name in names:
            dim = "weighted" if name == TRAINING else "mean"
            diff = entry["scores"].get(name, {}).get(dim, {}).get("difference")
            if diff is not None:
                cells.append((entry["label"], name))
                p_values.append(diff.get("p_value", float("nan")))
    return {cell: p < alpha for cell, p in zip(cells, holm(p_values), strict=True)}


def _cell(g: dict | None, star: bool = False) -> str:
    if not g:
        return "-"
    return f"{g['mean']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]" + (" *" if star else "")


def _kl(entry: dict) -> str:
    if entry["kl_kind"] == "analytic":
        return f"{entry['kl']:.2f} (analytic)"
    ci = entry.get("kl_interval")
    return f"{entry['kl']:.2f} [{ci['low']:.2f}, {ci['high']:.2f}]" if ci else f"{entry['kl']:.2f}"


def table_entries(report: dict) -> list[dict]:
    """One row per method: its final policy (best-of-n at its largest n)."""
    return [e for e in report["entries"] if e.get("final")]


def write_markdown(report: dict, path: Path) -> None:
    scorers = report["scorers"]
    names = [s["name"] for s in scorers]
    samples = report["samples"]
    base = report["base"]
    lines = [
        "# Which training helps: base -> best-of-n, RFT, DPO, SFT, GRPO", "",
        f"Every method answers the same {report['prompts']} held-out prompts (one response each); each cell is the "
        "method's gain over the base policy's responses to the same prompts, divided by the scorer's top level "
        "(0..1 scale), with a paired bootstrap 95% interval over prompts; * = significant after "
        "Holm-Bonferroni over every gain cell of the same table (the curve below is its own family). KL to the base "
        "is estimated on each policy's own samples (mean log-ratio per response, bootstrap interval over prompts; "
        "at this n the estimate can fall below 0, which only sampling noise explains); best-of-n's is the analytic "
        "log n - (n-1)/n. The training RM's column is its weighted reward (what the methods optimised); an independent scorer's is the "
        "mean over its own rubric's dimensions.", "",
        f"Budget: each sampling training method may draw {report['budget']} completions; drawn: "
        + ", ".join(f"{m} {samples[m]}" for m in report["methods"] if m != "bon")
        + (f"; best-of-n draws {samples['bon']} at inference (n x eval prompts, not a training cost)"
           if "bon" in samples else "") + ". SFT reads real teacher turns and draws none.", "",
        "| method | samples | " + " | ".join(names) + " | KL to base (nats) | answer leaked | cut at limit | "
        "tokens | GSM8K ppl |",
        "|---" * (len(names) + 7) + "|",
    ]
    rules = base["rules"]
    lines.append("| base | - | " + " | ".join("0" for _ in names) + f" | 0 | {_rate(rules['answer_leaked'])} | "
                 f"{_rate(rules['truncated'])} | {rules['length_tokens']:.1f} | {_ppl(base)} |")
    rows = table_entries(report)
    stars = holm_stars(rows, names)
    for entry in rows:
        method = entry.get("method", entry["label"])
        r = entry["rules"]
        lines.append(f"| {entry['label']} | {samples.get(method, '-')} | "
                     + " | ".join(_cell(gain(entry, n), stars.get((entry["label"], n), False)) for n in names)
                     + f" | {_kl(entry)} | {_rate(r['answer_leaked'])} | {_rate(r['truncated'])} | {r['length_tokens']:.1f} | "
                       f"{_ppl(entry)} |")
    lines += ["", "Scorers: " + "; ".join(f"`{s['name']}` ({s['kind']}, {s['standing']})" for s in scorers) + ".",
              "", "Along the way (the over-optimisation curve):", "",
              "| entry | KL to base | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    curve = [e for e in report["entries"] if e.get("method") in ("bon", "grpo")]
    stars = holm_stars(curve, names)
    for entry in curve:
        lines.append(f"| {entry['label']} | {_kl(entry)} | "
                     + " | ".join(_cell(gain(entry, n), stars.get((entry["label"], n), False)) for n in names) + " |")
    lines += ["", "![over-optimisation](overoptimisation.png)", ""]
    write_text(path, "\n".join(lines))


def _rate(value) -> str:
    """A rule check's rate: a number, or the eval's {mean, low, high} with its interval."""
    if isinstance(value, dict):
        return f"{value['mean']:.2f} [{value['low']:.2f}, {value['high']:.2f}]"
    return f"{value:.2f}"


def _ppl(entry: dict) -> str:
    value = entry.get("gsm8k_perplexity")
    return f"{value:.2f}" if value is not None else "-"


def plot_overoptimisation(report: dict, path: Path) -> Path:
    """Gain against KL to the base: best-of-n at each n and GRPO at each checkpoint as curves from the base (0, 0),
    the other methods as points; one panel per scorer (the training RM first)."""
    scorers = [s["name"] for s in report["scorers"]]
    fig, axes = plt.subplots(1, len(scorers), figsize=(4.6 * len(scorers), 3.8), squeeze=False)
    colors = {"bon": "tab:blue", "grpo": "tab:red", "rft": "tab:green", "dpo": "tab:purple", "sft": "tab:orange"}
    for ax, scorer in zip(axes[0], scorers, strict=True):
        for method in ("bon", "grpo"):
            points = [(0.0, 0.0, 0.0, 0.0)] + [
                (e["kl"], g["mean"], g["low"], g["high"]) for e in report["entries"]
                if e.get("method") == method and (g := gain(e, scorer))]
            if len(points) > 1:
                points.sort()
                xs, ys, lows, highs = zip(*points, strict=True)
                ax.plot(xs, ys, "o-", color=colors[method], label="best-of-n" if method == "bon" else "GRPO")
                ax.fill_between(xs, lows, highs, color=colors[method], alpha=0.15)
        for e in report["entries"]:
            if e.get("method") in ("rft", "dpo", "sft") and (g := gain(e, scorer)):
                ax.errorbar([e["kl"]], [g["mean"]], yerr=[[g["mean"] - g["low"]], [g["high"] - g["mean"]]],
                            fmt="s", color=colors[e["method"]], capsize=3, label=e["method"].upper())
        ax.axhline(0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel("KL to the base policy (nats per response)")
        ax.set_ylabel("gain over base (/ top level)")
        ax.set_title(("training RM (the reward optimised)" if scorer == TRAINING else scorer), fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle("Over-optimisation: proxy vs independent gain as KL grows (95% paired intervals)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return path
