"""The classroom's rewards, each its own function in policy/train/rewards.py's registry, so `reward_weights` combine
them with the HPC-RM heads and TRL logs each one (`rewards/<name>/mean`). They read the `dialogue` column that
`Classroom.rollout_func` returns (turns, the student's final solutions, the reference answer).

- `solve_rate` (x `weight`): the share of the student's final solutions whose answer equals the reference, by the
  record's `grader`: `boxed` (the last `\\boxed{}`, braces balanced, equals the reference as text, case and outer
  spaces aside: PedagogicalRL's rule) or `math_verify` (`math-verify` where it parses both, the project's number
  parser otherwise);
- `judges`: -`penalty` (lambda) when any pedagogical judge rejects the dialogue. `mode: soft` subtracts lambda
  from the rest; `mode: hard` makes the sample's whole reward -lambda (every other reward returns 0 for it);
- `clean_end`: +`bonus` when the tutor closed the dialogue with the end marker;
- `turn_truncated`: -`penalty` when any tutor turn hit its token limit;
- `think_format`: -`unbalanced` per tutor turn with unbalanced <think> tags, + `use_bonus` x the share of tutor
  turns that plan in <think> (PedagogicalRL's thinking term);
- `TurnHeadReward`: an HPC-RM head scored on every tutor turn in its context, mean over the turns.
"""
from __future__ import annotations

import re
import time
from abc import abstractmethod
from typing import Literal

import numpy as np
from pydantic import Field

from core.config import Config
from policy.classroom.judges import Verdict
from policy.prompts import parse_number
from policy.train.rewards import ExtraReward, HeadReward, register

CLASSROOM_REWARDS = ("solve_rate", "judges", "clean_end", "turn_truncated", "think_format")
BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?!.*\d)", re.S)


