"""Helpers for the `serve` tests: a tasks file, an in-process app for request-level checks, a real
`python -m annotation serve` process on a free port of 127.0.0.1, and Debian's headless Chromium driven by
Playwright (never `playwright install`)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
from fastapi.testclient import TestClient

from core.schema import StudentProfile, Turn, render_context, write_jsonl
from annotation.serve import ServeConfig, prepare_store
from annotation.serve.app import create_app

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
FULL_SCORES = {"Helpfulness": 2, "Personalization": 1, "Creativity": 0}


def write_tasks(path: Path, n: int, responses: dict[int, str] | None = None, ids: dict[int, str] | None = None) -> list[str]:
    """n unlabeled items with a student profile, a problem and a student turn; returns their ids in order."""
    responses, ids = responses or {}, ids or {}
    rows = []
    for i in range(n):
        profile = StudentProfile(grade="7th grade", interests=["football"], misconception="adds the denominators")
        context = render_context(profile, f"What is 1/2 + 1/{i + 3}?", [Turn(role="student", text="Is it 2/5?")])
        response = responses.get(i, f"Good try! Picture 1/2 and 1/{i + 3} of a pizza: are the slices the same size?")
        rows.append({"id": ids.get(i, f"item-{i:03d}"), "context": context, "response": response, "meta": {"n": i},
                     "prompt": [{"role": "user", "content": f"What is 1/2 + 1/{i + 3}?"}]})
    write_jsonl(path, rows)
    return [row["id"] for row in rows]


def local_app(tmp_path: Path, n_items: int = 6, k: int = 2, claim_batch: int = 10,
              annotators: tuple[str, ...] = ("alice", "bob"), admin: str = "boss") -> SimpleNamespace:
    """The app in-process (no sockets): .client, .store, .tokens {name: token}, .ids (item ids)."""
    tasks = tmp_path / "tasks.jsonl"
    ids = write_tasks(tasks, n_items)
    store, rubric = prepare_store(ServeConfig(tasks=tasks, db=tmp_path / "labels.sqlite"))
    tokens = {name: store.create_annotator(name) for name in annotators}
    tokens[admin] = store.create_annotator(admin, admin=True)
    client = TestClient(create_app(store, rubric, k=k, claim_batch=claim_batch))
    return SimpleNamespace(client=client, store=store, tokens=tokens, ids=ids)


def scores_for(name: str, item_id: str) -> dict[str, int]:
    """Deterministic but varied levels, so a label swapped between rows would be noticed."""
    seed = sum(map(ord, name + item_id))
    return {"Helpfulness": seed % 3, "Personalization": (seed // 3) % 3, "Creativity": (seed // 9) % 3}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_with_annotators(tmp_path: Path, n_items: int, n_annotators: int, k: int, claim_batch: int):
    """(Server not yet started, its LabelStore, {name: token}) for annotator00, annotator01, ... over n_items tasks."""
    from annotation.serve.db import LabelStore

    db, tasks = tmp_path / "labels.sqlite", tmp_path / "tasks.jsonl"
    write_tasks(tasks, n_items)
    store = LabelStore(db)
    tokens = {f"annotator{i:02d}": store.create_annotator(f"annotator{i:02d}") for i in range(n_annotators)}
    return Server(db, tasks, k=k, claim_batch=claim_batch), store, tokens


class Server:
    """`python -m annotation serve` in its own process, so a test can SIGKILL it like a crash."""

    def __init__(self, db: Path, tasks: Path | None, k: int = 2, claim_batch: int = 10, log: Path | None = None):
        self.db, self.tasks, self.k, self.claim_batch = db, tasks, k, claim_batch
        self.log = log or db.with_suffix(".server.log")
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 60, attempts: int = 3) -> "Server":
        """Start on a free port and wait for /healthz; retry if another process grabbed the port first."""
        for _ in range(attempts):
            if self._try_start(free_port(), timeout):
                return self
        raise RuntimeError(f"no free port after {attempts} attempts:\n{self.log.read_text()}")

    def _try_start(self, port: int, timeout: float) -> bool:
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "annotation", "serve", "--db", str(self.db), "--k", str(self.k),
               "--claim-batch", str(self.claim_batch), "--port", str(port)]
        if self.tasks is not None:
            cmd += ["--tasks", str(self.tasks)]
        log_start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("a") as log:
            self.process = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_text()[log_start:]
                if "address already in use" in output.lower():
                    return False
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{output}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return True
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log.read_text()[log_start:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, exactly like a crash or an OOM kill."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def launch_chromium(playwright):
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium package")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def log_in(page, url: str, token: str) -> None:
    page.goto(url + "/")
    page.fill("#token", token)
    page.click("button[type=submit]")


def expect_item_page(page, url: str, item_id: str) -> None:
    """Wait until the item page is shown and its keyboard shortcuts are active."""
    from playwright.sync_api import expect

    expect(page).to_have_url(f"{url}/items/{item_id}")
    expect(page.locator("#label-form")).to_have_attribute("data-keyboard", "ready")
