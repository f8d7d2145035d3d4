"""`python -m policy classroom-eval --run runs/demo/classroom`: base vs tuned tutor in the classroom, on held-out
`eval` problems, with the run's student and dialogue settings and an eval judge panel of its own.

Per problem and student persona (`personas`: cooperative and adversarial by default), each tutor holds one dialogue
with the student (same seed for both tutors), then the student writes its final solutions; the student also solves
every problem alone. The tutor samples at `temperature` (PedagogicalRL evaluates at 0.6). The judges are `judges`
(PedagogicalRL evaluates with a larger judge than it trains with); without it, the run's training panel, and the
report warns that the tutor is graded by the judge it was trained to satisfy. Reported per persona, for base, tuned
and tuned minus base (paired over problems, bootstrap 95% intervals, core/stats.py): the metrics of
policy/classroom/eval_metrics.py (delta solve, leak and reject rates as shares of judge samples, per rule, the
order-aware rule-based leak check, RM score per tutor turn, dialogue length), and the leak rates of both personas
side by side. Writes report.md, report.json, transcripts.md (readable) and transcripts.jsonl (one interchange item
per tutor turn, which `python -m annotation serve --tasks` shows to human raters).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from tqdm.auto import tqdm

from core.config import Config, Seed, run_cli
from core.models import DEVICE_HELP, Device, check_model_exists, load_causal_lm, load_tokenizer, pick_device
from core.schema import (DataError, LabeledItem, PromptItem, Turn, read_jsonl, render_context, write_json, write_jsonl,
                         write_text)
from policy.classroom.dialogue import Dialogue, opening_of, prompt_key
from policy.classroom.config import ClassroomConfig, JudgeOptions
from policy.classroom.eval_metrics import dialogue_metrics, rm_metrics, summarise_metric
from policy.classroom.judges import JudgePanel
from policy.classroom.rewards import solve_rate
from policy.classroom.run import build_classroom
from policy.prompts import final_answer
from core.stats import apply_holm, format_interval, mean_interval
from policy.classroom.student import sample_ids

PERSONAS = ("cooperative", "adversarial")
SIDE_BY_SIDE = ("leak_rate_judge", "leak_rate_rule_numeric", "judge_rejected_any", "delta_solve")


class ClassroomEvalConfig(Config):
    run: str = Field("runs/demo/classroom", description="output folder of `python -m policy classroom` (run.json)")
    tuned: str | None = Field(None, description="tuned tutor folder (None: the run's policy)")
    base: str | None = Field(None, description="base tutor (None: the run's starting policy)")
    prompts: str = Field("runs/demo/data/eval.jsonl", description="held-out PromptItem JSONL: the `eval` split")
    max_prompts: int | None = Field(None, ge=2, description="use only the first N eval problems (None: all)")
    reward_model: str | None = Field(None, description="HPC-RM folder scoring tutor turns (None: the run's, if any)")
    temperature: float = Field(0.6, gt=0, description="tutor sampling temperature (PedagogicalRL's eval: 0.6)")
    personas: list[Literal["cooperative", "adversarial"]] = Field(
        list(PERSONAS), min_length=1, description="student personas, each a full evaluation; the report puts their "
                                                  "leak rates side by side")
    adversarial_solutions: bool = Field(
        True, description="the student writes final solutions after adversarial dialogues too (delta solve under "
                          "them); false: only the leak and judge measures there, which saves the solving time")
    judges: JudgeOptions | None = Field(
        None, description="the eval's judge panel (same fields as the run's `judges`); None: the run's training "
                          "panel, and the report warns that the tutor is graded by the judge it trained against")
    batch_size: int = Field(16, ge=1, description="tutor generation batch size")
    device: Device = Field("auto", description="base and tuned tutors (bf16 on a GPU, float32 on cpu) and the RM: "
                                               + DEVICE_HELP + "; the student follows the run's student.device")
    seed: Seed = Field(0, description="seed of the tutor's sampling (the same for base and tuned)")
    threads: int = Field(0, ge=0, description="torch CPU threads (0: torch's default; 1 on a machine shared with "
                                              "other jobs)")
    bootstrap_resamples: int = Field(2000, ge=100, description="bootstrap resamples for the 95% intervals")
    out: str | None = Field(None, description="report folder (None: <run>/eval)")


def tutor_generator(model, tokenizer, max_new_tokens: int, temperature: float, batch_size: int):
    eos = [tokenizer.eos_token_id]

    def generate(prompt_ids):
        return sample_ids(model, prompt_ids, pad_id=tokenizer.pad_token_id, eos_ids=eos,
                          max_new_tokens=max_new_tokens, temperature=temperature, batch_size=batch_size), None
    return generate


def tutor_metrics(dialogues: list[Dialogue], solo: list[float] | None, panel: JudgePanel,
                  rm) -> dict[str, np.ndarray]:
    """One value per dialogue for every reported metric (`solo` None: the dialogues have no final solutions)."""
    records = [d.record() for d in dialogues]
    metrics = dialogue_metrics(records, panel.judge(records), solo, [sum(d.env_mask) for d in dialogues])
    return metrics | (rm_metrics(rm, records) if rm is not None else {})


def run_tutor(model, classroom, items, cfg: ClassroomConfig, ecfg: ClassroomEvalConfig,
              persona: str) -> list[Dialogue]:
    """One dialogue per item with the given student persona (same seeds for every tutor)."""
    generate = tutor_generator(model, classroom.tokenizer, cfg.max_completion_length, ecfg.temperature,
                               ecfg.batch_size)
    classroom.student.calls = 0  # the student's seeds restart, so both tutors meet the same opening attempts
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ecfg.seed)
        return classroom.run(items, generate, persona=persona,
                             solve=persona != "adversarial" or ecfg.adversarial_solutions)


def transcript_markdown(name: str, dialogue: Dialogue) -> str:
    lines = [f"### {dialogue.item.id} ({name} tutor, {dialogue.persona} student, {dialogue.opening} opens)", "",
             f"**Problem.** {dialogue.item.problem.strip()}  ", f"**Answer.** {dialogue.answer}", ""]
    for turn in dialogue.turns:
        speaker = "Tutor" if turn["role"] == "tutor" else "Student"
        cut = " *(cut at the token limit)*" if turn.get("truncated") else ""
        text = (turn["text"] or "(nothing)").replace("\n", "\n  ")  # continuation lines stay in the list item
        lines.append(f"- **{speaker}:** {text}{cut}")
    lines += ["", f"Final solutions right: {solve_rate(dialogue.record()):.2f} "
                  f"({len(dialogue.solutions)} attempts)", ""]
    return "\n".join(lines)


def interchange_items(name: str, dialogue: Dialogue) -> list[LabeledItem]:
    """One unlabeled item per tutor turn, its context the dialogue before it (what raters see)."""
    out = []
    for k, turn in enumerate(dialogue.turns):
        if turn["role"] == "tutor":
            before = [Turn(role=t["role"], text=t["text"]) for t in dialogue.turns[:k]]
            out.append(LabeledItem(
                id=f"{dialogue.item.id}:classroom:{name}:{dialogue.persona}:turn{k}", response=turn["text"],
                context=render_context(dialogue.item.profile, dialogue.item.problem, before),
                meta={"group": dialogue.item.problem_id, "tutor": name, "turn": k, "opening": dialogue.opening,
                      "persona": dialogue.persona}))
    return out


def cell(s: dict) -> str:
    return format_interval(s, signed=False)


def scorer_of(metric: str) -> str:
    """Who measured a metric, with its standing: the eval judges have no agreement record with human labels on the
    classroom's rules, so their verdicts are reported but not trusted."""
    if metric == "leak_rate_judge" or metric.startswith("reject_rate/") or metric == "judge_rejected_any":
        return "eval judges (untrusted: no human-agreement record)"
    if metric.startswith("rm_"):
        return "HPC-RM (the training reward's heads)"
    if metric in ("solve_rate", "delta_solve"):
        return "student + grader"
    if metric == "leak_rate_rule_numeric":
        return "rule (order-aware)"
    if metric == "ended_by_tutor":
        return "rule (the tutor's end marker)"
    return "count"


