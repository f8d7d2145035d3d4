"""`python -m annotation generate`: candidate tutor responses for prompt sets, in several tutoring styles.

Generators: `local:<model>` (transformers, batched sampling with left padding and the chat template, on `--device`
in `--dtype`: bf16 on a GPU by default), `openai:<model>` (any OpenAI-compatible endpoint, async with bounded
concurrency; for vLLM: `vllm serve MODEL --port 8000`, then `--generators openai:MODEL --openai.base-url
http://127.0.0.1:8000/v1`; each request carries a `seed` and `--openai-extra` fields) and `human:teacher`
(the real teacher turns in `PromptItem.reference_responses`). Each style in `configs/styles.yaml` is a
system prompt; `PromptItem.chat_messages` adds the profile and the problem.

Output: unlabeled interchange lines (`LabeledItem`), id `<prompt_id>:<generator>:<style>:<k>`. Finished
responses go to `<out>.partial` as they are made; a rerun skips ids already there or in `<out>`, and the
final file is written in one atomic step at the end.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from tqdm import tqdm

from core.config import Config, ConfigError, Seed, load_yaml, run_cli
from core.llm_client import ChatClient, ClientConfig, LLMError
from core.models import DEVICE_HELP, DTYPE_HELP, Device, Dtype, check_model_exists
from core.schema import AppendLog, LabeledItem, PromptItem, read_jsonl, write_json, write_jsonl

STYLES_FILE = Path(__file__).resolve().parent.parent / "configs" / "styles.yaml"
HUMAN = "human:teacher"


class GenerateConfig(Config):
    prompts: Path | None = Field(None, description="PromptItem JSONL (written by `annotation data`)")
    out: Path | None = Field(None, description="output JSONL of unlabeled LabeledItem lines")
    generators: list[str] = Field(
        default_factory=lambda: ["local:smollm2-135m-instruct", HUMAN],
        description="comma-separated: local:<model>, openai:<model>, human:teacher (the prompts' real teacher turns)",
    )
    styles: list[str] = Field(default_factory=list, description="style names from the styles file (empty: all)")
    styles_file: Path = Field(STYLES_FILE, description="YAML mapping style name -> system prompt")
    samples_per_style: int = Field(1, ge=1, description="responses per (prompt, generator, style)")
    max_new_tokens: int = Field(128, ge=1, description="longest response, in tokens")
    temperature: float = Field(0.8, ge=0, description="sampling temperature (0: greedy)")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass")
    batch_size: int = Field(8, ge=1, description="prompts per local generate call")
    dtype: Dtype = Field("auto", description="local generator's weights: " + DTYPE_HELP)
    device: Device = Field("auto", description="local generator: " + DEVICE_HELP)
    seed: Seed = Field(0, description="random seed for local sampling (openai:<model>: each request's `seed` is "
                                      "derived from it and the response id)")
    threads: int = Field(0, ge=0, description="torch CPU threads for the local generator (0: torch's default; on a "
                                              "machine shared with other jobs, 1 can be several times faster)")
    limit: int | None = Field(None, ge=1, description="use only the first N prompts (quick checks)")
    openai: ClientConfig = Field(default_factory=ClientConfig,
                                 description="endpoint for openai:<model> generators (model comes from the spec)")
    openai_extra: dict[str, Any] = Field(
        default_factory=dict, description="extra fields in every openai:<model> request body, e.g. vLLM's sampling "
                                          "parameters {top_k: 20, min_p: 0.05, repetition_penalty: 1.05} (`vllm serve` "
                                          "reads them; other servers may refuse unknown fields)")

    @field_validator("generators", "styles", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("generators")
    @classmethod
    def _known_kinds(cls, value):
        for spec in value:
            kind, _, model = spec.partition(":")
            if kind not in {"local", "openai", "human"} or not model:
                raise ValueError(f"generator {spec!r}: expected local:<model>, openai:<model> or {HUMAN}")
        return value


@dataclass
class Request:
    id: str
    prompt: PromptItem
    generator: str
    style: str
    messages: list[dict] | None  # chat prompt for model generators
    reference: str | None = None  # the teacher's turn for human generators


def load_styles(config: GenerateConfig) -> dict[str, str]:
    styles = load_yaml(config.styles_file)
    if not all(isinstance(v, str) for v in styles.values()):
        raise ConfigError(f"{config.styles_file}: expected a mapping style name -> system prompt")
    unknown = [s for s in config.styles if s not in styles]
    if unknown:
        raise ConfigError(f"field styles: unknown {unknown} (in {config.styles_file}: {sorted(styles)})")
    return {name: styles[name] for name in (config.styles or styles)}


def plan_requests(prompts: list[PromptItem], config: GenerateConfig, styles: dict[str, str]) -> list[Request]:
    requests = []
    for prompt in prompts:
        for generator in config.generators:
            if generator.startswith("human:"):
                for k, text in enumerate(prompt.reference_responses):
                    requests.append(Request(f"{prompt.id}:{generator}:reference:{k}", prompt, generator, "reference",
                                            None, reference=text))
                continue
            for style, system_prompt in styles.items():
                messages = prompt.chat_messages(system_prompt)
                for k in range(config.samples_per_style):
                    requests.append(Request(f"{prompt.id}:{generator}:{style}:{k}", prompt, generator, style, messages))
    return requests


def to_item(request: Request, response: str, tokens: int) -> LabeledItem:
    prompt = request.prompt
    meta = {"prompt_id": prompt.id, "problem_id": prompt.problem_id, "group": prompt.problem_id,
            "split": prompt.split, "source": prompt.source, "generator": request.generator, "style": request.style,
            "profile": prompt.profile.model_dump(exclude_none=True) if prompt.profile else None,
            "new_tokens": tokens}
    return LabeledItem(id=request.id, context=prompt.context, response=response.strip(), prompt=request.messages,
                       meta=meta)


def generate_local(model_name: str, requests: list[Request], config: GenerateConfig, record) -> dict:
    import torch

    from core.models import load_causal_lm, load_tokenizer
    from core.sampling import inverse_cdf_sampling

    if config.threads:
        torch.set_num_threads(config.threads)
    tokenizer = load_tokenizer(model_name, padding_side="left")
    model = load_causal_lm(model_name, dtype=config.dtype, device=config.device).eval()
    torch.manual_seed(config.seed)
    sampling = {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p}
    if config.temperature == 0:
        sampling = {"do_sample": False}
    generate_s = 0.0  # time inside model.generate only, for an honest tokens/s
    for start in range(0, len(requests), config.batch_size):
        batch = requests[start : start + config.batch_size]
        began = time.perf_counter()
        texts = [tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True) for r in batch]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.inference_mode(), inverse_cdf_sampling():
            output = model.generate(**encoded, max_new_tokens=config.max_new_tokens,
                                    pad_token_id=tokenizer.pad_token_id, **sampling)
        generate_s += time.perf_counter() - began
        new = output[:, encoded["input_ids"].shape[1]:].cpu()
        for request, ids in zip(batch, new):
            ends = (ids == tokenizer.eos_token_id).nonzero()
            length = int(ends[0]) + 1 if len(ends) else len(ids)  # count tokens up to and with the first EOS
            record(to_item(request, tokenizer.decode(ids[:length], skip_special_tokens=True), length))
    return {"generate_s": round(generate_s, 2)}


def request_seed(seed: int, request_id: str) -> int:
    """A per-request sampling seed (vLLM and OpenAI read `seed`): the same on a rerun, different for each sample k."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{request_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def generate_openai(model_name: str, requests: list[Request], config: GenerateConfig, record) -> dict:
    client_config = config.openai.model_copy(update={"model": model_name})
    params = {"temperature": config.temperature, "top_p": config.top_p, "max_tokens": config.max_new_tokens,
              **config.openai_extra}

    async def one(client: ChatClient, request: Request):
        try:
            completion = await client.complete(request.messages,
                                               **{"seed": request_seed(config.seed, request.id), **params})
        except LLMError as err:
            return request, err
        return request, completion

    async def run_all() -> dict:
        failed = 0
        async with ChatClient(client_config) as client:
            tasks = [asyncio.create_task(one(client, r)) for r in requests]
            for done in asyncio.as_completed(tasks):
                request, result = await done
                if isinstance(result, LLMError):
                    failed += 1  # not written: a rerun asks again
                else:
                    record(to_item(request, result.text, result.completion_tokens))
        return {**client.stats.as_dict(), "failed_requests": failed}

    return asyncio.run(run_all()) if requests else {}


