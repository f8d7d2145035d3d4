"""MathTutorBench-style checks that run offline (after eth-lre/mathtutorbench at 54b6213).

- **Teacher-turn win rate** (scaffolding generation, pedagogy following, and their hard subsets): on the MathDial
  part of MathTutorBench each dialogue's last turn is the real teacher's. The policy writes that turn instead
  (greedy, at most two sentences, cut at the benchmark's stop strings), and every scorer scores both. Reported per
  scorer: the win rate P(score(policy) > score(teacher)) (ties count one half) and the mean margin, each with a
  bootstrap 95% interval. The benchmark's own scorer is a pedagogical RM; here the scorers are the eval's
  independent judges and RMs (and the training RM, shown but not trusted).
- **Problem solving**: GSM8K accuracy (two-shot, greedy, "Final answer: X"), the general-ability check.

Both sample through a `Sampler` (a transformers model, or `policy eval --sampler vllm`'s offline engine).

The prompts are the benchmark's own (configs/*.yaml of the MathTutorBench repository), sent as one user message.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from core.config import Config
from core.sources import load_gsm8k, load_mathtutorbench
from policy.prompts import parse_number
from policy.rollout import Rollout, sample_responses
from policy.evaluation.stats import mean_interval, win_rate

SCAFFOLDING = (
    "You are an experienced math teacher and you are going to respond to a student in a useful and caring way. "
    "The student is trying to solve the following problem.\nProblem: {problem}\nConversation:\n{dialogue}\n"
    "Teacher (maximum two sentences): "
)
PEDAGOGY = (
    "Be a friendly, supportive tutor. Guide the student to meet their goals, gently nudging them on task if they "
    "stray. Ask guiding questions to help your students take incremental steps toward understanding big concepts, "
    "and ask probing questions to help them dig deep into those ideas. Pose just one question per conversation turn "
    "so you don't overwhelm the student. Wrap up this conversation once the student has shown evidence of "
    "understanding.\nProblem: {problem}\nConversation:\n{dialogue}\nTeacher (maximum two sentences): "
)
DATA = {"main": "data/mathtutorbench/mathdial_bridge.mathdial_only.json",
        "hard": "data/mathtutorbench/mathdial_bridge_hard.mathdial_only.json"}
SETTINGS = {
    "scaffolding_generation": (SCAFFOLDING, "main"), "scaffolding_generation_hard": (SCAFFOLDING, "hard"),
    "pedagogy_following": (PEDAGOGY, "main"), "pedagogy_following_hard": (PEDAGOGY, "hard"),
}
STOPS = ("Student:", "\n\n", "Teacher:")
# how a policy answers chats: sample(chats, max_new_tokens=, temperature=, batch_size=, desc=) -> one Rollout each
# (a transformers model through `model_sampler`, or policy eval's vLLM engine)
Sampler = Callable[..., list[Rollout]]
PROBLEM_SOLVING = (
    "You are a helpful math tutor. Solve the question step-by-step. Provide your final answer after 'Final answer'.\n"
    "Question: Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and sells the rest at "
    "the farmers market daily for $2 per egg. How much in dollars does she make per day at the farmers market?\n"
    "Answer: Janet sells 16-3 = 13 eggs. Janet makes 13*2 = 26 dollars per day at the farmers' market. "
    "Final answer: 26\n"
    "Question: Natalie sold clips to 48 of her friends in April, and then she sold half as many clips in May. How "
    "many clips did Natalie sell in all?\n"
    "Answer: Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in April and May. "
    "Final answer: 72\nQuestion: {question}\nAnswer:"
)


class TutorBenchOptions(Config):
    @field_validator("settings")
    @classmethod
    def _known_settings(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in SETTINGS]
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown} (known: {list(SETTINGS)})")
        return value

    settings: list[str] = Field(default_factory=list, description=f"teacher-turn tasks to run, of {list(SETTINGS)} "
                                                                    "(empty: none)")
    items: int = Field(24, ge=2, description="dialogues per setting (the first N of the file)")
    max_new_tokens: int = Field(60, ge=1, description="tokens for the policy's teacher turn")
    data_root: str = Field(".", description="folder holding data/mathtutorbench/ (the repository root)")
    gsm8k_accuracy_items: int = Field(0, ge=0, description="GSM8K test problems for problem-solving accuracy "
                                                           "(0: skip)")
    gsm8k_max_new_tokens: int = Field(192, ge=1, description="tokens for a GSM8K solution")


@dataclass
class TeacherTurnTask:
    setting: str
    ids: list[str]
    contexts: list[str]  # what the scorers read before a response
    chats: list[list[dict]]  # what the policy answers
    teacher: list[str]  # the real teacher's turn


def _dialogue_text(turns) -> str:
    return "\n".join(f"{'Teacher' if t.role == 'tutor' else 'Student'}: {t.text}" for t in turns)


def load_task(setting: str, options: TutorBenchOptions, excluded: set[str] = frozenset()) -> TeacherTurnTask:
    """The first `items` dialogues of the setting's file whose problem is not excluded."""
    template, data = SETTINGS[setting]
    items = [item for item in load_mathtutorbench(Path(options.data_root) / DATA[data])
             if item.problem_id not in excluded][:options.items]
    return TeacherTurnTask(
        setting, [item.id for item in items], [item.context for item in items],
        [[{"role": "user", "content": template.format(problem=item.problem, dialogue=_dialogue_text(item.turns))}]
         for item in items],
        [item.reference_responses[0] for item in items],
    )


