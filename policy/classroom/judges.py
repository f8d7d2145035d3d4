"""The classroom's pedagogical judges: one OK/REJECT decision per rule and dialogue (after PedagogicalRL).

Each rule is a Jinja prompt file (configs/classroom/judges/*.txt; variables `problem`, `answer`, `profile`,
`transcript`) asking for JSON `{"reasoning": ..., "decision": "OK" | "REJECT"}`. The transcript shows only what
the student saw (no `<think>` blocks, no end marker), the whole dialogue up to `max_transcript_tokens` tokens (a
longer one keeps its first and last halves, with a warning on stderr and `stats["cut"]`). Two backends:
- `openai`: any OpenAI-compatible endpoint through `core.llm_client` (HTTP retries with backoff); the answer is
  validated with pydantic, a malformed one is asked again `max_reasks` times; a judge that never answers validly
  (time-outs, malformed JSON) gets the configured decision `on_failure`, never a crash;
- `local`: a transformers model read G-Eval style: the prompt ends in `{"decision": "` and the decision is the
  more probable of the tokens starting "OK" and "REJECT" (always valid, no text generated).
"""
from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel, ValidationError, field_validator

from core.config import ConfigError
from core.llm_client import ChatClient, LLMError
from policy.classroom.student import transcript_text

ANSWER_PREFIX = '{"decision": "'


@dataclass(frozen=True)
class Verdict:
    decision: Literal["OK", "REJECT"]
    status: Literal["ok", "failed"]  # failed: no valid answer, `decision` is the configured fault decision
    detail: str = ""  # the judge's reasoning, P(REJECT) or the error
    samples: tuple[str, ...] = field(default=())  # each valid sample's decision (the local judge: one)

    @property
    def rejects(self) -> bool:
        return self.decision == "REJECT"

    def as_dict(self) -> dict:
        return {"decision": self.decision, "status": self.status, "detail": self.detail,
                "samples": list(self.samples)}

    @classmethod
    def of(cls, data: dict) -> Verdict:
        return cls(data["decision"], data["status"], data.get("detail", ""), tuple(data.get("samples", ())))


