"""Reward functions in TRL's calling convention: `f(prompts=, completions=, completion_ids=, **columns) -> list[float]`.

- One callable per reward-model head, named after its dimension, so TRL logs `rewards/<dimension>/mean`. All heads
  read one `RMScoreCache`, which runs the reward model once per batch of completions (not once per head).
- Extra rewards live in a small registry: a new reward is one new class with a `name`, a pydantic `Params` and
  `__call__`. Shipped: `length_penalty` (too long, cut off at the token limit, or empty) and `answer_leak`
  (after PedagogicalRL: the final answer appears in the response before the student found it).
- A reward may veto whole samples (`answer_leak` in hard mode): every other reward then returns 0 for them, so
  the weighted sum TRL computes is exactly that reward's value (-lambda).

The extras enter TRL's weighted sum with weight 1; their size is set by their own parameters.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from core.config import Config, validate
from policy.prompts import numbers_in, parse_number


def completion_text(completion: Any) -> str:
    """TRL passes chat completions as [{'role': 'assistant', 'content': ...}] and plain ones as strings."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role", "assistant") == "assistant")


class RMScoreCache:
    """Scores a batch once with the reward model and hands each head its column; `forwards` counts RM calls."""

    def __init__(self, rm, batch_size: int = 32):
        self.rm = rm
        self.batch_size = batch_size
        self.forwards = 0
        self._key: tuple | None = None
        self._scores: dict[str, np.ndarray] = {}

    def scores(self, contexts: list[str], responses: list[str]) -> dict[str, np.ndarray]:
        key = (tuple(contexts), tuple(responses))
        if key != self._key:
            self._scores = self.rm.score(list(contexts), list(responses), batch_size=self.batch_size)
            self._key = key
            self.forwards += 1
        return self._scores


@dataclass
class RewardSetup:
    """What extra rewards may need to know about the run."""

    max_completion_length: int
    eos_token_ids: list[int] = field(default_factory=list)
    services: dict = field(default_factory=dict)  # objects a reward calls, e.g. the classroom's judge panel


class ExtraReward(ABC):
    """Base of the registry. Subclasses set `name` and `Params` and implement `__call__`; a reward that can
    replace a sample's whole reward sets `vetoes` and implements `vetoed`."""

    name: ClassVar[str]
    Params: ClassVar[type[Config]]

    def __init__(self, params: Config, setup: RewardSetup):
        self.params = params
        self.setup = setup
        self.__name__ = self.name

    @property
    def vetoes(self) -> bool:
        return False

    def vetoed(self, completions: list, **columns) -> np.ndarray:
        """Boolean mask of the samples whose whole reward this reward replaces."""
        return np.zeros(len(completions), dtype=bool)

    @abstractmethod
    def __call__(self, prompts: list, completions: list, completion_ids: list, **columns) -> list[float]:
        """One reward per completion."""


EXTRA_REWARDS: dict[str, type[ExtraReward]] = {}


def register(cls: type[ExtraReward]) -> type[ExtraReward]:
    EXTRA_REWARDS[cls.name] = cls
    return cls


def validate_extra_params(extras: dict[str, dict]) -> dict[str, Config]:
    """{'answer_leak': {...}} -> validated Params per reward; unknown names and bad fields name the key."""
    out = {}
    for name, params in (extras or {}).items():
        if name not in EXTRA_REWARDS:
            raise ValueError(f"unknown extra reward {name!r} (known: {sorted(EXTRA_REWARDS)})")
        out[name] = validate(EXTRA_REWARDS[name].Params, params or {}, f"extra_rewards.{name}")
    return out


class LengthParams(Config):
    target_tokens: int = Field(160, ge=1, description="responses up to this many tokens are not penalised")
    per_100_tokens: float = Field(0.5, ge=0, description="penalty per 100 tokens beyond target_tokens")
    truncated: float = Field(0.5, ge=0, description="penalty when a response hits the token limit without ending")
    empty: float = Field(1.0, ge=0, description="penalty for an empty or whitespace-only response")


@register
class LengthPenalty(ExtraReward):
    """Keeps the RM from being won by sheer length, and penalises cut-off or empty answers (as PedagogicalRL)."""

    name = "length_penalty"
    Params = LengthParams

    def __call__(self, prompts, completions, completion_ids, **columns) -> list[float]:
        p, limit, eos = self.params, self.setup.max_completion_length, set(self.setup.eos_token_ids)
        out = []
        for completion, ids in zip(completions, completion_ids, strict=True):
            penalty = p.per_100_tokens * max(0, len(ids) - p.target_tokens) / 100
            if len(ids) >= limit and (not ids or ids[-1] not in eos):
                penalty += p.truncated
            if not completion_text(completion).strip():
                penalty += p.empty
            out.append(-penalty)
        return out