def cut_at_stops(text: str) -> str:
    """The benchmark's stop strings end the teacher turn."""
    cut = len(text)
    for stop in STOPS:
        where = text.find(stop)
        if where > 0:
            cut = min(cut, where)
    return text[:cut].strip()


def model_sampler(model, tokenizer) -> Sampler:
    """A transformers model as a `Sampler` (policy/rollout.py's batched `sample_responses`)."""
    def sample(chats, **kwargs):
        return sample_responses(model, tokenizer, chats, **kwargs)
    return sample


def write_teacher_turns(sample: Sampler, task: TeacherTurnTask, options: TutorBenchOptions, batch_size: int,
                        name: str) -> list[str]:
    outs = sample(task.chats, max_new_tokens=options.max_new_tokens, temperature=0, batch_size=batch_size,
                  desc=f"{task.setting} ({name})")
    return [cut_at_stops(o.text) for o in outs]


def teacher_win_rates(scorers, task: TeacherTurnTask, turns: dict[str, list[str]], boot: dict) -> dict:
    """scorer -> policy -> {win_rate, margin} against the teacher's turn, on the mean over the scorer's dimensions
    (the training RM: its weighted reward)."""
    out: dict[str, dict] = {}
    for scorer in scorers:
        teacher = _overall(scorer, scorer.score(task.contexts, task.teacher))
        out[scorer.name] = {"teacher_mean": float(np.nanmean(teacher))}
        for policy, texts in turns.items():
            mine = _overall(scorer, scorer.score(task.contexts, texts))
            keep = ~(np.isnan(mine) | np.isnan(teacher))
            out[scorer.name][policy] = {
                "win_rate": win_rate(mine[keep], teacher[keep], **boot),
                "margin": mean_interval(mine[keep] - teacher[keep], **boot), "mean": float(np.nanmean(mine)),
            }
    return out


def _overall(scorer, scores: dict[str, np.ndarray]) -> np.ndarray:
    if "weighted" in scores:
        return np.asarray(scores["weighted"], dtype=np.float64)
    return np.nanmean(np.vstack([scores[d] for d in scorer.dimensions]), axis=0)


_FINAL = re.compile(r"final answer\s*[:：]?\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)


def extract_final_answer(text: str) -> float | None:
    """The number after 'Final answer', else the last number before the next 'Question:'."""
    text = text.split("Question:")[0]
    match = _FINAL.search(text)
    if match:
        return parse_number(match.group(1))
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return parse_number(numbers[-1]) if numbers else None


def gsm8k_accuracy(sample: Sampler, options: TutorBenchOptions, gsm8k_path: str, batch_size: int, name: str,
                   boot: dict) -> dict:
    problems = load_gsm8k(gsm8k_path)[:options.gsm8k_accuracy_items]
    chats = [[{"role": "user", "content": PROBLEM_SOLVING.format(question=p.question)}] for p in problems]
    outs = sample(chats, max_new_tokens=options.gsm8k_max_new_tokens, temperature=0, batch_size=batch_size,
                  desc=f"GSM8K ({name})")
    correct = []
    for problem, out in zip(problems, outs, strict=True):
        got, want = extract_final_answer(out.text), parse_number(problem.final_answer)
        correct.append(float(got is not None and want is not None and np.isclose(got, want)))
    return {"accuracy": mean_interval(np.array(correct), **boot), "items": len(problems)}