class DecisionAnswer(BaseModel):
    reasoning: str = ""
    decision: Literal["OK", "REJECT"]

    @field_validator("decision", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.strip().upper() if isinstance(value, str) else value


def parse_decision(text: str) -> DecisionAnswer:
    """The judge's JSON (first `{` to last `}`); raises ValueError saying what is wrong."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the answer")
    try:
        return DecisionAnswer.model_validate(json.loads(text[start:end + 1]))
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON: {err.msg}") from None
    except ValidationError as err:
        e = err.errors()[0]
        raise ValueError(f"field {'.'.join(map(str, e['loc']))}: {e['msg']}") from None


def load_templates(rules: dict) -> dict:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    templates = {}
    for name, path in rules.items():
        try:
            templates[name] = env.from_string(open(path, encoding="utf-8").read())
        except OSError as err:
            raise ConfigError(f"field judges.rules.{name}: cannot read {path}: {err.strerror}") from None
        except jinja2.TemplateSyntaxError as err:
            raise ConfigError(f"{path}:{err.lineno}: field judges.rules.{name}: template error: {err.message}") from None
    return templates


class JudgePanel:
    """`judge(records) -> [{rule: Verdict}]` for dialogue records (`Dialogue.record()`); `stats` counts calls."""

    def __init__(self, options, tokenizer=None):
        """`tokenizer` counts transcript tokens when `options.tokenizer` is unset and the judge is not local."""
        self.options = options
        self.templates = load_templates(options.rules)
        self.stats = {"judged": 0, "failed": 0, "reasks": 0, "cut": 0}
        self._local = None
        self._tokenizer, self._counter = tokenizer, None

    def counting_tokenizer(self):
        """`judges.tokenizer`, else the local judge's own, else the one the panel was given (the tutor's)."""
        if self._counter is None:
            name = self.options.tokenizer or (self.options.model if self.options.backend == "local" else None)
            if name:
                from core.models import load_tokenizer

                self._counter = load_tokenizer(name)
            elif self._tokenizer is not None:
                self._counter = self._tokenizer
            else:
                raise ConfigError("field judges.tokenizer: an openai judge needs a tokenizer to count the "
                                  "transcript's tokens (set judges.tokenizer)")
        return self._counter

    def capped(self, transcript: str, record_id: str = "") -> str:
        """The transcript whole, or its first and last `max_transcript_tokens / 2` tokens with a marker between."""
        tokenizer = self.counting_tokenizer()
        ids = tokenizer(transcript, add_special_tokens=False)["input_ids"]
        limit = self.options.max_transcript_tokens
        if len(ids) <= limit:
            return transcript
        self.stats["cut"] += 1
        print(f"warning: judges: dialogue {record_id} has {len(ids)} tokens, more than judges.max_transcript_tokens "
              f"{limit}; the judge reads its first and last {limit // 2}", file=sys.stderr)
        head, tail = tokenizer.decode(ids[:limit // 2]), tokenizer.decode(ids[len(ids) - limit // 2:])
        return f"{head}\n(... {len(ids) - 2 * (limit // 2)} tokens of the dialogue cut ...)\n{tail}"

    def transcript(self, record: dict) -> str:
        return self.capped(transcript_text(record["turns"], student_name="Student"), record.get("id", ""))

    def prompt(self, rule: str, record: dict, transcript: str | None = None) -> str:
        transcript = self.transcript(record) if transcript is None else transcript
        return self.templates[rule].render(problem=record["problem"], answer=record["answer"],
                                           profile=record.get("profile", ""), transcript=transcript)

    def judge(self, records: list[dict]) -> list[dict[str, Verdict]]:
        transcripts = [self.transcript(r) for r in records]  # once per dialogue, not per rule
        jobs = [(i, rule, self.prompt(rule, r, transcripts[i])) for i, r in enumerate(records)
                for rule in self.templates]
        if not jobs:
            return [{} for _ in records]
        if self.options.backend == "openai":
            verdicts = asyncio.run(self._ask_all([text for _, _, text in jobs]))
        else:
            verdicts = self._local_verdicts([text for _, _, text in jobs])
        out: list[dict[str, Verdict]] = [{} for _ in records]
        for (i, rule, _), verdict in zip(jobs, verdicts, strict=True):
            out[i][rule] = verdict
            self.stats["judged"] += 1
            self.stats["failed"] += verdict.status == "failed"
        return out

    # -- openai ----------------------------------------------------------------------------------------------
    async def _ask_all(self, prompts: list[str]) -> list[Verdict]:
        async with ChatClient(self.options.openai) as client:
            return await asyncio.gather(*[self._ask(client, p) for p in prompts])

    async def _ask(self, client: ChatClient, prompt: str) -> Verdict:
        """Every sample of one rule for one dialogue: REJECT if any valid sample rejects; no valid sample at all
        gives the fault decision."""
        answers, problem = [], ""
        for sample in range(self.options.samples):
            answer, problem = await self._ask_once(client, prompt, sample)
            if answer is not None:
                answers.append(answer)
        if not answers:
            return Verdict(self.options.on_failure.upper(), "failed", problem)
        rejecting = [a for a in answers if a.decision == "REJECT"]
        return Verdict("REJECT" if rejecting else "OK", "ok", (rejecting or answers)[0].reasoning,
                       tuple(a.decision for a in answers))

    async def _ask_once(self, client: ChatClient, prompt: str, sample: int) -> tuple[DecisionAnswer | None, str]:
        messages = [{"role": "user", "content": prompt}]
        params = {"temperature": self.options.temperature, "max_tokens": self.options.max_tokens, "seed": sample}
        problem = ""
        for attempt in range(self.options.max_reasks + 1):
            try:
                completion = await client.complete(messages, **params)
            except LLMError as err:
                return None, str(err)
            try:
                return parse_decision(completion.text), ""
            except ValueError as err:
                problem = f"malformed answer: {err}"
                self.stats["reasks"] += attempt < self.options.max_reasks
                messages = messages[:1] + [
                    {"role": "assistant", "content": completion.text},
                    {"role": "user", "content": f"That answer could not be used ({err}). Reply with the JSON only."}]
        return None, problem

    # -- local -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _local_verdicts(self, prompts: list[str]) -> list[Verdict]:
        from core.models import load_causal_lm, load_tokenizer

        if self._local is None:
            tokenizer = load_tokenizer(self.options.model)
            model = load_causal_lm(self.options.model, dtype=self.options.dtype, device=self.options.device).eval()
            choice = [tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in ("OK", "REJECT")]
            if choice[0] == choice[1]:
                raise ConfigError(f"field judges.model: {self.options.model}'s tokenizer starts OK and REJECT with "
                                  "the same token; the local judge cannot tell them apart")
            self._local = (tokenizer, model, choice)
        tokenizer, model, choice = self._local
        ids = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                             tokenize=True, return_dict=False)
               + tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"] for p in prompts]
        out: list[Verdict] = []
        size = self.options.batch_size
        for start in range(0, len(ids), size):
            batch = ids[start:start + size]
            width = max(map(len, batch))
            input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(x)) + x for x in batch])
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch])
            logits = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                           logits_to_keep=1).logits[:, -1, choice].float()
            p_reject = torch.softmax(logits, dim=-1)[:, 1].tolist()
            decisions = ["REJECT" if p > self.options.reject_threshold else "OK" for p in p_reject]
            out += [Verdict(d, "ok", f"P(REJECT)={p:.3f}", (d,)) for d, p in zip(decisions, p_reject, strict=True)]
        return out
