"""The evaluation report: Markdown tables, matplotlib plots (Agg backend) and the lm-eval-harness hook."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from core.schema import save_figure, write_text  # noqa: E402

DEFAULT_LM_EVAL_TASKS = ["mmlu_pro", "ceval-valid"]  # EduAlign's forgetting checks: MMLU-Pro and CEval


def lm_eval_section(tuned: str, tasks: list[str]) -> dict:
    """Run lm-eval-harness on the tuned policy when tasks are given and it is installed; else print the command."""
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
    ax.set_title(f"Change per dimension on {report['prompts']} eval prompts (95% bootstrap interval)")
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
    star = " *" if d.get("excludes_zero") else ""
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]{star}"


def write_markdown(report: dict, path: Path) -> None:
    base, tuned = report["base"], report["tuned"]
    lines = [
        "# Policy evaluation: base vs tuned", "",
        f"{report['prompts']} held-out eval prompts x {report['samples_per_prompt']} sample(s) per policy; "
        "intervals are paired bootstrap 95% intervals over prompts (* = excludes zero).", "",
        "| dimension | base | tuned | tuned - base [95% CI] |", "|---|---|---|---|",
    ]
    for name, diff in report["difference"].items():
        lines.append(f"| {name} | {base['mean'][name]:.3f} | {tuned['mean'][name]:.3f} | {_interval(diff)} |")
    kl, win = report["kl_tuned_base"], report["win_rate"]
    lines += [
        "", "| measure | base | tuned |", "|---|---|---|",
        f"| response length (tokens) | {base['length_tokens']:.1f} | {tuned['length_tokens']:.1f} |",
        f"| distinct-1 | {base['distinct_1']:.3f} | {tuned['distinct_1']:.3f} |",
        f"| distinct-2 | {base['distinct_2']:.3f} | {tuned['distinct_2']:.3f} |",
    ]
    if "gsm8k_perplexity" in report:
        ppl = report["gsm8k_perplexity"]
        lines.append(f"| GSM8K reference perplexity ({ppl['items']} solutions) | {ppl['base']:.2f} | "
                     f"{ppl['tuned']:.2f} |")
    lines += [
        "", f"- Win rate of tuned over base under the RM (weighted reward, ties = 1/2): "
        f"{win['mean']:.3f} [{win['low']:.3f}, {win['high']:.3f}]",
        f"- KL(tuned || base) on the tuned policy's samples: {kl['per_sequence']['mean']:.3f} nats per response "
        f"[{kl['per_sequence']['low']:.3f}, {kl['per_sequence']['high']:.3f}], {kl['per_token']:.4f} per token",
    ]
    training = report.get("training") or {}
    if training.get("frac_reward_zero_std") is not None:
        lines.append(f"- Share of training groups with zero reward spread (no learning signal): "
                     f"{training['frac_reward_zero_std']:.3f}")
    lines += independent_markdown(report) + tutorbench_markdown(report.get("tutorbench"))
    lm = report["lm_eval"]
    lines.append(f"- lm-eval-harness: {'ran' if lm['ran'] else 'not run (' + lm['reason'] + ')'}; command: "
                 f"`{lm['command']}`")
    lines += ["", *[f"![{Path(p).stem}]({Path(p).name})" for p in report.get("plots", [])], ""]
    write_text(path, "\n".join(lines))


def _agreement_text(agreement: dict | None) -> str:
    if not agreement:
        return "not measured"
    parts = [f"{dim} QWK {row['qwk']:.2f}" if row.get("qwk") is not None else f"{dim} QWK n/a"
             for dim, row in agreement.items()]
    return "; ".join(parts)


def independent_markdown(report: dict) -> list[str]:
    """Each scorer's gain next to the training RM's, on one 0..1 scale, and the rule-based checks."""
    lines = ["", "## Is the gain real? Scorers the policy never trained on", "",
             "Gains divided by the rubric's top level (0..1). A gain only the training RM sees is flagged: the policy "
             "may have learned what that RM rewards rather than better tutoring. A scorer whose interval lies below "
             "zero flags the tuned policy as worse, whatever the training RM saw.", "",
             "Only trusted scorers (independent RMs; judges whose measured agreement with human labels reaches the "
             "threshold) can raise the flag; the others are shown with the reason.", "",
             "| scorer | kind | base | tuned | gain [95% CI] | win rate | gap to training RM | flag | agreement with "
             "humans |", "|---|---|---|---|---|---|---|---|---|"]
    training = report.get("training_rm", {}).get("weighted", {})
    rows = [("rm:training (weighted)", "training-rm", training, None, None)]
    for name, result in report.get("independent", {}).items():
        standing = result.get("standing", "trusted")
        kind = result["kind"] if standing == "trusted" else f"{result['kind']} ({standing})"
        rows.append((name, kind, result["comparison"].get("mean", {}), report.get("reward_hacking", {}).get(name),
                     result.get("agreement_with_humans")))
    for name, kind, comp, gap, agreement in rows:
        if "difference" not in comp:
            lines.append(f"| {name} | {kind} | - | - | {comp.get('note', 'not scored')} | - | - | - | - |")
            continue
        g, w = comp["normalised_gain"], comp["win_rate"]
        gap_text = f"{gap['gap']:+.3f}" if gap else "-"
        flag = "; ".join(text for key, text in (("possible_reward_hacking", "possible reward hacking"),
                                                 ("tuned_worse", "tuned worse")) if gap and gap.get(key))
        lines.append(f"| {name} | {kind} | {comp['base']:.3f} | {comp['tuned']:.3f} | {g['mean']:+.3f} "
                     f"[{g['low']:+.3f}, {g['high']:+.3f}] | {w['mean']:.2f} | {gap_text} | {flag} | "
                     f"{_agreement_text(agreement) if kind.startswith('judge') else '-'} |")
    checks = report.get("rule_checks")
    if checks:
        lines += ["", "| rule check | base | tuned |", "|---|---|---|"]
        for key, label in (("answer_leaked", "answer leaked (share)"), ("empty", "empty (share)"),
                           ("truncated", "cut at the token limit (share)"),
                           ("ended_on_own", "ended on its own before the cap (share)"),
                           ("length_words", "length (words)")):
            if key in checks["base"]:  # reports written before the ended-on-own share lack it
                lines.append(f"| {label} | {checks['base'][key]:.3f} | {checks['tuned'][key]:.3f} |")
    return lines


def tutorbench_markdown(bench: dict | None) -> list[str]:
    if not bench:
        return []
    lines = ["", "## MathTutorBench-style: the policy writes the real teacher's last turn", "",
             "Win rate = P(score(policy turn) > score(teacher turn)), ties 1/2; margin = mean score difference; "
             "95% bootstrap intervals over dialogues.", "",
             "| setting | scorer | teacher | base win rate | tuned win rate | tuned margin |",
             "|---|---|---|---|---|---|"]
    for setting, result in bench.get("settings", {}).items():
        for scorer, r in result["scores"].items():
            b, t = r["base"]["win_rate"], r["tuned"]["win_rate"]
            m = r["tuned"]["margin"]
            lines.append(f"| {setting} ({result['items']}) | {scorer} | {r['teacher_mean']:.3f} | {b['mean']:.2f} "
                         f"[{b['low']:.2f}, {b['high']:.2f}] | {t['mean']:.2f} [{t['low']:.2f}, {t['high']:.2f}] | "
                         f"{m['mean']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}] |")
    acc = bench.get("gsm8k_accuracy")
    if acc:
        lines += ["", "| GSM8K problem solving (greedy, two-shot) | base | tuned |", "|---|---|---|",
                  "| accuracy [95% CI] | " + " | ".join(
                      f"{acc[p]['accuracy']['mean']:.3f} [{acc[p]['accuracy']['low']:.3f}, "
                      f"{acc[p]['accuracy']['high']:.3f}] ({acc[p]['items']} items)" for p in ("base", "tuned")) + " |"]
    return lines
