"""Throughput of `annotation label` with an OpenAI-compatible judge, against the fake server with added latency.

The fake server (tests/fake_openai_server.py) runs in its own process. For each concurrency c the full
label pipeline runs (async client, JSON validation, fsynced raw log, aggregation) on fresh items; the
bound is c / latency items per second (each item is one request).

    python benchmarks/bench_annotation_throughput.py runs/bench/throughput.json [--latency 0.1]

writes the JSON and a Markdown table next to it (same name, .md).
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from annotation.label import LabelConfig, run_label  # noqa: E402
from core.schema import LabeledItem, write_json, write_jsonl, write_text  # noqa: E402


@contextmanager
def fake_server(latency: float):
    """Start tests/fake_openai_server.py as a subprocess on a free port; yield its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "tests.fake_openai_server", "--port", str(port),
                                "--latency", str(latency)], cwd=REPO)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(base_url + "/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("fake server did not start") from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def measure(base_url: str, latency: float, concurrency: int, n_items: int, workdir: Path) -> dict:
    items = [LabeledItem(id=f"c{concurrency}-{i}", context=f"## Problem\nWhat is {i} + {concurrency}?",
                         response=f"Try counting on from {i}. What do you get?") for i in range(n_items)]
    write_jsonl(workdir / "items.jsonl", items)
    judge = workdir / "judge.yaml"
    judge.write_text(yaml.safe_dump({"backend": "openai", "name": "fake", "base_url": base_url,
                                     "model": "fake", "concurrency": concurrency, "timeout_s": 30}))
    config = LabelConfig(items=workdir / "items.jsonl", out=workdir / "out", judges=[str(judge)])
    began = time.perf_counter()
    summary = run_label(config)
    seconds = time.perf_counter() - began
    stats = summary["judges"]["fake"]
    assert stats["ok"] == n_items, stats
    bound = concurrency / latency
    return {"concurrency": concurrency, "items": n_items, "seconds": round(seconds, 3),
            "items_per_s": round(n_items / seconds, 2), "bound_items_per_s": round(bound, 2),
            "fraction_of_bound": round(n_items / seconds / bound, 3), "calls": stats["calls"]}


def markdown(result: dict) -> str:
    lines = [f"# Label throughput against a fake OpenAI-compatible server ({result['latency_s'] * 1000:.0f} ms latency)",
             "", "| concurrency | items | seconds | items/s | bound c/latency | fraction of bound |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['concurrency']} | {r['items']} | {r['seconds']} | {r['items_per_s']} | "
                     f"{r['bound_items_per_s']} | {r['fraction_of_bound']} |")
    lines += ["", "Each item is one judge request (all rubric dimensions in one JSON answer); the time covers the "
              "whole `annotation label` run: client, validation, fsynced raw log and aggregation."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="JSON result path; the Markdown table goes next to it (.md)")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the server waits before answering")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--seconds-per-level", type=float, default=3.0,
                        help="items per level = this many seconds of work at the bound (at least 20)")
    args = parser.parse_args(argv)
    rows = []
    with fake_server(args.latency) as base_url, tempfile.TemporaryDirectory() as tmp:
        for c in args.concurrency:
            n_items = max(20, round(args.seconds_per_level * c / args.latency))
            workdir = Path(tmp) / f"c{c}"
            workdir.mkdir()
            rows.append(measure(base_url, args.latency, c, n_items, workdir))
            print(rows[-1])
    result = {"latency_s": args.latency, "rows": rows}
    write_json(args.out, result)
    write_text(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
