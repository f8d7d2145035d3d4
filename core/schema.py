"""The files every stage reads and writes: prompt sets and the labeled-item interchange format (JSONL).

Data flows one way: prompts (`PromptItem`) -> responses and labels (`LabeledItem`) -> reward model -> policy.
Readers validate every line and fail with `file:line: field ...`; files are UTF-8 (a BOM is dropped, other bytes
name their line and offset), and a JSON array where JSONL is expected says how to convert it. Writers write a
temporary file and rename it, so an output is never half written.
"""
from __future__ import annotations

import codecs
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import BadInput

M = TypeVar("M", bound=BaseModel)


class DataError(BadInput, ValueError):
    """Bad input data; the message names the file, line and field."""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str


class StudentProfile(BaseModel):
    """Who the tutor is talking to; Personalization cannot be judged without it."""

    grade: str | None = Field(None, description="grade level, e.g. '7th grade'")
    interests: list[str] = Field(default_factory=list, description="topics the student likes")
    misconception: str | None = Field(None, description="a known misconception or confusion")
    personality: str | None = Field(None, description="persona or learning-style text from the source")

    def describe(self) -> str:
        parts = []
        if self.grade:
            parts.append(f"Grade level: {self.grade}")
        if self.interests:
            parts.append("Interests: " + ", ".join(self.interests))
        if self.personality:
            parts.append(f"About the student: {self.personality}")
        if self.misconception:
            parts.append(f"Known misconception: {self.misconception}")
        return "\n".join(parts) if parts else "No profile given."


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["student", "tutor"]
    text: str


PROFILE_HEADER = "## Student profile"
PROBLEM_HEADER = "## Problem"
DIALOGUE_HEADER = "## Dialogue so far"


