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
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from core.config import Config, Seed
from core.schema import PromptItem, read_jsonl
from core.sources import load_gsm8k, load_mathtutorbench
from policy.rollout import Rollout, sample_responses
from core.stats import mean_interval, rate_interval, win_rate

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
    items: int = Field(24, ge=2, description="dialogues per setting, drawn at random (seeded, a separate draw per "
                                            "setting) from those whose problem no rm/rl prompt uses; the benchmark "
                                            "uses every dialogue of its file (1,150 main / 327 hard)")
    seed: Seed = Field(0, description="seed of the dialogue draws")
    avoid_problems_from: list[str] = Field(default_factory=list, description="PromptItem JSONL files (the rm and rl "
                                           "splits) whose problems no drawn dialogue may share")
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
    problems: list[str] | None = None  # each dialogue's problem id (the paired comparison resamples problems)
    available: int = 0  # dialogues of the file before the draw (after the exclusions)
    file_items: int = 0  # dialogues of the file


def _dialogue_text(turns) -> str:
    return "\n".join(f"{'Teacher' if t.role == 'tutor' else 'Student'}: {t.text}" for t in turns)


def avoided_problems(options: TutorBenchOptions) -> set[str]:
    """Problem ids of the rm/rl prompt files (`avoid_problems_from`): a dialogue on them measures training data."""
    return {item.problem_id for path in options.avoid_problems_from for item in read_jsonl(path, PromptItem)}


def load_task(setting: str, options: TutorBenchOptions, excluded: set[str] = frozenset()) -> TeacherTurnTask:
    """`items` dialogues of the setting's file drawn at random (seed: options.seed and the setting's place in
    SETTINGS, so each setting has its own draw) from those whose problem is neither excluded nor an rm/rl one."""
    template, data = SETTINGS[setting]
    every = load_mathtutorbench(Path(options.data_root) / DATA[data])
    skip = set(excluded) | avoided_problems(options)
    eligible = [item for item in every if item.problem_id not in skip]
    rng = np.random.default_rng([options.seed, list(SETTINGS).index(setting)])
    picks = sorted(rng.choice(len(eligible), size=min(options.items, len(eligible)), replace=False))
    items = [eligible[i] for i in picks]
    return TeacherTurnTask(
        setting, [item.id for item in items], [item.context for item in items],
        [[{"role": "user", "content": template.format(problem=item.problem, dialogue=_dialogue_text(item.turns))}]
         for item in items],
        [item.reference_responses[0] for item in items], [item.problem_id for item in items], len(eligible),
        len(every),
    )


def cut_at_stops(text: str) -> str:
    """The benchmark's stop strings end the teacher turn (one at position 0 too: the turn is then empty)."""
    cut = len(text)
    for stop in STOPS:
        where = text.find(stop)
        if where >= 0:
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
    (the training RM: its weighted reward); with base and tuned, 'tuned_vs_base': the paired per-dialogue
    difference, averaged per problem and bootstrapped over problems."""
    out: dict[str, dict] = {}
    for scorer in scorers:
        teacher = _overall(scorer, scorer.score(task.contexts, task.teacher))
        out[scorer.name] = {"teacher_mean": float(np.nanmean(teacher))}
        mine = {policy: _overall(scorer, scorer.score(task.contexts, texts)) for policy, texts in turns.items()}
        for policy, scores in mine.items():
            keep = ~(np.isnan(scores) | np.isnan(teacher))
            out[scorer.name][policy] = {
                "win_rate": win_rate(scores[keep], teacher[keep], **boot),
                "margin": mean_interval(scores[keep] - teacher[keep], **boot), "mean": float(np.nanmean(scores)),
            }
        if {"base", "tuned"} <= set(mine):
            out[scorer.name]["tuned_vs_base"] = over_problems(mine["tuned"] - mine["base"], task.problems, boot,
                                                              2 * scorer.top)
    return out


def over_problems(diff: np.ndarray, problems: list[str] | None, boot: dict, value_range: float) -> dict:
    """Mean per-item difference with a bootstrap interval over problems (items of one problem averaged first)."""
    diff = np.asarray(diff, dtype=np.float64)
    problems = problems or [str(i) for i in range(len(diff))]
    groups: dict[str, list[float]] = {}
    for value, problem in zip(diff, problems, strict=True):
        if not np.isnan(value):
            groups.setdefault(problem, []).append(float(value))
    per_problem = np.array([np.mean(v) for v in groups.values()])
    if len(per_problem) == 0:
        return {"n": 0, "note": "no problem scored for both policies"}
    return {**mean_interval(per_problem, value_range=value_range, **boot), "items": int(sum(map(len, groups.values())))}


def _overall(scorer, scores: dict[str, np.ndarray]) -> np.ndarray:
    if "weighted" in scores:
        return np.asarray(scores["weighted"], dtype=np.float64)
    return np.nanmean(np.vstack([scores[d] for d in scorer.dimensions]), axis=0)


# lm-eval-harness's gsm8k filters, on this prompt's "Final answer" (theirs: "#### "): strict = the number after the
# marker; flexible = the last number-like string of the answer. Both are normalised the harness's way (commas, "$"
# and a final "." removed) and compared exactly (as decimals: "26.00" equals "26", 25.9999 does not).
_STRICT = re.compile(r"final answer\s*[:：]?\s*\$?\s*(-?[0-9.,]+)", re.IGNORECASE)
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def exact_number(text: str | None) -> Decimal | None:
    if text is None:
        return None
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


def extract_answers(text: str) -> dict[str, Decimal | None]:
    """{'strict': the number after 'Final answer', 'flexible': the last number} of the text before the next
    'Question:' (the harness's stop string)."""
    text = text.split("Question:")[0]
    strict = _STRICT.search(text)
    flexible = [m.group(0) for m in _FLEXIBLE.finditer(text)]
    return {"strict": exact_number(strict.group(1)) if strict else None,
            "flexible": exact_number(flexible[-1]) if flexible else None}


def gsm8k_accuracy(sample: Sampler, options: TutorBenchOptions, gsm8k_path: str, batch_size: int, name: str,
                   boot: dict) -> dict:
    """Strict- and flexible-match accuracy (exact number comparison), each with its Clopper-Pearson interval;
    `correct` per problem (strict) for the paired base-vs-tuned comparison."""
    problems = load_gsm8k(gsm8k_path)[:options.gsm8k_accuracy_items]
    chats = [[{"role": "user", "content": PROBLEM_SOLVING.format(question=p.question)}] for p in problems]
    outs = sample(chats, max_new_tokens=options.gsm8k_max_new_tokens, temperature=0, batch_size=batch_size,
                  desc=f"GSM8K ({name})")
    hits: dict[str, list[bool]] = {"strict": [], "flexible": []}
    for problem, out in zip(problems, outs, strict=True):
        want, got = exact_number(problem.final_answer), extract_answers(out.text)
        for mode in hits:
            hits[mode].append(want is not None and got[mode] is not None and got[mode] == want)
    confidence = boot.get("confidence", 0.95)
    return {"accuracy": rate_interval(hits["strict"], confidence),
            "flexible": rate_interval(hits["flexible"], confidence), "items": len(problems),
            "correct": [int(h) for h in hits["strict"]]}
