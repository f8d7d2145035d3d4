"""An OpenAI-compatible chat server for tests and benchmarks, run in a thread on 127.0.0.1 (a free port).

It answers `/v1/chat/completions` and injects faults on a schedule: the n-th request (counting from 0) gets
`faults[n]`, one of "429", "500", "slow" (sleeps past the client's time-out), "malformed" (valid HTTP, but the
message is not the JSON the judge asked for) or "garbage" (a 200 whose body is not JSON). Requests without a
scheduled fault whose text contains `always_malformed` get a malformed answer. Every request is recorded, so tests can
count calls per item.

Judge prompts are recognised by the JSON template they contain (`"Dimension": {"score": ...}`); the fake
judge gives each dimension a deterministic score from a hash of the request text. Decision-judge prompts (the
classroom's, recognised by `"decision": "OK" or "REJECT"`) get OK, or REJECT when their text contains
`reject_containing`. Anything else gets a short tutor reply.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

DIMENSION_TEMPLATE = re.compile(r'"([A-Za-z][A-Za-z0-9_]*)": \{"score"')
DECISION_TEMPLATE = '"decision": "OK" or "REJECT"'


def _stable_int(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def fake_judge_answer(messages: list[dict]) -> str | None:
    """The fake judge's JSON for a judge prompt, or None when the request is not a judge prompt."""
    text = "\n".join(m["content"] for m in messages)
    dims = list(dict.fromkeys(DIMENSION_TEMPLATE.findall(text)))
    if not dims:
        return None
    scores = {d: {"score": _stable_int(text + d) % 3, "rationale": f"fake rationale for {d}"} for d in dims}
    return json.dumps(scores)


@dataclass
class FakeOpenAI:
    faults: dict[int, str] = field(default_factory=dict)
    latency_s: float = 0.0
    slow_s: float = 2.0
    always_malformed: str | None = None
    reject_containing: str | None = None
    requests: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self._chat)

    async def _chat(self, request: Request):
        body = await request.json()
        with self._lock:
            index = len(self.requests)
            fault = self.faults.get(index, "ok")
            text = "\n".join(m["content"] for m in body["messages"])
            if fault == "ok" and self.always_malformed and self.always_malformed in text:
                fault = "malformed"
            self.requests.append({"index": index, "fault": fault, "body": body})
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if fault == "429":
            return JSONResponse({"error": {"message": "rate limited"}}, status_code=429, headers={"retry-after": "0"})
        if fault == "500":
            return JSONResponse({"error": {"message": "server error"}}, status_code=500)
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        if fault == "garbage":
            return PlainTextResponse("<html>bad gateway</html>", status_code=200)
        content = fake_judge_answer(body["messages"])
        if content is None and DECISION_TEMPLATE in text:
            rejects = self.reject_containing is not None and self.reject_containing in text
            content = json.dumps({"reasoning": "fake decision", "decision": "REJECT" if rejects else "OK"})
        if content is None:
            content = f"Good question! What do you notice about the numbers? (reply {_stable_int(text) % 1000})"
        if fault == "malformed":
            content = "Sure! Here are my scores: Helpfulness is pretty good {"
        return {
            "id": f"chatcmpl-{index}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": len(text.split()), "completion_tokens": len(content.split()),
                      "total_tokens": len(text.split()) + len(content.split())},
        }

    # -- running in a background thread ---------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAI:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def calls_containing(self, text: str) -> int:
        """How many requests had `text` in one of their messages."""
        return sum(any(text in m["content"] for m in r["body"]["messages"]) for r in self.requests)


def main(argv: list[str] | None = None) -> None:
    """Run the fake server in its own process (the benchmark does, so client and server do not share a GIL)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args(argv)
    server = FakeOpenAI(latency_s=args.latency)
    uvicorn.run(server.app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
