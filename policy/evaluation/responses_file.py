"""`policy eval --tuned-responses FILE`: a responses file scored as the tuned side instead of sampling a policy.

The file is `policy bon`'s responses_n{n}.jsonl or an eval's responses.jsonl filtered to one policy: one line per
response with `prompt_id` and `response` (`policy`, `tokens`, `sample` as those commands write them). Every eval
prompt needs exactly `samples_per_prompt` responses (best-of-n writes 1); they are lined up with the eval rows
prompt-major, in the file's order within a prompt, so they are scored exactly like sampled responses.

There is no tuned model, so the token ids are the base tokenizer's encoding of the text, followed by the EOS when
the file's `tokens` is below the eval's `max_new_tokens` (a response at the cap counts as cut). What needs the
tuned model (KL to the base, GSM8K perplexity, tutorbench, lm-eval-harness) is not measured; the report says so.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from core.schema import DataError, iter_jsonl_lines
from policy.rollout import Rollout


class ResponseLine(BaseModel):
    """One line of a responses file (the fields `policy bon` and `policy eval` write)."""

    model_config = ConfigDict(extra="forbid")
    prompt_id: str = Field(description="id of the eval prompt the response answers")
    response: str = Field(description="the response text")
    policy: str | None = Field(None, description="who wrote it; one file holds one policy")
    tokens: int | None = Field(None, ge=0, description="completion tokens, EOS included (None: re-encoded length)")
    sample: int | None = Field(None, ge=0, description="best-of-n: index of the picked sample")


def read_responses(path: Path | str, rows: list[dict], k: int) -> list[ResponseLine]:
    """The file's responses lined up with `rows`: prompt-major, `k` per prompt. A prompt id not among the rows, a
    second policy, more or fewer than `k` responses for a prompt raise DataError naming file, line and field."""
    by_prompt: dict[str, list[ResponseLine]] = {row["id"]: [] for row in rows}
    policy_line: tuple[int, str | None] | None = None
    for lineno, line in iter_jsonl_lines(path, ResponseLine):
        where = f"{path}:{lineno}"
        if line.prompt_id not in by_prompt:
            raise DataError(f"{where}: field prompt_id: {line.prompt_id!r} is not among the {len(rows)} eval prompts "
                            "(--prompts, --max-prompts)")
        policy_line = policy_line or (lineno, line.policy)
        if line.policy != policy_line[1]:
            raise DataError(f"{where}: field policy: {line.policy!r}, but line {policy_line[0]} has "
                            f"{policy_line[1]!r}; keep one policy (jq -c 'select(.policy==\"tuned\")')")
        if len(by_prompt[line.prompt_id]) == k:
            raise DataError(f"{where}: field prompt_id: more than samples_per_prompt = {k} responses for prompt "
                            f"{line.prompt_id!r}")
        by_prompt[line.prompt_id].append(line)
    for prompt_id, lines in by_prompt.items():
        if len(lines) < k:
            raise DataError(f"{path}: field prompt_id: prompt {prompt_id!r} has {len(lines)} responses; every eval "
                            f"prompt needs samples_per_prompt = {k}")
    return [line for row in rows for line in by_prompt[row["id"]]]


def response_rollout(line: ResponseLine, prompt_ids: list[int], tokenizer, max_new_tokens: int) -> Rollout:
    """A Rollout for a response read from a file: its text re-encoded, plus the EOS when it ended before the cap."""
    ids = tokenizer(line.response, add_special_tokens=False)["input_ids"]
    tokens = len(ids) if line.tokens is None else line.tokens
    ended_on_own = tokens < max_new_tokens
    return Rollout(prompt_ids, ids + [tokenizer.eos_token_id] if ended_on_own else ids, line.response)


def responses_file_rollouts(path: Path | str, rows: list[dict], k: int, tokenizer,
                            max_new_tokens: int) -> list[Rollout]:
    """The tuned side's rollouts from a responses file, in the order sampling would give (prompt-major, k each)."""
    prompt_ids = [tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True,
                                                return_dict=False) for row in rows]
    lines = read_responses(path, rows, k)
    return [response_rollout(line, prompt_ids[i // k], tokenizer, max_new_tokens) for i, line in enumerate(lines)]


def not_measured(cfg) -> dict[str, str]:
    """Part of the report -> the line saying it was skipped: what needs the tuned model and was asked for
    (lm-eval-harness says so in its own section)."""
    parts = {"kl_tuned_base": "KL: not measured for a responses file (best-of-n: the analytic log n - (n-1)/n is in "
                              "its bon.json)"}
    if cfg.gsm8k:
        parts["gsm8k_perplexity"] = "GSM8K perplexity: not measured for a responses file (no tuned model)"
    if cfg.tutorbench.settings or cfg.tutorbench.gsm8k_accuracy_items:
        parts["tutorbench"] = "tutorbench: not run for a responses file (the tuned model writes its teacher turns)"
    return parts
