"""ChatClient retries 429/5xx/time-outs/garbled bodies with backoff, counts every attempt, and gives up cleanly."""
from __future__ import annotations

import asyncio

import pytest

from core.llm_client import ChatClient, ClientConfig, LLMError
from tests.fake_openai_server import FakeOpenAI

MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]


def _config(server: FakeOpenAI, **overrides) -> ClientConfig:
    fields = dict(base_url=server.base_url, model="fake", timeout_s=0.5, max_retries=4, backoff_base_s=0.01,
                  backoff_max_s=0.05, concurrency=4)
    return ClientConfig(**{**fields, **overrides})


async def _complete(config: ClientConfig, n: int):
    async with ChatClient(config) as client:
        results = await asyncio.gather(*(client.complete(MESSAGES) for _ in range(n)), return_exceptions=True)
    return client.stats, results


def test_every_fault_kind_is_retried_then_answered():
    with FakeOpenAI(faults={0: "429", 1: "500", 2: "slow", 3: "garbage"}, slow_s=1.5) as server:
        stats, results = asyncio.run(_complete(_config(server, concurrency=1), 1))
    assert not isinstance(results[0], Exception)
    assert "notice" in results[0].text and results[0].attempts == 5
    assert (stats.calls, stats.retries, stats.failures) == (5, 4, 0)
    assert stats.prompt_tokens > 0 and stats.completion_tokens > 0


def test_gives_up_after_max_retries_and_counts_the_failure():
    with FakeOpenAI(faults={i: "500" for i in range(3)}) as server:
        stats, results = asyncio.run(_complete(_config(server, max_retries=2, concurrency=1), 2))
    assert isinstance(results[0], LLMError) and "HTTP 500" in str(results[0])
    assert not isinstance(results[1], Exception)
    assert (stats.calls, stats.retries, stats.failures) == (4, 2, 1)


def test_concurrency_is_bounded():
    with FakeOpenAI(latency_s=0.2) as server:
        import time

        began = time.perf_counter()
        asyncio.run(_complete(_config(server, concurrency=4), 8))
        elapsed = time.perf_counter() - began
    assert 0.4 <= elapsed < 1.5  # 8 requests, 4 at a time, 0.2 s each: two waves


def test_client_error_is_not_retried():
    with FakeOpenAI() as server:
        config = _config(server, base_url=server.base_url.replace("/v1", "/nope"))
        stats, results = asyncio.run(_complete(config, 1))
    assert isinstance(results[0], LLMError) and "HTTP 404" in str(results[0])
    assert (stats.calls, stats.retries) == (1, 0)


@pytest.mark.parametrize("value", ["not-a-number", None])
def test_backoff_stays_within_cap(value):
    client = ChatClient(ClientConfig(backoff_base_s=1.0, backoff_max_s=3.0))
    assert all(0 <= client._backoff(retry, value) <= 3.0 for retry in range(8))