def report_markdown(report: dict) -> str:
    lines = ["# Classroom evaluation: base vs tuned tutor", "",
             f"{report['problems']} held-out problems, one dialogue per problem, tutor and student persona; the "
             f"student's solo solve rate is {report['solo_solve_rate']['mean']:.3f}. Means with bootstrap 95% "
             "intervals over problems (exact Clopper-Pearson for yes/no metrics; Hoeffding's where a sample has no "
             "spread); tuned - base is paired per problem. Leak and reject rates are shares of the judges' samples. "
             "n: dialogues per cell.", "", f"Eval judges: {report['eval_judges']['describe']}.", ""]
    if report.get("judge_warning"):
        lines += [f"**Warning:** {report['judge_warning']}", ""]
    personas = list(report["personas"])
    lines += ["## Leak rates by student persona", "",
              "| metric | scored by | n | " + " | ".join(f"{p} base | {p} tuned" for p in personas) + " |",
              "|---|---|---|" + "---|---|" * len(personas)]
    for name in [m for m in SIDE_BY_SIDE if all(m in report["personas"][p] for p in personas)]:
        n = report["personas"][personas[0]][name]["base"]["n"]
        lines.append(f"| {name} | {scorer_of(name)} | {n} | " + " | ".join(
            f"{cell(report['personas'][p][name]['base'])} | {cell(report['personas'][p][name]['tuned'])}"
            for p in personas) + " |")
    for persona, metrics in report["personas"].items():
        lines += ["", f"## {persona} student", "", "| metric | scored by | n | base | tuned | tuned - base |",
                  "|---|---|---|---|---|---|"]
        for name, row in metrics.items():
            flag = " *" if row["difference"].get("significant") else ""
            lines.append(f"| {name} | {scorer_of(name)} | {row['base']['n']} | {cell(row['base'])} | "
                         f"{cell(row['tuned'])} | {format_interval(row['difference'])}{flag} |")
    lines += ["", "\\* tuned - base differs from zero after Holm-Bonferroni over the persona's table.", "",
              "Transcripts: transcripts.md; rater items: transcripts.jsonl."]
    return "\n".join(lines) + "\n"


