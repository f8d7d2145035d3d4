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
    }


def load_prompt_rows(path: Path | str, system_prompt: str, limit: int | None = None, tokenizer=None,
                     max_prompt_tokens: int | None = None, exclude_problem_ids: set[str] = frozenset()) -> list[dict]:
    """Rows for the PromptItems in a JSONL file (the `rl` or `eval` split of `python -m annotation data`).

    With `max_prompt_tokens`, prompts whose chat (rendered by `tokenizer`'s template) is longer are skipped, since
    TRL does not truncate prompts and a few long dialogues would dominate a CPU step. Items whose problem id is in
    `exclude_problem_ids` are dropped (an independent RM must not judge problems it was trained on). `limit` applies
    after that.
    """
    items = read_jsonl(path, PromptItem)
    kept = [item for item in items if item.problem_id not in exclude_problem_ids]
    if len(kept) < len(items):
        print(f"{path}: skipped {len(items) - len(kept)} of {len(items)} prompts whose problem is excluded")
    rows = [prompt_row(item, system_prompt) for item in kept]
    if max_prompt_tokens is not None:
        kept = [row for row in rows if len(tokenizer.apply_chat_template(
            row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False)) <= max_prompt_tokens]
        if len(kept) < len(rows):
            print(f"{path}: skipped {len(rows) - len(kept)} of {len(rows)} prompts longer than "
                  f"{max_prompt_tokens} tokens")
        rows = kept
    if not rows:
        limit_text = f" of at most {max_prompt_tokens} tokens" if max_prompt_tokens else ""
        raise DataError(f"{path}: no prompts{limit_text}")
    return rows[:limit]
