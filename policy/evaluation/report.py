"""The evaluation report: Markdown tables, matplotlib plots (Agg backend) and the lm-eval-harness hook."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from core.schema import save_figure, write_text  # noqa: E402
from core.stats import format_interval  # noqa: E402
from policy.evaluation.verdict import TRAINED_ON, rule_check_markdown, verdict_markdown  # noqa: E402

DEFAULT_LM_EVAL_TASKS = ["mmlu_pro", "ceval-valid"]  # EduAlign's forgetting checks: MMLU-Pro and CEval


def lm_eval_section(tuned: str | None, tasks: list[str]) -> dict:
    """Run lm-eval-harness on the tuned policy when tasks are given and it is installed; else print the command.
    No tuned policy (a responses file): nothing to run."""
    if tuned is None:
        return {"ran": False, "command": None, "reason": "no tuned model: the tuned side is a responses file"}
    command = (f"lm_eval --model hf --model_args pretrained={tuned} --tasks {','.join(tasks or DEFAULT_LM_EVAL_TASKS)}"
               " --batch_size auto")
    if not tasks:
        return {"ran": False, "command": command, "reason": "no lm_eval_tasks configured"}
    if importlib.util.find_spec("lm_eval") is None:
        print(f"lm-eval-harness is not installed (`pip install lm-eval`); run it yourself:\n  {command}")
        return {"ran": False, "command": command, "reason": "lm_eval not installed"}
    import lm_eval

    results = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={tuned}", tasks=tasks)
    return {"ran": True, "command": command, "results": results["results"]}


def plot_dimension_changes(report: dict, path: Path) -> Path:
    """Tuned minus base per dimension, with the paired bootstrap interval."""
    names = list(report["difference"])
    diffs = [report["difference"][n] for n in names]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.5))
    ax.bar(names, [d["mean"] for d in diffs], color=["tab:green" if d["mean"] > 0 else "tab:red" for d in diffs],
           yerr=[[d["mean"] - d["low"] for d in diffs], [d["high"] - d["mean"] for d in diffs]], capsize=4)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("tuned - base (RM score)")
    ax.set_title(f"Training RM ({TRAINED_ON}): change per dimension on {report['prompts']} prompts", fontsize=9)
    return save_figure(fig, path)


def plot_gaps(report: dict, path: Path) -> Path | None:
    """The reward-hacking gap per trusted scorer and compared dimension, with its interval (None: nothing to plot)."""
    rows = [(f"{name}\n{label}", row["gap"]) for name, result in report.get("reward_hacking", {}).items()
            for label, row in result["rows"].items() if row["n"] >= 2]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(1.8 * len(rows) + 2, 3.8))
    gaps = [g for _, g in rows]
    ax.bar([n for n, _ in rows], [g["mean"] for g in gaps],
           color=["tab:red" if g.get("significant") and g["mean"] > 0 else "tab:grey" for g in gaps],
           yerr=[[g["mean"] - g["low"] for g in gaps], [g["high"] - g["mean"] for g in gaps]], capsize=4)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("training RM gain - scorer gain (0..1)")
    ax.set_title("Reward-hacking gap per trusted scorer (red: above zero after Holm)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_training_curves(training: dict, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(training["steps"], training["reward"], marker="o")
    left.set_xlabel("step")
    left.set_ylabel("weighted reward (train batch)")
    if training["kl"]:
        right.plot(training["steps"][:len(training["kl"])], training["kl"], marker="o", color="tab:orange")
    right.set_xlabel("step")
    right.set_ylabel("KL to reference (TRL, per token)")
    fig.tight_layout()
    return save_figure(fig, path)


def _interval(d: dict) -> str:
    return format_interval(d) + (" *" if d.get("significant") else "")


def write_markdown(report: dict, path: Path) -> None:
    """report.md: the independent verdict first, then the rule checks, then the training RM (the reward the policy
    was trained on), tutorbench and the plots."""
    base, tuned = report["base"], report["tuned"]
    lines = ["# Policy evaluation: base vs tuned", "",
             f"{report['prompts']} held-out eval prompts x {report['samples_per_prompt']} sample(s) per policy. "
             f"Base: `{report['settings'].get('base')}` (the policy training started from); tuned: "
             f"`{report['settings'].get('tuned')}`; up to {report['settings'].get('max_new_tokens')} new tokens.", ""]
    if report["settings"].get("tuned_responses", "None") != "None":
        lines += [f"Tuned side: the responses in `{report['settings']['tuned_responses']}`, scored as read (not "
                  "sampled); their token counts are the base tokenizer's re-encoding of the text.", ""]
    lines += verdict_markdown(report) + [""] + rule_check_markdown(report.get("rule_checks"))
    n = report["difference"]["weighted"]["n"]
    lines += [
        "", f"## Training RM: {TRAINED_ON} (not independent evidence)", "",
        "Paired bootstrap 95% intervals over prompts; * = significant after Holm-Bonferroni over this table's rows.",
        "", "| scorer | trust | dimension | n | base | tuned | tuned - base [95% CI] |", "|---|---|---|---|---|---|---|",
    ]
    for name, diff in report["difference"].items():
        lines.append(f"| rm:training | {TRAINED_ON} | {name} | {diff['n']} | {base['mean'][name]:.3f} | "
                     f"{tuned['mean'][name]:.3f} | {_interval(diff)} |")
    kl, win = report["kl_tuned_base"], report["win_rate"]
    lines += [
        "", "| measure | n | base | tuned |", "|---|---|---|---|",
        f"| response length (tokens) | {n} | {base['length_tokens']:.1f} | {tuned['length_tokens']:.1f} |",
        f"| distinct-1 | {n} | {base['distinct_1']:.3f} | {tuned['distinct_1']:.3f} |",
        f"| distinct-2 | {n} | {base['distinct_2']:.3f} | {tuned['distinct_2']:.3f} |",
    ]
    if "gsm8k_perplexity" in report:
        ppl = report["gsm8k_perplexity"]
        lines.append(f"| GSM8K reference perplexity | {ppl['items']} | {ppl['base']:.2f} | {ppl['tuned']:.2f} |")
    lines += [
        "", f"- Win rate of tuned over base under the training RM (weighted reward, ties = 1/2, exact interval with "
        f"ties bracketed, n = {win['n']}): {format_interval(win, 3, signed=False)}",
    ]
    if "per_sequence" in kl:
        lines.append(f"- KL(tuned || base) on the tuned policy's samples: "
                     f"{format_interval(kl['per_sequence'], signed=False)} nats per response, {kl['per_token']:.4f} "
                     "per token")
    lines += [f"- {line}" for line in report.get("not_measured", {}).values()]
    training = report.get("training") or {}
    if training.get("frac_reward_zero_std") is not None:
        lines.append(f"- Share of training groups with zero reward spread (no learning signal): "
                     f"{training['frac_reward_zero_std']:.3f}")
    lines += tutorbench_markdown(report.get("tutorbench"), trust_of(report))
    lm = report["lm_eval"]
    lines.append("")
    lines.append(f"- lm-eval-harness: {'ran' if lm['ran'] else 'not run (' + lm['reason'] + ')'}"
                 + (f"; command: `{lm['command']}`" if lm["command"] else ""))
    lines += ["", *[f"![{Path(p).stem}]({Path(p).name})" for p in report.get("plots", [])], ""]
    write_text(path, "\n".join(lines))


def trust_of(report: dict) -> dict[str, str]:
    """Scorer name -> its trust as every table shows it (the training RM: the reward the policy was trained on)."""
    return {"rm:training": TRAINED_ON, **{name: r.get("standing", "trusted")
                                          for name, r in report.get("independent", {}).items()}}


def tutorbench_markdown(bench: dict | None, trust: dict[str, str] | None = None) -> list[str]:
    if not bench:
        return []
    trust = trust or {}
    lines = ["", "## MathTutorBench-style: the policy writes the real teacher's last turn", "",
             "**Not comparable with the MathTutorBench leaderboard**: " + not_comparable(bench), "",
             "Win rate = P(score(policy turn) > score(teacher turn)), ties 1/2, exact interval with ties bracketed; "
             "margin = mean score difference, bootstrap 95% interval over dialogues; tuned - base = paired per-dialogue "
             "difference, bootstrapped over problems; * = win rate differs from 1/2 (sign test) after "
             "Holm-Bonferroni over every trusted row.", "",
             "| setting | scorer | trust | n | teacher | base win rate | tuned win rate | tuned margin | "
             "tuned - base |", "|---|---|---|---|---|---|---|---|---|"]
    star = lambda w: " *" if w.get("significant") else ""  # noqa: E731
    for setting, result in bench.get("settings", {}).items():
        for scorer, r in result["scores"].items():
            b, t = r["base"]["win_rate"], r["tuned"]["win_rate"]
            paired = r.get("tuned_vs_base", {})
            paired_text = format_interval(paired) + f" ({paired['n']} problems)" if "mean" in paired else "-"
            lines.append(f"| {setting} | {scorer} | {trust.get(scorer, 'trusted')} | {t['n']} | "
                         f"{r['teacher_mean']:.3f} | {format_interval(b, 2, False)}{star(b)} | "
                         f"{format_interval(t, 2, False)}{star(t)} | {format_interval(r['tuned']['margin'])} | "
                         f"{paired_text} |")
    acc = bench.get("gsm8k_accuracy")
    if acc:
        paired = acc.get("tuned_vs_base", {})
        lines += ["", "| GSM8K problem solving (greedy, two-shot, exact number) | n | base | tuned | tuned - base |",
                  "|---|---|---|---|---|"]
        for key, label in (("accuracy", "strict match [exact 95% CI]"), ("flexible", "flexible extract [exact 95% CI]")):
            if key in acc["base"]:
                lines.append(f"| {label} | {acc['base']['items']} | " + " | ".join(
                    format_interval(acc[p][key], 3, False) for p in ("base", "tuned"))
                    + f" | {format_interval(paired) if key == 'accuracy' and 'mean' in paired else '-'} |")
    return lines


def not_comparable(bench: dict) -> str:
    """Why these figures are not the benchmark's own."""
    drawn = "; ".join(f"{setting}: {r['items']} of {r.get('file_items', '?')} dialogues (random, seeded, "
                      f"{r.get('available', '?')} not on rm/rl or excluded problems)"
                      for setting, r in bench.get("settings", {}).items())
    return (f"{drawn}. The benchmark uses every dialogue, scores with its pedagogical reward model "
            "(eth-nlped/Qwen2.5-1.5B-pedagogical-rewardmodel), counts only strict wins (>) and shows the scorer the "
            "reference solution; here the scorers are this eval's and ties count 1/2.")