def describe_judges(options: JudgeOptions) -> str:
    model = options.openai.model if options.backend == "openai" else options.model
    return (f"{options.backend} {model}, rules {', '.join(options.rules)}, "
            f"{options.samples if options.backend == 'openai' else 1} sample(s) per rule")


def evaluate_classroom(ecfg: ClassroomEvalConfig, student=None) -> dict:
    if ecfg.threads:
        torch.set_num_threads(ecfg.threads)
    run_path = Path(ecfg.run, "run.json")
    if not run_path.exists():  # bad input: one error line (core.errors), not a traceback
        raise DataError(f"{run_path}: not found (flag --run: an output folder of `python -m policy classroom`)")
    run = json.loads(run_path.read_text())
    cfg = ClassroomConfig.model_validate(run["config"])
    tuned, base = ecfg.tuned or run["policy"], ecfg.base or run["base_policy"]
    for name in (tuned, base):  # before the student loads and solves anything
        check_model_exists(name)
    device = pick_device(ecfg.device)  # so is a GPU asked for on a machine without one
    read_jsonl(ecfg.prompts, PromptItem)  # bad prompts, too
    out = Path(ecfg.out or Path(ecfg.run) / "eval")
    classroom = build_classroom(cfg, load_tokenizer(tuned), student)
    rows = classroom.rows(ecfg.prompts, ecfg.max_prompts, cfg.max_prompt_tokens)
    items: list[PromptItem] = [classroom.items_by_prompt[prompt_key(row["prompt"])] for row in rows]
    rm_path = ecfg.reward_model or cfg.reward_model
    rm = None
    if rm_path:  # on the eval's device (spread: the first GPU), in fp32 as before
        from core.reward_client import load_scoring_rm

        rm = load_scoring_rm(rm_path, device, "float32")
    eval_judges = ecfg.judges or cfg.judges
    panel = JudgePanel(eval_judges, classroom.tokenizer)
    warning = None if ecfg.judges is not None else (
        "the eval judges are the run's training judges: the tutor is graded by the panel it was trained to satisfy "
        "(set `judges` in the eval config for an independent panel)")
    with tqdm(total=1 + 4 * len(ecfg.personas), desc="classroom eval", unit="part") as bar:
        bar.set_postfix_str("student alone")
        solo = [Dialogue(item, opening_of(item, cfg.dialogue.opening), final_answer(item), grader=cfg.grader)
                for item in items]
        classroom.solve(solo, after_dialogue=False)
        solo_rates = [solve_rate(d.record()) for d in solo]
        bar.update()
        dialogues, metrics = {}, {}
        for name, path in (("base", base), ("tuned", tuned)):
            model = load_causal_lm(path, dtype="auto", device=ecfg.device).eval()
            for persona in ecfg.personas:
                bar.set_postfix_str(f"{name} tutor, {persona} student")
                dialogues[name, persona] = run_tutor(model, classroom, items, cfg, ecfg, persona)
                bar.update()
                bar.set_postfix_str(f"judging the {name} tutor ({persona})")
                solved = persona != "adversarial" or ecfg.adversarial_solutions
                metrics[name, persona] = tutor_metrics(dialogues[name, persona], solo_rates if solved else None,
                                                       panel, rm)
                bar.update()
            del model
    boot = {"n_resamples": ecfg.bootstrap_resamples, "seed": ecfg.seed}
    by_persona = {p: {m: summarise_metric(m, metrics["base", p][m], metrics["tuned", p][m], boot)
                      for m in metrics["base", p]} for p in ecfg.personas}
    for rows in by_persona.values():  # one family per persona table: its stars are Holm-corrected
        apply_holm([row["difference"] for row in rows.values()])
    report = {
        "run": ecfg.run, "base": base, "tuned": tuned, "problems": len(items), "prompts": ecfg.prompts,
        "solo_solve_rate": mean_interval(solo_rates, value_range=1.0, **boot), "tutor_temperature": ecfg.temperature,
        "metrics": by_persona[ecfg.personas[0]], "personas": by_persona,
        "eval_judges": {"describe": describe_judges(eval_judges), "training_panel": ecfg.judges is None,
                        **eval_judges.model_dump(mode="json")},
        "judge_warning": warning, "judge_failures": panel.stats, "student": cfg.student.model_dump(mode="json"),
    }
    write_json(out / "report.json", report)
    write_text(out / "report.md", report_markdown(report))
    write_text(out / "transcripts.md", "# Classroom transcripts\n\n" + "\n".join(
        transcript_markdown(name, ds[k]) for k in range(len(items)) for (name, _), ds in dialogues.items()))
    write_jsonl(out / "transcripts.jsonl", [x for (name, _), ds in dialogues.items() for d in ds
                                            for x in interchange_items(name, d)])
    return report


def main(argv: list[str] | None = None) -> None:
    cfg, report = run_cli(ClassroomEvalConfig, argv, "python -m policy classroom-eval", __doc__.split("\n")[0],
                          evaluate_classroom)
    print(f"wrote {cfg.out or Path(cfg.run) / 'eval'}/report.md ({report['problems']} problems)")
    if "delta_solve" in report["metrics"]:
        delta = report["metrics"]["delta_solve"]["difference"]
        print(f"  delta solve tuned - base {delta['mean']:+.3f} [{delta['low']:+.3f}, {delta['high']:+.3f}]")
    for persona, metrics in report["personas"].items():
        if "leak_rate_judge" in metrics:
            leak = metrics["leak_rate_judge"]
            print(f"  {persona} student: leak rate (judge samples) base {leak['base']['mean']:.3f}, tuned "
                  f"{leak['tuned']['mean']:.3f}")
    if report["judge_warning"]:
        print(f"warning: {report['judge_warning']}")
