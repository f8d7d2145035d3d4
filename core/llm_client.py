"""Async client for any OpenAI-compatible `/v1/chat/completions` endpoint, shared by generation and judging.

Concurrency is bounded by a semaphore; 429, 5xx, time-outs and dropped connections are retried with
exponential backoff and full jitter (honouring `Retry-After`), and every attempt is counted in `ClientStats`
so runs can report calls, retries, failures and tokens. Other 4xx answers are not retried: the request
itself is wrong and sending it again cannot help.
"""
from __future__ import annotations

import asyncio
import os
import random
from dataclasses import asdict, dataclass

import httpx
from pydantic import Field

from core.config import Config

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
# httpcore's pool rescans every waiting request against every connection on each event, which is quadratic in
# the number of connections; at 64 in flight that cost more CPU than the requests. Small pools keep it cheap.
CONNECTIONS_PER_POOL = 8


class ClientConfig(Config):
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible API root (ends in /v1)")
    model: str = Field("gpt-4o-mini", description="model name sent with every request")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="name of the environment variable holding the API key (unset: no key sent)"
    )
    concurrency: int = Field(16, ge=1, description="requests in flight at once")
    timeout_s: float = Field(60.0, gt=0, description="seconds before a request counts as timed out (then retried)")
    max_retries: int = Field(5, ge=0, description="retries per request on 429, 5xx, time-outs and dropped connections")
    backoff_base_s: float = Field(1.0, ge=0, description="first retry waits up to this long; doubles each retry")
    backoff_max_s: float = Field(30.0, ge=0, description="longest wait between retries")


class LLMError(RuntimeError):
    """A request that failed for good (retries exhausted or a non-retryable status)."""


@dataclass
class ClientStats:
    calls: int = 0  # HTTP attempts, including retries
    retries: int = 0
    failures: int = 0  # requests given up on
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    attempts: int


class ChatClient:
    """`async with ChatClient(cfg) as client: await client.complete(messages, temperature=...)`."""

    def __init__(self, config: ClientConfig):
        self.config = config
        self.stats = ClientStats()
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self._pools: list[httpx.AsyncClient] = []
        self._requests_sent = 0

    async def __aenter__(self) -> ChatClient:
        headers = {}
        key = os.environ.get(self.config.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        n_pools = -(-self.config.concurrency // CONNECTIONS_PER_POOL)
        per_pool = -(-self.config.concurrency // n_pools)
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        self._pools = [
            httpx.AsyncClient(base_url=self.config.base_url.rstrip("/") + "/", headers=headers,
                              timeout=self.config.timeout_s, limits=limits)
            for _ in range(n_pools)
        ]
        return self

    async def __aexit__(self, *exc) -> None:
        for pool in self._pools:
            await pool.aclose()

    def _backoff(self, retry: int, retry_after: str | None) -> float:
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**retry)
        if retry_after:
            try:
                return min(self.config.backoff_max_s, float(retry_after))
            except ValueError:
                pass
        return random.uniform(0, cap)  # full jitter: many clients retrying together do not stampede

    async def complete(self, messages: list[dict], **params) -> Completion:
        """One chat completion; `params` go into the request body (temperature, max_tokens, seed, ...)."""
        body = {"model": self.config.model, "messages": messages, **params}
        async with self._semaphore:
            for attempt in range(self.config.max_retries + 1):
                self.stats.calls += 1
                retry_after, problem = None, None
                pool = self._pools[self._requests_sent % len(self._pools)]
                self._requests_sent += 1
                try:
                    response = await pool.post("chat/completions", json=body)
                except (httpx.TimeoutException, httpx.TransportError) as err:
                    problem = f"{type(err).__name__}: {err}"
                else:
                    completion = self._parse(response, attempt + 1) if response.status_code == 200 else None
                    if completion is not None:
                        return completion
                    problem = f"HTTP {response.status_code}: {response.text[:200]}"
                    if response.status_code not in RETRY_STATUS | {200}:  # a garbled 200 body is retried too
                        break
                    retry_after = response.headers.get("retry-after")
                if attempt < self.config.max_retries:
                    self.stats.retries += 1
                    await asyncio.sleep(self._backoff(attempt, retry_after))
            self.stats.failures += 1
            raise LLMError(f"{self.config.base_url} {self.config.model}: {problem}")

    def _parse(self, response: httpx.Response, attempts: int) -> Completion | None:
        try:
            data = response.json()
            text = data["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        usage = data.get("usage") or {}
        prompt_tokens, completion_tokens = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        return Completion(text, prompt_tokens, completion_tokens, attempts)
