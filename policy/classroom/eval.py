"""`python -m policy classroom-eval --run runs/demo/classroom`: base vs tuned tutor in the classroom, on held-out
`eval` problems, with the run's own student, dialogue and judge settings.

Per problem, each tutor holds one dialogue with the student (same seed for both), then the student writes its final
solutions; the student also solves every problem alone. Reported, for base, tuned and tuned minus base (paired
over problems, bootstrap 95% intervals, policy/evaluation/stats.py):
- delta solve: the solve rate after the dialogue minus the student's solo solve rate;
- leak rate (the does_not_leak_answer judge rejects), judge rejection rate (any rule rejects), and a rule-based
  check that needs no judge: a tutor turn states the final number before the student did;
- per-turn RM scores (mean over the tutor's turns, when the run or `--reward-model` has an RM) and dialogue
  length (tutor turns, tutor tokens).
Writes report.md, report.json, transcripts.md (readable) and transcripts.jsonl (one interchange item per tutor
turn, which `python -m annotation serve --tasks` shows to human raters).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from tqdm.auto import tqdm

from core.config import Config, Seed, run_cli
from core.models import DEVICE_HELP, Device, check_model_exists, load_causal_lm, load_tokenizer, pick_device
from core.schema import (DataError, LabeledItem, PromptItem, Turn, read_jsonl, render_context, write_json, write_jsonl,
                         write_text)
from policy.classroom.dialogue import Dialogue, opening_of, prompt_key
from policy.classroom.config import ClassroomConfig
from policy.classroom.judges import JudgePanel
from policy.classroom.rewards import solve_rate
from policy.classroom.run import build_classroom
from policy.prompts import final_answer
from policy.train.rewards import leaked_answers
from policy.evaluation.stats import mean_interval, paired_difference
from policy.classroom.student import sample_ids

LEAK_RULE = "does_not_leak_answer"


class ClassroomEvalConfig(Config):
    run: str = Field("runs/demo/classroom", description="output folder of `python -m policy classroom` (run.json)")
    tuned: str | None = Field(None, description="tuned tutor folder (None: the run's policy)")
    base: str | None = Field(None, description="base tutor (None: the run's starting policy)")
    prompts: str = Field("runs/demo/data/eval.jsonl", description="held-out PromptItem JSONL: the `eval` split")
    max_prompts: int | None = Field(None, ge=2, description="use only the first N eval problems (None: all)")
    reward_model: str | None = Field(None, description="HPC-RM folder scoring tutor turns (None: the run's, if any)")
    temperature: float | None = Field(None, gt=0, description="tutor sampling temperature (None: the run's)")
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


def tutor_metrics(dialogues: list[Dialogue], solo: list[float], panel: JudgePanel, rm) -> dict[str, np.ndarray]:
    """One value per dialogue for every reported metric."""
    records = [d.record() for d in dialogues]
    verdicts = panel.judge(records)
    tutor_text = ["\n".join(r["tutor_texts"]) for r in records]
    student_known = ["\n".join([r["problem"]] + [t["text"] for t in r["turns"] if t["role"] == "student"])
                     for r in records]
    metrics = {
        "solve_rate": np.array([solve_rate(r) for r in records]),
        "delta_solve": np.array([solve_rate(r) for r in records]) - np.asarray(solo),
        "judge_rejected": np.array([any(v.rejects for v in per.values()) for per in verdicts], dtype=float),
        "leak_rate_rule_numeric": leaked_answers(tutor_text, [r["answer"] for r in records], student_known)
        .astype(float),
        "tutor_turns": np.array([len(r["tutor_texts"]) for r in records], dtype=float),
        "tutor_tokens": np.array([sum(d.env_mask) for d in dialogues], dtype=float),
        "ended_by_tutor": np.array([r["ended_by_tutor"] for r in records], dtype=float),
    }
    if panel.templates.get(LEAK_RULE) is not None:
        metrics["leak_rate_judge"] = np.array([per[LEAK_RULE].rejects for per in verdicts], dtype=float)
    if rm is not None:
        contexts = [c for r in records for c in r["tutor_contexts"]]
        scores = rm.score(contexts, [t for r in records for t in r["tutor_texts"]])
        ends = np.cumsum([len(r["tutor_texts"]) for r in records])
        for dim, values in scores.items():
            metrics[f"rm_{dim}_per_turn"] = np.array([values[e - n:e].mean() if n else 0.0 for e, n in
                                                      zip(ends, [len(r["tutor_texts"]) for r in records])])
    return metrics


def run_tutor(path: str, classroom, items, cfg: ClassroomConfig, ecfg: ClassroomEvalConfig) -> list[Dialogue]:
    model = load_causal_lm(path, dtype="auto", device=ecfg.device).eval()
    generate = tutor_generator(model, classroom.tokenizer, cfg.max_completion_length,
                               ecfg.temperature or cfg.temperature, ecfg.batch_size)
    classroom.student.calls = 0  # the student's seeds restart, so both tutors meet the same opening attempts
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ecfg.seed)
        return classroom.run(items, generate)


def transcript_markdown(name: str, dialogue: Dialogue) -> str:
    lines = [f"### {dialogue.item.id} ({name} tutor, {dialogue.opening} opens)", "",
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
                id=f"{dialogue.item.id}:classroom:{name}:turn{k}", response=turn["text"],
                context=render_context(dialogue.item.profile, dialogue.item.problem, before),
                meta={"group": dialogue.item.problem_id, "tutor": name, "turn": k, "opening": dialogue.opening}))
    return out


def report_markdown(report: dict) -> str:
    lines = ["# Classroom evaluation: base vs tuned tutor", "",
             f"{report['problems']} held-out problems, one dialogue per problem and tutor; the student's solo solve "
             f"rate is {report['solo_solve_rate']['mean']:.3f}. Means with bootstrap 95% intervals over problems; "
             "the last column is tuned minus base, paired per problem.", "",
             "| metric | base | tuned | tuned - base |", "|---|---|---|---|"]

    def cell(s: dict) -> str:
        return f"{s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"
    for name, row in report["metrics"].items():
        flag = " *" if row["difference"]["excludes_zero"] else ""
        lines.append(f"| {name} | {cell(row['base'])} | {cell(row['tuned'])} | {cell(row['difference'])}{flag} |")
    lines += ["", "\\* the interval excludes zero.", "", "Transcripts: transcripts.md; rater items: transcripts.jsonl."]
    return "\n".join(lines) + "\n"


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
    panel = JudgePanel(cfg.judges)
    with tqdm(total=5, desc="classroom eval", unit="part") as bar:
        bar.set_postfix_str("student alone")
        solo = [Dialogue(item, opening_of(item, cfg.dialogue.opening), final_answer(item)) for item in items]
        classroom.solve(solo, after_dialogue=False)
        solo_rates = [solve_rate(d.record()) for d in solo]
        bar.update()
        dialogues, metrics = {}, {}
        for name, path in (("base", base), ("tuned", tuned)):
            bar.set_postfix_str(f"{name} tutor's dialogues")
            dialogues[name] = run_tutor(path, classroom, items, cfg, ecfg)
            bar.update()
            bar.set_postfix_str(f"judging the {name} tutor")
            metrics[name] = tutor_metrics(dialogues[name], solo_rates, panel, rm)
            bar.update()
    boot = {"n_resamples": ecfg.bootstrap_resamples, "seed": ecfg.seed}
    report = {
        "run": ecfg.run, "base": base, "tuned": tuned, "problems": len(items), "prompts": ecfg.prompts,
        "solo_solve_rate": mean_interval(solo_rates, **boot),
        "metrics": {m: {"base": mean_interval(metrics["base"][m], **boot),
                        "tuned": mean_interval(metrics["tuned"][m], **boot),
                        "difference": paired_difference(metrics["tuned"][m], metrics["base"][m], **boot)}
                    for m in metrics["base"]},
        "judge_failures": panel.stats, "student": cfg.student.model_dump(mode="json"),
    }
    write_json(out / "report.json", report)
    write_text(out / "report.md", report_markdown(report))
    write_text(out / "transcripts.md", "# Classroom transcripts\n\n" + "\n".join(
        transcript_markdown(name, d) for k in range(len(items)) for name, ds in dialogues.items() for d in [ds[k]]))
    write_jsonl(out / "transcripts.jsonl", [x for name, ds in dialogues.items() for d in ds
                                            for x in interchange_items(name, d)])
    return report


def main(argv: list[str] | None = None) -> None:
    cfg, report = run_cli(ClassroomEvalConfig, argv, "python -m policy classroom-eval", __doc__.split("\n")[0],
                          evaluate_classroom)
    delta = report["metrics"]["delta_solve"]["difference"]
    print(f"wrote {cfg.out or Path(cfg.run) / 'eval'}/report.md: delta solve tuned - base {delta['mean']:+.3f} "
          f"[{delta['low']:+.3f}, {delta['high']:+.3f}] over {report['problems']} problems")