def run_generate(config: GenerateConfig) -> dict:
    if config.prompts is None or config.out is None:
        raise ConfigError("fields prompts and out: give --prompts FILE and --out FILE (or set them in the config file)")
    out = Path(config.out)
    prompts = read_jsonl(config.prompts, PromptItem)[: config.limit]
    requests = plan_requests(prompts, config, load_styles(config))
    for generator in config.generators:  # an unknown local model stops here, before any file is opened
        if generator.startswith("local:"):
            check_model_exists(generator.partition(":")[2])
    previous = read_jsonl(out, LabeledItem, allow_empty=True) if out.exists() else []
    partial_path = out.with_name(out.name + ".partial")
    summary = {"prompts": len(prompts), "requests": len(requests), "generators": {}}
    with AppendLog(partial_path) as log:
        done = {item.id for item in previous} | {record["id"] for record in log.records()}
        pending = [r for r in requests if r.id not in done]
        summary["skipped_done"] = len(requests) - len(pending)
        new_tokens = dict.fromkeys(config.generators, 0)
        with tqdm(total=len(pending), desc="generate", unit="response") as bar:
            def record(item: LabeledItem) -> None:
                log.append(item)
                new_tokens[item.meta["generator"]] += item.meta["new_tokens"]
                bar.update(1)

            for generator in config.generators:
                todo = [r for r in pending if r.generator == generator]
                kind, _, model_name = generator.partition(":")
                began = time.perf_counter()
                stats = {}
                if kind == "human":
                    for request in todo:
                        record(to_item(request, request.reference, 0))
                elif kind == "local" and todo:
                    stats = generate_local(model_name, todo, config, record)
                else:
                    stats = generate_openai(model_name, todo, config, record)
                seconds = time.perf_counter() - began
                summary["generators"][generator] = {
                    "responses": len(todo), "seconds": round(seconds, 2), "new_tokens": new_tokens[generator],
                    "tokens_per_s": round(new_tokens[generator] / stats.get("generate_s", seconds), 2)
                    if todo and kind != "human" else None,
                    **stats}
        made = {item.id: item for item in map(LabeledItem.model_validate, log.records())}
    merged = {item.id: item for item in previous} | made
    order = [r.id for r in requests if r.id in merged] + [i for i in merged if i not in {r.id for r in requests}]
    summary["written"] = write_jsonl(out, (merged[i] for i in order))
    partial_path.unlink()
    write_json(out.with_name(out.stem + ".summary.json"), summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    _, summary = run_cli(GenerateConfig, argv, "python -m annotation generate", __doc__, run_generate)
    print(f"{summary['written']} responses in {summary['prompts']} prompts "
          f"({summary['skipped_done']} already done)")
    for name, stats in summary["generators"].items():
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