def render_context(profile: StudentProfile | None, problem: str | None, turns: list[Turn]) -> str:
    """The text a judge or reward model sees before the response. One rendering for every stage."""
    blocks = []
    if profile is not None:
        blocks.append(f"{PROFILE_HEADER}\n{profile.describe()}")
    if problem:
        blocks.append(f"{PROBLEM_HEADER}\n{problem.strip()}")
    if turns:
        lines = [f"{'Student' if t.role == 'student' else 'Tutor'}: {t.text.strip()}" for t in turns]
        blocks.append(f"{DIALOGUE_HEADER}\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def swap_profile(context: str, profile: StudentProfile) -> str:
    """The same context shown with another student's profile (for the RM's profile-sensitivity check)."""
    new_block = f"{PROFILE_HEADER}\n{profile.describe()}"
    if context.startswith(PROFILE_HEADER):
        rest = context.split("\n\n## ", 1)
        return new_block + ("\n\n## " + rest[1] if len(rest) > 1 else "")
    return new_block + "\n\n" + context


class PromptItem(BaseModel):
    """One educational prompt: a problem (and dialogue so far) for a given student. Written by `make data`."""

    model_config = ConfigDict(extra="forbid")
    id: str
    source: str = Field(description="dataset it came from: gsm8k, mathdial, mathtutorbench, mrbench")
    problem_id: str = Field(description="id of the underlying math problem; splits never share one")
    split: Literal["rm", "rl", "eval"] | None = None
    kind: Literal["single_turn", "multi_turn"]
    profile: StudentProfile | None = None
    problem: str | None = None
    turns: list[Turn] = Field(default_factory=list, description="dialogue so far; the tutor speaks next")
    reference_solution: str | None = None
    reference_responses: list[str] = Field(
        default_factory=list, description="real teacher turns for this context (from MathDial/MathTutorBench)"
    )
    meta: dict = Field(default_factory=dict)

    @property
    def context(self) -> str:
        return render_context(self.profile, self.problem, self.turns)

    def chat_messages(self, system_prompt: str) -> list[dict]:
        """Chat messages for a tutor model: system prompt with the profile, then the dialogue."""
        system = system_prompt.strip()
        if self.profile is not None:
            system += f"\n\n{PROFILE_HEADER}\n{self.profile.describe()}"
        turns = list(self.turns)
        if not turns:  # single-turn: the student asks the problem itself
            turns = [Turn(role="student", text=self.problem or "")]
        elif self.problem:
            system += f"\n\n{PROBLEM_HEADER}\n{self.problem.strip()}"
        messages = [{"role": "system", "content": system}]
        for t in turns:
            role = "user" if t.role == "student" else "assistant"
            if messages[-1]["role"] == role:  # chat templates want alternating turns
                messages[-1]["content"] += "\n" + t.text
            else:
                messages.append({"role": role, "content": t.text})
        if messages[-1]["role"] != "user":
            messages.append({"role": "user", "content": "(The student is waiting for your reply.)"})
        return messages


class LabeledItem(BaseModel):
    """The interchange format: one (context, response) pair, labeled by one annotator or unlabeled."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="unique per (context, response); several annotators share it")
    context: str
    response: str
    scores: dict[str, int] | None = Field(None, description="dimension -> level (0..2 on the default rubrics)")
    annotator: str | None = Field(None, description="'human:<name>' or 'llm:<judge>' or an aggregate name")
    prompt: list[ChatMessage] | None = None
    meta: dict = Field(default_factory=dict)


def read_jsonl(path: Path | str, model: type[M], check: Callable[[M], None] | None = None,
               allow_empty: bool = False) -> list[M]:
    return list(iter_jsonl(path, model, check, allow_empty))


def decode_utf8(path: Path, data: bytes, first_line: int = 1, offset: int = 0,
                error: type[BadInput] = DataError) -> str:
    """`data` (the file's bytes from `offset`, starting on line `first_line`) as text; a UTF-8 BOM at the start of
    the file (Windows tools and spreadsheets write one) is dropped. Bytes that are not UTF-8 (a Latin-1 or
    Windows-1252 export) raise `error` naming the file, the line and the byte offset in the file."""
    try:
        return data.decode("utf-8-sig" if offset == 0 else "utf-8")
    except UnicodeDecodeError as err:
        start = err.start + (3 if offset == 0 and data.startswith(codecs.BOM_UTF8) else 0)
        line = first_line + data.count(b"\n", 0, start)
        raise error(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[start]:02x} at byte offset {offset + start}); save the file "
            "as UTF-8") from None


def read_text(path: Path | str, error: type[BadInput] = DataError) -> str:
    """A whole text file as UTF-8 (see `decode_utf8`); a missing file raises `error` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    return decode_utf8(path, data, error=error)


def text_lines(path: Path, handle: BinaryIO) -> Iterator[str]:
    """The lines of a file opened in binary mode, decoded one by one (`decode_utf8`), so a large file streams."""
    offset = 0
    for lineno, raw in enumerate(handle, 1):
        yield decode_utf8(path, raw, lineno, offset)
        offset += len(raw)


def jsonl_hint(path: Path) -> str:
    """What to say about a JSON array where JSONL is expected: the command that converts it."""
    out = path.with_suffix(".jsonl") if path.suffix != ".jsonl" else path.with_name(path.stem + ".lines.jsonl")
    return f"this command reads JSONL, one object per line (convert it: jq -c '.[]' {path} > {out})"


def parse_json_lines(path: Path, lines: Iterable[str], allow_empty: bool = False) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) for each non-blank line; bad JSON raises DataError naming file and line, and so
    do a file without any line (an input that is empty is a mistake unless the caller allows it) and a JSON
    array (a `.json` export where JSONL is expected), which says how to convert it."""
    empty = True
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if empty and line.lstrip().startswith("["):
            raise DataError(f"{path}: a JSON array; {jsonl_hint(path)}")
        empty = False
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
    if empty and not allow_empty:
        raise DataError(f"{path}: empty file (no JSON lines)")


def iter_jsonl_lines(path: Path | str, model: type[M], check: Callable[[M], None] | None = None,
                     allow_empty: bool = False) -> Iterator[tuple[int, M]]:
    """(line number, record) for each line, validated; the first bad one raises DataError naming file, line and
    field. `check(record)` may raise ValueError('<field>: <problem>') for what the model cannot know (e.g. scores
    against a rubric). The file must be UTF-8 (a BOM is allowed)."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    with handle:
        for lineno, record in parse_json_lines(path, text_lines(path, handle), allow_empty):
            try:
                item = model.model_validate(record)
                if check is not None:
                    check(item)
            except ValidationError as err:
                e = err.errors()[0]
                field = ".".join(str(x) for x in e["loc"]) or "(line)"
                more = f" (and {len(err.errors()) - 1} more problems)" if len(err.errors()) > 1 else ""
                raise DataError(f"{path}:{lineno}: field {field}: {e['msg']}{more}") from None
            except ValueError as err:
                if isinstance(err, DataError):
                    raise
                raise DataError(f"{path}:{lineno}: field {err}") from None
            yield lineno, item


def iter_jsonl(path: Path | str, model: type[M], check: Callable[[M], None] | None = None,
               allow_empty: bool = False) -> Iterator[M]:
    """The records of `iter_jsonl_lines`, without their line numbers."""
    for _, item in iter_jsonl_lines(path, model, check, allow_empty):
        yield item


def read_labels_jsonl(path: Path | str, check: Callable[[LabeledItem], None] | None = None) -> list[LabeledItem]:
    """Labeled items, one per (id, annotator). An id names one (context, response): the same id with another
    context or response, or the same (id, annotator) with other scores, is an error naming both lines; a line that
    repeats an earlier one is a warning on stderr and is read once."""
    items, by_id, by_label = [], {}, {}
    for lineno, item in iter_jsonl_lines(path, LabeledItem, check):
        id_line, id_item = by_id.setdefault(item.id, (lineno, item))
        for name in ("context", "response"):
            if getattr(item, name) != getattr(id_item, name):
                raise DataError(f"{path}:{lineno}: field {name}: item {item.id!r} has another {name} than on line "
                                f"{id_line}; an id must name one (context, response)")
        label_line, label_item = by_label.setdefault((item.id, item.annotator), (lineno, item))
        if label_line != lineno:
            if item.scores != label_item.scores:
                raise DataError(f"{path}:{lineno}: field scores: {item.annotator} labeled item {item.id!r} "
                                f"{item.scores} here but {label_item.scores} on line {label_line}")
            print(f"warning: {path}:{lineno}: repeats line {label_line} (item {item.id!r}, annotator "
                  f"{item.annotator}); read once", file=sys.stderr)
            continue
        items.append(item)
    return items


@contextmanager
def atomic_path(path: Path | str, mode: str = "w"):
    """Open a temporary file next to `path`; it replaces `path` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs should get the usual mode
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: Path | str, records: Iterable[BaseModel | dict]) -> int:
    """Write all records atomically; returns the count."""
    n = 0
    with atomic_path(path) as handle:
        for record in records:
            handle.write(_to_line(record))
            n += 1
    return n


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as handle:
        handle.write(text)


def write_json(path: Path | str, data) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _to_line(record: BaseModel | dict) -> str:
    if isinstance(record, BaseModel):
        return record.model_dump_json(exclude_none=True) + "\n"
    return json.dumps(record, ensure_ascii=False) + "\n"


class AppendLog:
    """Append-only JSONL for resumable jobs: each record is one flushed+fsynced line, so a kill loses at most
    the line being written; a torn last line is dropped (and truncated away) on the next open."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._handle = self.path.open("a", encoding="utf-8")

    def _repair_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with self.path.open("r+b") as handle:
                handle.truncate(keep)

    def records(self) -> Iterator[dict]:
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def append(self, record: BaseModel | dict) -> None:
        self._handle.write(_to_line(record))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def save_figure(fig, path: Path | str, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically and close it (reports never show half a plot)."""
    import matplotlib.pyplot as plt

    with atomic_path(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
