"""Prompt rows for the policy: a PromptItem becomes the chat the policy answers plus the columns rewards read.

Columns (TRL passes every dataset column to each reward function, repeated per generation):
- `prompt`: chat messages (system prompt with the student profile, then the dialogue), rendered by the policy's
  own chat template inside TRL;
- `context`: the text the reward model sees before the response (`PromptItem.context`);
- `final_answer`: the reference solution's final numeric answer ("" when there is none), for the leak judge;
- `student_known`: the problem and everything the student has said so far: numbers in it are not a leak.
"""
from __future__ import annotations

import re
from pathlib import Path

from core.schema import DataError, PromptItem, read_jsonl

DEFAULT_SYSTEM_PROMPT = (
    "You are a patient math tutor. Help the student learn to solve the problem themselves: guide them with "
    "questions and hints suited to them, and do not just give away the final answer."
)

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def parse_number(text: str) -> float | None:
    """'1,200' -> 1200.0; None when text holds no number."""
    match = _NUMBER.search(text or "")
    return float(match.group().replace(",", "")) if match else None


def numbers_in(text: str) -> set[float]:
    return {float(m.group().replace(",", "").rstrip(".")) for m in _NUMBER.finditer(text or "")}


def final_answer(item: PromptItem) -> str:
    """The final numeric answer: `meta.final_answer`, else GSM8K's '#### x' line, else the solution's last number."""
    if item.meta.get("final_answer") not in (None, ""):
        return str(item.meta["final_answer"])
    solution = item.reference_solution or ""
    if "####" in solution:
        return solution.rsplit("####", 1)[1].strip()
    found = _NUMBER.findall(solution)
    return found[-1].replace(",", "") if found else ""


def prompt_row(item: PromptItem, system_prompt: str) -> dict:
    return {
        "id": item.id,
        "prompt": item.chat_messages(system_prompt),
        "context": item.context,
        "final_answer": final_answer(item),
        "student_known": "\n".join([item.problem or ""] + [t.text for t in item.turns if t.role == "student"]),
        "problem_id": item.problem_id, "kind": f"{item.source} {item.kind.replace('_', '-')}",
    }


def prompt_tokens(tokenizer, chat: list[dict]) -> int:
    """Length of a chat as the policy sees it (its own template, with the generation prompt)."""
    return len(tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False))


def cut_from_left(item: PromptItem, fits) -> PromptItem | None:
    """The item with its oldest turns dropped, as few as needed for `fits(item)`; the system prompt, the problem,
    the profile and the last turn always stay (the tutor answers it). None when even that does not fit."""
    for start in range(max(len(item.turns), 1)):
        cut = item if start == 0 else item.model_copy(update={"turns": item.turns[start:]})
        if fits(cut):
            return cut
    return None


def load_prompt_rows(path: Path | str, system_prompt: str, limit: int | None = None, tokenizer=None,
                     max_prompt_tokens: int | None = None, exclude_problem_ids: set[str] = frozenset()) -> list[dict]:
    """Rows for the PromptItems in a JSONL file (the `rl` or `eval` split of `python -m annotation data`).

    With `max_prompt_tokens`, a dialogue whose chat (rendered by `tokenizer`'s template) is longer loses its oldest
    turns until it fits (TRL does not truncate prompts, and a few long dialogues would dominate a CPU step); no
    prompt is skipped for length. The row's `context` (what the reward model reads) is the cut dialogue, what the
    tutor saw; `student_known` keeps every student turn. A prompt that does not fit with only its last turn left
    is an error naming the file, line and id. Items whose problem id is in `exclude_problem_ids` are dropped (an
    independent RM must not judge problems it was trained on). `limit` applies after that.
    """
    items = read_jsonl(path, PromptItem)
    with open(path, encoding="utf-8") as handle:  # read_jsonl skips blank lines; keep each item's line number
        lines = [n for n, text in enumerate(handle, 1) if text.strip()]
    kept = [(line, item) for line, item in zip(lines, items, strict=True) if item.problem_id not in exclude_problem_ids]
    if len(kept) < len(items):
        print(f"{path}: skipped {len(items) - len(kept)} of {len(items)} prompts whose problem is excluded")
    if not kept:
        raise DataError(f"{path}: no prompts")
    kept = kept[:limit]
    rows, cut_prompts, cut_turns = [], 0, 0
    for line, item in kept:
        row = prompt_row(item, system_prompt)
        if max_prompt_tokens is not None:
            cut = cut_from_left(item, lambda it: prompt_tokens(
                tokenizer, it.chat_messages(system_prompt)) <= max_prompt_tokens)
            if cut is None:
                raise DataError(f"{path}:{line}: id {item.id}: longer than max_prompt_tokens {max_prompt_tokens} "
                                f"even with only its last turn left (system prompt, profile and problem: raise the "
                                f"limit or shorten the system prompt)")
            if cut is not item:
                cut_prompts += 1
                cut_turns += len(item.turns) - len(cut.turns)
                row = {**prompt_row(cut, system_prompt), "student_known": row["student_known"]}
        rows.append(row)
    if cut_prompts:
        print(f"{path}: cut {cut_prompts} of {len(rows)} prompts to {max_prompt_tokens} tokens by dropping their "
              f"oldest turns ({cut_turns} turns in all)")
    return rows