class LeakParams(Config):
    penalty: float = Field(1.0, ge=0, description="lambda: the penalty for a leaked answer")
    mode: Literal["soft", "hard"] = Field(
        "soft", description="soft: subtract lambda; hard: the sample's whole reward becomes -lambda"
    )


def leaked_answers(responses: list[str], final_answers: list[str], student_known: list[str]) -> np.ndarray:
    """True where the response states the final answer and neither the problem nor the student has it yet."""
    out = np.zeros(len(responses), dtype=bool)
    for i, (response, answer, known) in enumerate(zip(responses, final_answers, student_known, strict=True)):
        value = parse_number(answer)
        if value is None or any(np.isclose(value, n) for n in numbers_in(known)):
            continue
        out[i] = any(np.isclose(value, n) for n in numbers_in(response))
    return out


@register
class AnswerLeak(ExtraReward):
    """Rule-based answer-leak judge (PedagogicalRL's 'does not leak the answer'); an LLM judge is another class."""

    name = "answer_leak"
    Params = LeakParams

    def _leaks(self, completions, columns) -> np.ndarray:
        texts = [completion_text(c) for c in completions]
        return leaked_answers(texts, columns["final_answer"], columns["student_known"])

    @property
    def vetoes(self) -> bool:
        return self.params.mode == "hard"

    def vetoed(self, completions, **columns):
        return self._leaks(completions, columns)

    def __call__(self, prompts, completions, completion_ids, **columns) -> list[float]:
        return [-self.params.penalty if leak else 0.0 for leak in self._leaks(completions, columns)]


class HeadReward:
    """One RM dimension as a TRL reward function; `__name__` is the dimension so TRL logs it by name."""

    def __init__(self, cache: RMScoreCache, dimension: str):
        self.cache = cache
        self.dimension = dimension
        self.__name__ = dimension

    def __call__(self, prompts, completions, completion_ids=None, *, context, **columns) -> list[float]:
        texts = [completion_text(c) for c in completions]
        return [float(x) for x in self.cache.scores(context, texts)[self.dimension]]


class Vetoable:
    """Wraps a reward so it returns 0 on samples another reward vetoed (hard-mode judges)."""

    def __init__(self, reward, vetoers: list[ExtraReward]):
        self.reward = reward
        self.vetoers = vetoers
        self.__name__ = reward.__name__

    def __call__(self, prompts, completions, completion_ids=None, **columns) -> list[float]:
        values = np.asarray(self.reward(prompts=prompts, completions=completions, completion_ids=completion_ids,
                                        **columns), dtype=np.float64)
        for vetoer in self.vetoers:
            values[vetoer.vetoed(completions, **columns)] = 0.0
        return values.tolist()


def build_reward_functions(rm, weights: dict[str, float], extras: dict[str, Config], setup: RewardSetup,
                           rm_batch_size: int = 32, head_reward: type[HeadReward] = HeadReward,
                           ) -> tuple[list, list[float], RMScoreCache | None]:
    """(reward functions, TRL reward_weights, the shared cache): one per RM dimension in the RM's order, then extras.
    `rm` None: extras only (cache None). An extra's weight is its `weight` parameter if it has one, else 1."""
    dimensions = rm.dimensions if rm is not None else []
    if set(weights) != set(dimensions):
        raise ValueError(f"weights must name exactly the reward model's dimensions {dimensions}, "
                         f"got {sorted(weights)}")
    cache = RMScoreCache(rm, batch_size=rm_batch_size) if rm is not None else None
    funcs: list = [head_reward(cache, d) for d in dimensions]
    extra_funcs = [EXTRA_REWARDS[name](params, setup) for name, params in extras.items()]
    vetoers = [f for f in extra_funcs if f.vetoes]
    funcs += extra_funcs
    if vetoers:
        funcs = [f if f in vetoers else Vetoable(f, vetoers) for f in funcs]
    reward_weights = [float(weights[d]) for d in dimensions]
    reward_weights += [float(getattr(params, "weight", 1.0)) for params in extras.values()]
    return funcs, reward_weights, cache
