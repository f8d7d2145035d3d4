"""Run stages as subprocesses in one run directory, skip the ones whose inputs and options are unchanged, and keep
a manifest (resolved config, versions, seeds, git commit, each stage's time and peak memory)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from core.schema import write_json

PACKAGES = ["torch", "transformers", "trl", "peft", "accelerate", "datasets", "scikit-learn", "krippendorff", "pydantic"]


@dataclass
class StagePlan:
    """One stage, resolved: the command it runs, the files it must produce, the stages it reads from."""

    name: str
    description: str
    argv: list[str]
    outputs: list[Path]
    needs: list[str] = field(default_factory=list)
    # A folder the stage resumes from (checkpoints, finished sweep runs): kept only to finish an interrupted run of
    # the same command, removed before a redo or a changed command, so old training state never leaks in.
    state_dir: Path | None = None
    # Servers the stage talks to (vLLM, a served RM), started by hand before it: their command lines, for display.
    servers: list[str] = field(default_factory=list)


def _hash_path(path: Path, digest) -> None:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)


def fingerprint(plan: StagePlan) -> str:
    """The stage's key: its command line plus the content of every existing file or folder it names that it does
    not write (inputs and config files). Changing an upstream output or an option re-runs the stage."""
    digest = hashlib.sha256(json.dumps(plan.argv[1:]).encode())
    outputs = [p.resolve() for p in plan.outputs]
    for arg in plan.argv[1:]:
        if len(arg) > 512 or not Path(arg).exists():
            continue
        path = Path(arg).resolve()
        written = any(o == path or o.is_relative_to(path) or path.is_relative_to(o) for o in outputs)
        if not written and path != Path.cwd().resolve():
            _hash_path(path, digest)
    return digest.hexdigest()[:16]


def git_commit() -> dict:
    def git(*args):
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent)
        return out.stdout.strip() if out.returncode == 0 else None

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def package_versions() -> dict:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class Manifest:
    """`RUN/manifest.json`, rewritten atomically after every stage so a killed run still tells what finished."""

    def __init__(self, run_dir: Path, config: dict):
        self.path = run_dir / "manifest.json"
        previous = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.data = {
            "config": config,
            "versions": package_versions(),
            "git": git_commit(),
            "seed": config.get("seed"),
            "updated": None,
            "stages": previous.get("stages", {}),
        }

    def record(self, name: str, **info) -> None:
        self.data["stages"][name] = info
        self.data["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json(self.path, self.data)

    def stage(self, name: str) -> dict:
        return self.data["stages"].get(name, {})


def is_done(plan: StagePlan, manifest: Manifest) -> bool:
    done = manifest.stage(plan.name)
    return (
        done.get("status") == "done"
        and done.get("fingerprint") == fingerprint(plan)
        and all(p.exists() for p in plan.outputs)
    )


def run_stage(plan: StagePlan, manifest: Manifest, env: dict | None = None, redo: bool = False) -> dict:
    """Run one stage's command; record its time and peak memory (the child's own max RSS, via wait4)."""
    key = fingerprint(plan)
    last = manifest.stage(plan.name)
    resuming = not redo and last.get("status") == "running" and last.get("fingerprint") == key
    if plan.state_dir is not None and plan.state_dir.exists() and not resuming:
        shutil.rmtree(plan.state_dir)
    manifest.record(plan.name, status="running", fingerprint=key, command=shlex.join(plan.argv))
    started = time.perf_counter()
    process = subprocess.Popen(plan.argv, env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = round(time.perf_counter() - started, 1)
    info = {
        "status": "done" if process.returncode == 0 else "failed",
        "seconds": seconds,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "fingerprint": key,
        "command": shlex.join(plan.argv),
        "outputs": [str(p) for p in plan.outputs],
    }
    missing = [str(p) for p in plan.outputs if not p.exists()]
    if process.returncode == 0 and missing:
        info["status"] = "failed"
        info["error"] = f"finished but did not write {missing}"
    elif process.returncode != 0:
        info["error"] = f"exit code {process.returncode}"
    manifest.record(plan.name, **info)
    return info