def answer_is_right(solution: str, reference: str) -> bool:
    """math-verify when it parses both sides; else the number in the last \\boxed{} (or the last number) against
    the reference's number."""
    from math_verify import parse, verify

    gold, guess = parse(reference), parse(solution)
    if gold and guess:
        return bool(verify(gold, guess))
    target = parse_number(reference)
    boxed = BOXED.findall(solution)
    found = parse_number(boxed[-1]) if boxed else None
    if found is None:
        last = LAST_NUMBER.search(solution)
        found = parse_number(last.group()) if last else None
    return target is not None and found is not None and bool(np.isclose(found, target))


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}`, nested braces included; None without one or when it never closes."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for k in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth < 0:
            return text[begin:k]
    return None


def boxed_is_right(solution: str, reference: str) -> bool:
    """PedagogicalRL's grading: the last boxed answer equals the reference as text (case and outer spaces aside)."""
    found = last_boxed(solution)
    return found is not None and found.strip().lower() == str(reference).strip().lower()


GRADERS = {"boxed": boxed_is_right, "math_verify": answer_is_right}


def solve_rate(record: dict) -> float:
    solutions = record["solutions"]
    grade = GRADERS[record.get("grader", "math_verify")]
    return float(np.mean([grade(s, record["answer"]) for s in solutions])) if solutions else 0.0


class DialogueReward(ExtraReward):
    """A reward computed from each dialogue record alone: subclasses implement `score(record)`."""

    @abstractmethod
    def score(self, record: dict) -> float:
        """The reward of one finished dialogue."""

    def __call__(self, prompts, completions, completion_ids, *, dialogue, **columns) -> list[float]:
        return [self.score(record) for record in dialogue]


class SolveParams(Config):
    weight: float = Field(1.0, ge=0, description="weight of the solve rate in TRL's weighted sum")


@register
class SolveRate(DialogueReward):
    name = "solve_rate"
    Params = SolveParams

    def score(self, record: dict) -> float:
        return solve_rate(record)


class JudgeParams(Config):
    penalty: float = Field(1.0, ge=0, description="lambda: the penalty when a judge rejects the dialogue")
    mode: Literal["soft", "hard"] = Field(
        "soft", description="soft: subtract lambda; hard: the sample's whole reward becomes -lambda")


@register
class PedagogicalJudges(ExtraReward):
    """Calls the judge panel once per batch (cached: hard mode asks for the verdicts twice) and logs each
    rule's rejection rate and the judges' failures."""

    name = "judges"
    Params = JudgeParams

    def __init__(self, params, setup):
        super().__init__(params, setup)
        if "judges" not in setup.services:
            raise ValueError("the `judges` reward needs the classroom's judge panel (python -m policy classroom)")
        self.panel = setup.services["judges"]
        self._key, self._rejected = None, np.zeros(0, dtype=bool)

    def rejected(self, dialogue: list[dict], log_metric=None) -> np.ndarray:
        key = tuple((record["id"], repr(record["turns"])) for record in dialogue)
        if key != self._key:
            started = time.perf_counter()
            judged_before = all("verdicts" in record for record in dialogue)
            if judged_before:  # in the rollout (hard mode, before solving), which logged its own time
                verdicts = [{rule: Verdict.of(v) for rule, v in record["verdicts"].items()} for record in dialogue]
            else:
                verdicts = self.panel.judge(dialogue)
                for record, per in zip(dialogue, verdicts, strict=True):  # the training transcripts show them
                    record["verdicts"] = {rule: v.as_dict() for rule, v in per.items()}
            self._rejected = np.array([any(v.rejects for v in per.values()) for per in verdicts], dtype=bool)
            self._key = key
            if log_metric is not None:
                if not judged_before:
                    log_metric("time/judges_s", time.perf_counter() - started)
                for rule in self.panel.templates:
                    log_metric(f"judges/{rule}/reject_rate", float(np.mean([per[rule].rejects for per in verdicts])))
                    log_metric(f"judges/{rule}/failed_rate",
                               float(np.mean([per[rule].status == "failed" for per in verdicts])))
        return self._rejected

    @property
    def vetoes(self) -> bool:
        return self.params.mode == "hard"

    def vetoed(self, completions, *, dialogue, **columns) -> np.ndarray:
        return self.rejected(dialogue, columns.get("log_metric"))

    def __call__(self, prompts, completions, completion_ids, *, dialogue, **columns) -> list[float]:
        return [-self.params.penalty if r else 0.0 for r in self.rejected(dialogue, columns.get("log_metric"))]


class CleanEndParams(Config):
    bonus: float = Field(0.1, ge=0, description="reward when the tutor ends the dialogue with the end marker")


@register
class CleanEnd(DialogueReward):
    name = "clean_end"
    Params = CleanEndParams

    def score(self, record: dict) -> float:
        return self.params.bonus if record["ended_by_tutor"] else 0.0


class TruncatedParams(Config):
    penalty: float = Field(0.5, ge=0, description="penalty when any tutor turn was cut at its token limit")


@register
class TurnTruncated(DialogueReward):
    name = "turn_truncated"
    Params = TruncatedParams

    def score(self, record: dict) -> float:
        cut = any(t.get("truncated") for t in record["turns"] if t["role"] == "tutor")
        return -self.params.penalty if cut else 0.0


class ThinkParams(Config):
    unbalanced: float = Field(0.5, ge=0, description="penalty per tutor turn whose <think> tags do not pair up")
    use_bonus: float = Field(0.5, ge=0, description="reward x the share of tutor turns that plan in <think>")


def think_balanced(text: str) -> bool:
    """Every <think> closes, in order, and nothing closes that did not open."""
    depth = 0
    for tag in re.findall(r"</?think>", text):
        depth += 1 if tag == "<think>" else -1
        if depth not in (0, 1):
            return False
    return depth == 0


def think_score(raw_turns: list[str], params: ThinkParams) -> float:
    if not raw_turns:
        return 0.0
    balanced = [think_balanced(t) for t in raw_turns]
    used = sum(ok and "<think>" in t for ok, t in zip(balanced, raw_turns, strict=True))
    return -params.unbalanced * balanced.count(False) + params.use_bonus * used / len(raw_turns)


@register
class ThinkFormat(DialogueReward):
    name = "think_format"
    Params = ThinkParams

    def score(self, record: dict) -> float:
        return think_score([t["raw"] for t in record["turns"] if t["role"] == "tutor"], self.params)


class TurnHeadReward(HeadReward):
    """An RM head on every tutor turn (in the context before it), mean over a dialogue's turns; all heads share
    one RM forward over all turns of the batch."""

    def __call__(self, prompts, completions, completion_ids=None, *, dialogue, **columns) -> list[float]:
        contexts = [c for record in dialogue for c in record["tutor_contexts"]]
        texts = [t for record in dialogue for t in record["tutor_texts"]]
        scores = self.cache.scores(contexts, texts)[self.dimension]
        out, start = [], 0
        for record in dialogue:
            n = len(record["tutor_texts"])
            out.append(float(np.mean(scores[start:start + n])) if n else 0.0)
            start += n
        return out
