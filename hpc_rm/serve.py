"""`python -m hpc_rm serve --model DIR --host 127.0.0.1 --port 8700`: score with a reward model over HTTP.

For GRPO runs whose reward model should not sit on every training GPU (a large RM next to a large policy): start
the server on a GPU of its own and give its address as the GRPO config's `reward_model: http://HOST:PORT`. Every
training rank then sends its completions here, and requests that arrive together are scored together.

- `GET /info`: {"rubric", "dimensions", "weights", "max_response_tokens", "max_length", "read_context",
  "backbone", "batch_size", "max_request_pairs", "device", "dtype", "served": {"requests", "pairs", "batches"}}.
- `POST /score` with {"contexts": [str, ...], "responses": [str, ...]}: {"scores": {dimension: [float, ...]}} in
  input order, each in [0, the dimension's top level].
- A bad request (not JSON, a missing or unknown field, lists of different lengths, not strings, too many pairs) is
  answered 400 with {"error": "<one line>"}; an unknown path 404.

Batching: handler threads queue their requests; one scoring thread takes the first waiting request and, for up to
`max_wait_ms` more, every request that arrives, until `batch_size` pairs are waiting; it scores them in one call
(length-sorted batches of `batch_size`) and hands each request its rows. Stop the server with Ctrl-C.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

from pydantic import Field

from core.config import Config, ConfigError, run_cli
from core.models import DEVICE_HELP, Device
from core.reward_client import load_scoring_rm, rm_device, rm_placement
from core.reward_config import check_rm_folder

MAX_BODY_BYTES = 256 * 1024 * 1024


class ServeConfig(Config):
    model: Path | None = Field(None, description="reward model folder (from `hpc_rm train`)")
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every interface; the server has "
                                               "no authentication, so keep it on a trusted network)")
    port: int = Field(8700, ge=0, le=65535, description="port to listen on (0: any free port, printed at start)")
    batch_size: int = Field(32, ge=1, description="pairs per forward pass; requests that arrive together share one")
    max_wait_ms: float = Field(10.0, ge=0, description="how long the first waiting request waits for others to "
                                                       "fill a batch")
    max_request_pairs: int = Field(4096, ge=1, description="most pairs one request may carry (the client splits "
                                                           "larger calls)")
    device: Device = Field("auto", description="device to score on: " + DEVICE_HELP + " (spread: the first GPU)")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="backbone dtype: auto is bfloat16 on CUDA and float32 on CPU (pooling and heads stay "
                            "float32)")


class BadRequest(ValueError):
    """A request the server answers with 400 and this message."""


def parse_score_request(body: bytes, max_pairs: int) -> tuple[list[str], list[str]]:
    """(contexts, responses) from a POST /score body, or BadRequest naming what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"body must be a JSON object with 'contexts' and 'responses', got {type(data).__name__}")
    unknown = sorted(set(data) - {"contexts", "responses"})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} (the fields are 'contexts' and 'responses')")
    lists = {}
    for name in ("contexts", "responses"):
        if name not in data:
            raise BadRequest(f"field {name!r} is missing")
        value = data[name]
        if not isinstance(value, list):
            raise BadRequest(f"field {name!r} must be a list of strings, got {type(value).__name__}")
        for k, item in enumerate(value):
            if not isinstance(item, str):
                raise BadRequest(f"field {name}[{k}] must be a string, got {type(item).__name__}")
        lists[name] = value
    contexts, responses = lists["contexts"], lists["responses"]
    if len(contexts) != len(responses):
        raise BadRequest(f"{len(contexts)} contexts but {len(responses)} responses: one context per response")
    if len(contexts) > max_pairs:
        raise BadRequest(f"{len(contexts)} pairs in one request, more than --max-request-pairs {max_pairs}: "
                         "split the request")
    return contexts, responses


@dataclass
class _Job:
    contexts: list[str]
    responses: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    scores: dict[str, list[float]] | None = None
    error: BaseException | None = None


class Batcher:
    """One thread scores; requests waiting together are scored in one call (see the module docstring)."""

    def __init__(self, rm, batch_size: int, max_wait_s: float):
        self.rm = rm
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.stats = {"requests": 0, "pairs": 0, "batches": 0}
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, name="rm-scorer", daemon=True).start()

    def submit(self, contexts: list[str], responses: list[str]) -> dict[str, list[float]]:
        if not contexts:
            return {d: [] for d in self.rm.dimensions}
        job = _Job(contexts, responses)
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.scores

    def _loop(self) -> None:
        while True:
            jobs = [self._queue.get()]
            pairs = len(jobs[0].contexts)
            deadline = time.monotonic() + self.max_wait_s
            while pairs < self.batch_size:
                remaining = deadline - time.monotonic()
                try:
                    job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                jobs.append(job)
                pairs += len(job.contexts)
            self._score(jobs)

    def _score(self, jobs: list[_Job]) -> None:
        contexts = [c for job in jobs for c in job.contexts]
        responses = [r for job in jobs for r in job.responses]
        try:
            scores = self.rm.score(contexts, responses, batch_size=self.batch_size)
        except BaseException as err:  # every waiting request gets the error (500), the server keeps running
            for job in jobs:
                job.error = err
                job.done.set()
            return
        with self._lock:
            self.stats["requests"] += len(jobs)
            self.stats["pairs"] += len(contexts)
            self.stats["batches"] += 1
        start = 0
        for job in jobs:
            end = start + len(job.contexts)
            job.scores = {d: [float(x) for x in scores[d][start:end]] for d in self.rm.dimensions}
            start = end
            job.done.set()


class ScoringServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], rm, cfg: ServeConfig, info: dict):
        self.batcher = Batcher(rm, cfg.batch_size, cfg.max_wait_ms / 1000)
        self.max_request_pairs = cfg.max_request_pairs
        self.static_info = info
        super().__init__(address, ScoreHandler)

    def info(self) -> dict:
        with self.batcher._lock:
            return {**self.static_info, "served": dict(self.batcher.stats)}


class ScoreHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a training rank reuses its connection
    server: ScoringServer

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.rstrip("/") == "/info":
            self._send(200, self.server.info())
        else:
            self._send(404, {"error": f"no such path {self.path!r} (GET /info, POST /score)"})

    def do_POST(self) -> None:  # noqa: N802
        length = self.headers.get("Content-Length")
        try:
            size = int(length) if length is not None else -1
        except ValueError:
            size = -1
        if size < 0 or size > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(400, {"error": f"Content-Length must be given and at most {MAX_BODY_BYTES} bytes "
                                      f"(got {length!r})"})
            return
        body = self.rfile.read(size)
        if self.path.rstrip("/") != "/score":
            self._send(404, {"error": f"no such path {self.path!r} (GET /info, POST /score)"})
            return
        try:
            contexts, responses = parse_score_request(body, self.server.max_request_pairs)
        except BadRequest as err:
            self._send(400, {"error": str(err)})
            return
        try:
            scores = self.server.batcher.submit(contexts, responses)
        except Exception as err:  # a scoring failure: the client may retry (5xx)
            self._send(500, {"error": f"scoring failed: {type(err).__name__}: {err}"})
            return
        self._send(200, {"scores": scores})

    def log_message(self, format: str, *args) -> None:  # quiet: a training run sends many requests
        pass


def server_info(rm, cfg: ServeConfig, device, dtype: str) -> dict:
    return {
        "model": str(cfg.model), "rubric": json.loads(rm.rubric.model_dump_json()), "dimensions": rm.dimensions,
        "weights": rm.weights, "max_response_tokens": rm.spec.max_response_tokens,
        "max_length": rm.spec.max_length, "read_context": rm.spec.read_context, "backbone": rm.spec.backbone,
        "batch_size": cfg.batch_size, "max_request_pairs": cfg.max_request_pairs, "device": str(device),
        "dtype": dtype,
    }


def make_server(cfg: ServeConfig, rm=None) -> ScoringServer:
    """The bound (not yet serving) server; loads the RM unless one is given. Bad input raises core.errors."""
    if cfg.model is None:
        raise ConfigError("flag --model: required (a reward model folder from `python -m hpc_rm train`)")
    check_rm_folder(cfg.model)
    device, torch_dtype = rm_placement(cfg.dtype, rm_device(cfg.device))
    dtype = str(torch_dtype).removeprefix("torch.")
    _can_listen(cfg.host, cfg.port)  # before a large model spends minutes loading
    if rm is None:
        rm = load_scoring_rm(str(cfg.model), device, cfg.dtype)
    try:
        return ScoringServer((cfg.host, cfg.port), rm, cfg, server_info(rm, cfg, device, dtype))
    except OSError as err:
        raise ConfigError(f"flag --port: cannot listen on {cfg.host}:{cfg.port}: {err.strerror or err}") from None


def _can_listen(host: str, port: int) -> None:
    import socket

    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
        probe.bind((host, port))
    except OSError as err:
        raise ConfigError(f"flag --port: cannot listen on {host}:{port}: {err.strerror or err}") from None
    finally:
        probe.close()


def serve(cfg: ServeConfig) -> None:
    server = make_server(cfg)
    host, port = server.server_address[:2]
    print(f"serving {cfg.model} at http://{host}:{port} (device {server.static_info['device']}, "
          f"{server.static_info['dtype']}, batch size {cfg.batch_size})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    run_cli(ServeConfig, argv, "python -m hpc_rm serve", __doc__.split("\n")[0], serve)
