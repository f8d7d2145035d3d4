"""`annotation generate` with an OpenAI-compatible endpoint that injects faults: every response is written once,
retries are counted, and a request that failed for good is asked again by the next run."""
from __future__ import annotations

import json

from annotation.generate import main as generate_main
from core.schema import LabeledItem, read_jsonl
from tests.fake_openai_server import FakeOpenAI
from tests.test_generate_local_styles_and_resume import write_prompts


def test_openai_generator_survives_faults_and_resumes(tmp_path):
    write_prompts(tmp_path / "prompts.jsonl")
    out = tmp_path / "out.jsonl"
    faults = {0: "429", 1: "500", 2: "garbage", 3: "500", 4: "429"}
    with FakeOpenAI(faults=faults, latency_s=0.01) as server:
        argv = ["--prompts", str(tmp_path / "prompts.jsonl"), "--out", str(out), "--generators", "openai:fake-tutor",
                "--openai.base-url", server.base_url, "--openai.max-retries", "2", "--openai.backoff-base-s", "0.01",
                "--openai.concurrency", "1"]
        generate_main(argv)
        first = read_jsonl(out, LabeledItem)
        summary = json.loads((tmp_path / "out.summary.json").read_text())["generators"]["openai:fake-tutor"]
        # the first request meets 429, 500, garbage: 2 retries, then it fails; the second meets 500, 429, then ok
        assert summary["failed_requests"] == 1 and summary["retries"] == 2 + 2
        assert len(first) == 12 - 1 and summary["calls"] == len(server.requests)
        assert all(item.response and item.meta["generator"] == "openai:fake-tutor" for item in first)
        assert all(item.prompt[0].role == "system" for item in first)
        calls_before = len(server.requests)
        generate_main(argv)
        assert len(server.requests) == calls_before + 1  # only the failed one is asked again
    items = read_jsonl(out, LabeledItem)
    assert len(items) == len({i.id for i in items}) == 12
    assert {i.meta["style"] for i in items} == {"direct_answer", "socratic_hint", "adapted_to_profile", "analogy",
                                                 "open_question", "check_mistake"}
