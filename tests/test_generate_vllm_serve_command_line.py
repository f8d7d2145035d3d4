"""The README's vLLM command line for `annotation generate` (after `vllm serve MODEL --port 8000`), run as a real
subprocess against the fake OpenAI server on 127.0.0.1: every request carries the served model name, the sampling
settings, a per-response `seed` (the same on a rerun, different for each sample) and the `--openai-extra` fields
vLLM reads (top_k, min_p)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.schema import LabeledItem, read_jsonl
from tests.fake_openai_server import FakeOpenAI
from tests.test_generate_local_styles_and_resume import write_prompts

ROOT = Path(__file__).resolve().parent.parent
MODEL = "Qwen/Qwen2.5-7B-Instruct"


def readme_command(prompts: Path, out: Path, base_url: str) -> list[str]:
    """Exactly the README's line, with the fake server's port for 8000."""
    return [sys.executable, "-m", "annotation", "generate", "--prompts", str(prompts), "--out", str(out),
            "--generators", f"openai:{MODEL}", "--styles", "socratic_hint,analogy", "--samples-per-style", "2",
            "--openai.base-url", base_url, "--openai-extra", "{top_k: 20, min_p: 0.05}"]


def test_vllm_serve_command_line_sends_what_vllm_reads(tmp_path):
    write_prompts(tmp_path / "prompts.jsonl")
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OPENAI_API_KEY="")
    with FakeOpenAI() as server:
        command = readme_command(tmp_path / "prompts.jsonl", out, server.base_url)
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        first = [r["body"] for r in server.requests]
        out.unlink()  # a second run from scratch asks the same questions with the same seeds
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        second = [r["body"] for r in server.requests[len(first):]]
    items = read_jsonl(out, LabeledItem)
    assert len(items) == len(first) == 2 * 2 * 2  # 2 prompts x 2 styles x 2 samples
    assert all(item.meta["generator"] == f"openai:{MODEL}" and item.response for item in items)
    for body in first:
        assert body["model"] == MODEL and body["messages"][0]["role"] == "system"
        assert body["temperature"] == 0.8 and body["top_p"] == 0.95 and body["max_tokens"] == 128
        assert body["top_k"] == 20 and body["min_p"] == 0.05
        assert isinstance(body["seed"], int) and 0 <= body["seed"] < 2**31
    assert len({b["seed"] for b in first}) == len(first)  # the two samples of one (prompt, style) differ
    seed_of = lambda bodies: {json.dumps(b["messages"]) + str(b["seed"]) for b in bodies}  # noqa: E731
    assert seed_of(first) == seed_of(second)
    summary = json.loads((tmp_path / "out.summary.json").read_text())["generators"][f"openai:{MODEL}"]
    assert summary["responses"] == 8 and summary["failed_requests"] == 0
