"""The classroom rollout: whole tutor-student dialogues as GRPO completions, through TRL's `rollout_func`.

For each prompt TRL hands in (already repeated `num_generations` times) one dialogue between the tutor being
trained and a frozen simulated student (policy/classroom/student.py), up to `max_turns` tutor turns; the tutor may end it
with the end marker. All live dialogues advance together: one batched tutor call and one batched student call per
turn, then one batched call for the student's final solutions.

Token ids are built turn by turn and the history is never re-tokenized: the tutor's sampled ids go in as they
are (env_mask 1), and each student turn goes in wrapped in the chat template's own joints (env_mask 0), found
once by diffing rendered conversations (`TemplateJoints`). TRL multiplies `env_mask` into the loss mask, so the
student's tokens and the role headers around them are context, never trained on. The tutor is sampled through
`trainer._generate_single_turn`, which is HF generate on CPU and vLLM on GPU (TRL syncs the weights).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from core.schema import PROBLEM_HEADER, PROFILE_HEADER, DataError, PromptItem, Turn, read_jsonl, render_context
from policy.prompts import final_answer
from policy.classroom.student import (OPENING_REQUEST, ATTEMPT_ASK, PERSONA, reply_request, solve_request,
                                      student_chat)

# (prompt ids per live dialogue) -> (sampled ids per dialogue, their log-probs or None)
Generate = Callable[[list[list[int]]], tuple[list[list[int]], list[list[float]] | None]]

THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.S)
THINK_NOTE = ("\n\nBefore each message you may plan inside <think>...</think>; the student never sees what you "
              "write there.")


def visible_text(text: str, end_marker: str) -> str:
    """What the student and the judges see of a tutor turn: no <think> block, no end marker."""
    return THINK_BLOCK.sub("", text).replace(end_marker, "").strip()


def persona_of(item: PromptItem, k: int, persona: str, adversarial_share: float) -> str:
    """The student's persona for the k-th dialogue of a batch: `persona` when adversarial or no share is set, else
    adversarial for the share of (problem, k) whose stable hash falls under it."""
    if persona == "adversarial" or adversarial_share <= 0:
        return persona
    digest = hashlib.sha256(f"{(item.problem or '').strip()}\n{k}".encode()).digest()
    return "adversarial" if int.from_bytes(digest[:4], "big") / 2 ** 32 < adversarial_share else "cooperative"


def opening_of(item: PromptItem, opening: str) -> str:
    """'tutor' or 'student'; with 'both', a stable hash of the problem decides (PedagogicalRL: hash % 2)."""
    if opening != "both":
        return opening
    digest = hashlib.sha256((item.problem or "").strip().encode()).digest()
    return "student" if digest[0] % 2 else "tutor"


@dataclass(frozen=True)
class TemplateJoints:
    """The text the chat template puts around turns, found by rendering conversations with marker contents."""

    tutor_turn_end: str  # closes an assistant turn, e.g. "<|im_end|>\n"
    student_open: str  # opens a user turn, e.g. "<|im_start|>user\n"
    student_close: str  # closes it and opens the assistant's, e.g. "<|im_end|>\n<|im_start|>assistant\n"

    @classmethod
    def of(cls, tokenizer) -> TemplateJoints:
        tutor, student = "\uE000TUTOR\uE000", "\uE000STUDENT\uE000"
        before = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                  {"role": "assistant", "content": tutor}]
        a = tokenizer.apply_chat_template(before, tokenize=False)
        b = tokenizer.apply_chat_template(before + [{"role": "user", "content": student}], tokenize=False,
                                          add_generation_prompt=True)
        if not b.startswith(a) or student not in b[len(a):]:
            raise ValueError("the tutor's chat template changes earlier turns when a turn is added; the classroom "
                             "builds token ids turn by turn and needs a prefix-preserving template")
        open_, close = b[len(a):].split(student)
        return cls(a[a.rindex(tutor) + len(tutor):], open_, close)


@dataclass
class Dialogue:
    item: PromptItem
    opening: str
    answer: str
    turns: list[dict] = field(default_factory=list)  # {"role", "text" (visible), "raw", "truncated"}
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float] | None = field(default_factory=list)
    ended_by_tutor: bool = False
    done: bool = False
    solutions: list[str] = field(default_factory=list)
    persona: str = "cooperative"
    grader: str = "math_verify"
    verdicts: dict | None = None  # rule -> Verdict.as_dict(), when judged before solving

    def append(self, ids: list[int], trained: bool, logprobs: list[float] | None = None) -> None:
        self.completion_ids += ids
        self.env_mask += [int(trained)] * len(ids)
        if self.logprobs is not None:
            self.logprobs = None if trained and logprobs is None else self.logprobs + (logprobs or [0.0] * len(ids))

    def tutor_turns(self) -> list[tuple[str, str]]:
        """(context the RM sees, visible tutor turn) for every tutor turn."""
        out = []
        for k, turn in enumerate(self.turns):
            if turn["role"] == "tutor":
                before = [Turn(role=t["role"], text=t["text"]) for t in self.turns[:k]]
                out.append((render_context(self.item.profile, self.item.problem, before), turn["text"]))
        return out

    def record(self) -> dict:
        """The column the rewards read (and the transcript written by the evaluation)."""
        extra = {} if self.verdicts is None else {"verdicts": self.verdicts}
        return {"id": self.item.id, "opening": self.opening, "turns": self.turns, "solutions": self.solutions,
                "persona": self.persona, "grader": self.grader, **extra,
                "ended_by_tutor": self.ended_by_tutor, "answer": self.answer, "problem": self.item.problem,
                "profile": self.item.profile.describe() if self.item.profile else "",
                "tutor_contexts": [c for c, _ in self.tutor_turns()],
                "tutor_texts": [t for _, t in self.tutor_turns()]}


class Classroom:
    """Runs batches of dialogues; `rollout_func` is the TRL entry point. `timings` holds each part's seconds."""

    def __init__(self, tokenizer, student, dialogue, student_options, system_prompt: str, eos_ids: list[int],
                 grader: str = "math_verify", personas: dict[str, str] | None = None, judge_first=None):
        """`personas`: persona -> the student's system prompt; `judge_first`: a judge panel that judges each
        dialogue before its final solutions, which a rejected one does not get (hard mode)."""
        self.tokenizer, self.student, self.dialogue, self.student_options = tokenizer, student, dialogue, student_options
        self.system_prompt, self.grader, self.judge_first = system_prompt, grader, judge_first
        self.personas = {"cooperative": PERSONA, **(personas or {})}
        self.eos_ids = list(eos_ids)
        self.joints = TemplateJoints.of(tokenizer)
        self.items_by_prompt: dict[str, PromptItem] = {}
        self.last_records: list[dict] = []  # the latest rollout's `dialogue` column (training transcripts)
        self.timings: dict[str, float] = defaultdict(float)

    # -- prompts ---------------------------------------------------------------------------------------------
    def tutor_chat(self, item: PromptItem, first_student_message: str | None) -> list[dict]:
        """The tutor's opening chat; `first_student_message` None: the system prompt alone (the tutor speaks first)."""
        system = self.system_prompt.strip() + (THINK_NOTE if self.dialogue.think else "")
        if item.profile is not None:
            system += f"\n\n{PROFILE_HEADER}\n{item.profile.describe()}"
        system += f"\n\n{PROBLEM_HEADER}\n{(item.problem or '').strip()}"
        first = [] if first_student_message is None else [{"role": "user", "content": first_student_message}]
        return [{"role": "system", "content": system}, *first]

    @property
    def tutor_request(self) -> str | None:
        """What precedes the tutor's first turn when it opens: nothing, or the canned student request."""
        return None if self.dialogue.tutor_opening == "system_prompt" else OPENING_REQUEST

    def rows(self, path, limit: int | None = None, max_prompt_tokens: int | None = None) -> list[dict]:
        """Dataset rows (the tutor's opening chat + reward columns) for items with a problem and a final answer."""
        items = [i for i in read_jsonl(path, PromptItem) if (i.problem or "").strip() and final_answer(i)]
        rows = []
        for item in items:
            if limit is not None and len(rows) == limit:
                break
            prompt = self.tutor_chat(item, self.tutor_request)
            if max_prompt_tokens is not None and len(self._ids(prompt)) > max_prompt_tokens:
                continue
            self.items_by_prompt[prompt_key(prompt)] = item
            rows.append({"prompt": prompt, "id": item.id, "final_answer": final_answer(item)})
        if not rows:
            raise DataError(f"{path}: no prompt with a problem and a final answer"
                            + (f" within {max_prompt_tokens} tokens" if max_prompt_tokens else ""))
        return rows

    def _ids(self, messages: list[dict]) -> list[int]:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                  return_dict=False)

    # -- the dialogue loop -----------------------------------------------------------------------------------
    def _student(self, part: str, chats: list[list[dict]], max_new_tokens: int) -> list[str]:
        if not chats:
            return []
        started = time.perf_counter()
        out = self.student.complete(chats, max_new_tokens)
        self.timings[part] += time.perf_counter() - started
        return out

    def run(self, items: list[PromptItem], generate: Generate, solve: bool = True,
            any_live: Callable[[bool], bool] | None = None, persona: str | None = None) -> list[Dialogue]:
        """One dialogue per item (items may repeat: a GRPO group), then the student's final solutions.

        `any_live` (distributed training): whether a dialogue is still live on any rank, a collective every rank
        calls once per turn. Then every rank makes the same number of tutor generation calls, each with one sequence
        per dialogue (a finished dialogue sends its opening prompt and its sample is dropped): vLLM's server mode and
        tensor parallelism gather on every call and slice the results by equal counts, and ZeRO-3's generate gathers
        parameters on every forward, so a rank whose dialogues ended early would otherwise leave the others waiting.

        `persona`: every student's persona (None: `student.persona`, mixed by `student.adversarial_share`)."""
        options = self.student_options
        dialogues = [Dialogue(item, opening_of(item, self.dialogue.opening), final_answer(item), grader=self.grader,
                              persona=persona or persona_of(item, k, options.persona, options.adversarial_share))
                     for k, item in enumerate(items)]
        attempters = [d for d in dialogues if d.opening == "student"]
        attempts = self._student("student_s", [self._student_chat(d, ATTEMPT_ASK) for d in attempters],
                                 options.max_reply_tokens)
        for d, attempt in zip(attempters, attempts, strict=True):
            d.turns.append({"role": "student", "text": attempt})
        for d in dialogues:
            first = d.turns[0]["text"] if d.turns else self.tutor_request
            if not d.turns and first is not None:
                d.turns.append({"role": "student", "text": first})
            d.prompt_ids = self._ids(self.tutor_chat(d.item, first))
        for turn in range(self.dialogue.max_turns):
            live = [d for d in dialogues if not d.done]
            if not (any_live(bool(live)) if any_live is not None else live):
                break
            self._tutor_turn(live, generate, last=turn == self.dialogue.max_turns - 1,
                             padded_to=dialogues if any_live is not None else None)
            waiting = [d for d in live if not d.done]
            replies = self._student("student_s", [self._student_chat(d, reply_request(d.turns)) for d in waiting],
                                    options.max_reply_tokens)
            for d, reply in zip(waiting, replies, strict=True):
                self._student_turn(d, reply)
        if solve:
            self.solve(self._judged_first(dialogues))
        return dialogues

    def _student_chat(self, d: Dialogue, request: str) -> list[dict]:
        return student_chat(d.item.profile, d.item.problem, request, self.personas[d.persona])

    def _judged_first(self, dialogues: list[Dialogue]) -> list[Dialogue]:
        """The dialogues that get final solutions: all, or with `judge_first` those no judge rejects."""
        if self.judge_first is None:
            return dialogues
        started = time.perf_counter()
        verdicts = self.judge_first.judge([d.record() for d in dialogues])
        self.timings["judges_s"] += time.perf_counter() - started
        for d, per in zip(dialogues, verdicts, strict=True):
            d.verdicts = {rule: v.as_dict() for rule, v in per.items()}
        return [d for d, per in zip(dialogues, verdicts, strict=True) if not any(v.rejects for v in per.values())]

    def _tutor_turn(self, live: list[Dialogue], generate: Generate, last: bool,
                    padded_to: list[Dialogue] | None = None) -> None:
        """One tutor turn for the live dialogues; with `padded_to` (all of this rank's dialogues) the call holds one
        sequence per dialogue, finished ones sending their opening prompt, whose samples are dropped."""
        started = time.perf_counter()
        if padded_to is None:
            sampled, logprobs = generate([d.prompt_ids + d.completion_ids for d in live])
        else:
            sampled, logprobs = generate([d.prompt_ids + (d.completion_ids if not d.done else [])
                                          for d in padded_to])
            keep = [k for k, d in enumerate(padded_to) if not d.done]
            sampled = [sampled[k] for k in keep]
            logprobs = None if logprobs is None else [logprobs[k] for k in keep]
        self.timings["tutor_s"] += time.perf_counter() - started
        for k, (d, ids) in enumerate(zip(live, sampled, strict=True)):
            ids = list(ids)
            d.append(ids, trained=True, logprobs=None if logprobs is None else list(logprobs[k]))
            raw = self.tokenizer.decode(ids, skip_special_tokens=True)
            truncated = not ids or ids[-1] not in self.eos_ids
            d.turns.append({"role": "tutor", "text": visible_text(raw, self.dialogue.end_marker), "raw": raw,
                            "truncated": truncated})
            d.ended_by_tutor = self.dialogue.end_marker in raw
            too_long = len(d.prompt_ids) + len(d.completion_ids) >= self.dialogue.max_dialogue_tokens
            d.done = last or d.ended_by_tutor or too_long

    def _student_turn(self, d: Dialogue, reply: str) -> None:
        """Close the tutor's turn as the template does, then the student's turn and the next tutor header."""
        last = d.completion_ids[-1:] if d.completion_ids else []
        closing = self.joints.tutor_turn_end
        if last and last[0] in self.eos_ids:  # the sampled eos already wrote the start of the closing text
            eos_text = self.tokenizer.decode(last)
            closing = closing[len(eos_text):] if closing.startswith(eos_text) else closing
        text = closing + self.joints.student_open + reply + self.joints.student_close
        d.append(self.tokenizer(text, add_special_tokens=False)["input_ids"], trained=False)
        d.turns.append({"role": "student", "text": reply})

    def solve(self, dialogues: list[Dialogue], after_dialogue: bool = True) -> None:
        """N final solutions per dialogue in one batched student call (`after_dialogue` False: solo attempts)."""
        n = self.student_options.solve_attempts
        self.timings["solve_s"] += 0.0  # logged every step, also when hard mode judged every dialogue out
        chats = [student_chat(d.item.profile, d.item.problem, solve_request(d.turns if after_dialogue else None))
                 for d in dialogues for _ in range(n)]
        texts = self._student("solve_s", chats, self.student_options.max_solution_tokens)
        for k, d in enumerate(dialogues):
            d.solutions = texts[k * n:(k + 1) * n]

    # -- TRL -------------------------------------------------------------------------------------------------
    def rollout_func(self, prompts: list, trainer) -> dict:
        """TRL's hook: one dialogue per prompt; returns ids, log-probs, env_mask and the `dialogue` column."""
        try:
            items = [self.items_by_prompt[prompt_key(p)] for p in prompts]
        except KeyError:
            raise ValueError("rollout_func got a prompt that is not one of the classroom's rows") from None
        self.timings.clear()
        any_live = None
        if trainer.accelerator.num_processes > 1:  # every rank must make the same generation calls (see `run`)
            def any_live(flag: bool) -> bool:
                import torch

                mine = torch.tensor([float(flag)], device=trainer.accelerator.device)
                return bool(trainer.accelerator.gather(mine).max().item())
        dialogues = self.run(items, lambda ids: trainer._generate_single_turn(ids, None, {}, 1), any_live=any_live)
        mode = "train" if trainer.model.training else "eval"
        for name, seconds in self.timings.items():
            trainer._metrics[mode][f"time/{name}"].append(seconds)
        trainer._metrics[mode]["classroom/tutor_turns"].append(
            sum(t["role"] == "tutor" for d in dialogues for t in d.turns) / len(dialogues))
        logprobs = [d.logprobs for d in dialogues]
        self.last_records = [d.record() for d in dialogues]
        return {"prompt_ids": [d.prompt_ids for d in dialogues],
                "completion_ids": [d.completion_ids for d in dialogues],
                "logprobs": None if any(lp is None for lp in logprobs) else logprobs,
                "env_mask": [d.env_mask for d in dialogues],
                "dialogue": self.last_records}


def prompt_key(prompt) -> str:
    return json.dumps(prompt, sort_keys=True)
