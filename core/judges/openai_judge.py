"""Judge backed by any OpenAI-compatible endpoint: one request per (item, sample) scores every dimension.

The answer must be JSON `{dimension: {"score": level, "rationale": text}}`, validated by pydantic against
the rubric. A malformed answer is asked again (the bad answer and the error are shown to the model) up to
`max_reasks` times, then the job is recorded as failed; HTTP-level retries live in `ChatClient`.
Samples differ by `seed` (and `temperature` > 0), so self-consistency across samples is meaningful.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from pydantic import BaseModel, Field, ValidationError, create_model

from core.judges import Judge, JudgeConfig, JudgeJob, RawLabel, register
from core.llm_client import ChatClient, ClientConfig, LLMError
from core.rubric import Rubric


class OpenAIJudgeConfig(JudgeConfig, ClientConfig):
    backend: str = Field("openai", description="judge class: OpenAI-compatible endpoint")
    temperature: float = Field(0.7, ge=0, description="sampling temperature; > 0 so repeated samples can differ")
    max_tokens: int = Field(600, ge=16, description="longest answer the judge may write")
    max_reasks: int = Field(2, ge=0, description="times a malformed (non-JSON or invalid) answer is asked again")
    json_mode: bool = Field(False, description="send response_format=json_object (only if the server supports it)")


class DimensionAnswer(BaseModel):
    score: int | str
    rationale: str = ""


def answer_model(rubric: Rubric) -> type[BaseModel]:
    """A pydantic model requiring every rubric dimension."""
    return create_model(f"{rubric.name}_answer", **{name: (DimensionAnswer, ...) for name in rubric.names})


def judge_messages(rubric: Rubric, context: str, response: str) -> list[dict]:
    template = ", ".join(f'"{name}": {{"score": <level>, "rationale": "<one sentence>"}}' for name in rubric.names)
    system = (
        "You are an experienced teacher who rates tutor responses against a rubric.\n"
        f"{rubric.description.strip()}\n\n## Rubric\n{rubric.as_prompt_text()}\n\n"
        "Think about each dimension separately. Answer with JSON only, exactly in this form:\n{" + template + "}"
    )
    user = f"{context.strip()}\n\n## Tutor response to rate\n{response.strip()}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_answer(text: str, rubric: Rubric, model: type[BaseModel]) -> tuple[dict[str, int], dict[str, str]]:
    """Scores and rationales from the judge's text; raises ValueError saying what is wrong."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the answer")
    try:
        answer = model.model_validate(json.loads(text[start : end + 1]))
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON: {err.msg}") from None
    except ValidationError as err:
        e = err.errors()[0]
        raise ValueError(f"field {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
    scores, rationale = {}, {}
    for name in rubric.names:
        part = getattr(answer, name)
        scores[name] = rubric.dimension(name).parse_level(part.score)
        rationale[name] = part.rationale
    return scores, rationale


@register("openai")
class OpenAIJudge(Judge):
    config_cls = OpenAIJudgeConfig

    def label(self, jobs: list[JudgeJob], rubric: Rubric, record: Callable[[RawLabel], None]) -> None:
        if jobs:
            asyncio.run(self._label_all(jobs, rubric, record))

    async def _label_all(self, jobs, rubric, record) -> None:
        model = answer_model(rubric)
        self.stats.setdefault("reasks", 0)
        async with ChatClient(self.config) as client:
            try:
                # tasks start in job order (as_completed alone would start them in set order)
                tasks = [asyncio.create_task(self._label_one(client, job, rubric, model)) for job in jobs]
                for done in asyncio.as_completed(tasks):
                    record(await done)
            finally:
                for key, value in client.stats.as_dict().items():
                    if key in ("prompt_tokens", "completion_tokens"):
                        self.stats["tokens"] += value
                    self.stats[key] = self.stats.get(key, 0) + value

    async def _label_one(self, client: ChatClient, job: JudgeJob, rubric: Rubric, model) -> RawLabel:
        messages = judge_messages(rubric, job.item.context, job.item.response)
        params = {"temperature": self.config.temperature, "max_tokens": self.config.max_tokens, "seed": job.sample}
        if self.config.json_mode:
            params["response_format"] = {"type": "json_object"}
        base = dict(item_id=job.item.id, rubric_hash=rubric.hash, judge=self.name, sample=job.sample)
        tokens, problem = 0, ""
        for attempt in range(self.config.max_reasks + 1):
            try:
                completion = await client.complete(messages, **params)
            except LLMError as err:
                return RawLabel(**base, status="failed", error=str(err), attempts=attempt + 1, tokens=tokens)
            tokens += completion.prompt_tokens + completion.completion_tokens
            try:
                scores, rationale = parse_answer(completion.text, rubric, model)
            except ValueError as err:
                problem = str(err)
                self.stats["reasks"] += attempt < self.config.max_reasks
                messages = messages[:2] + [
                    {"role": "assistant", "content": completion.text},
                    {"role": "user",
                     "content": f"That answer could not be used ({problem}). Reply with the JSON only."},
                ]
                continue
            return RawLabel(**base, status="ok", scores=scores, rationale=rationale, attempts=attempt + 1,
                            tokens=tokens)
        return RawLabel(**base, status="failed", error=f"malformed answer: {problem}",
                        attempts=self.config.max_reasks + 1, tokens=tokens)
