"""Loaders for the datasets in data/: GSM8K, MathDial, MathTutorBench and MRBench.

Each loader validates every record and raises `DataError` naming the file, line and field of the first bad
one. Records carry a `problem_id` (a hash of the normalised problem text) so that the same GSM8K problem seen
through MathDial, MathTutorBench or MRBench is recognised as one problem when splitting.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.rubric import Rubric, load_rubric
from core.schema import (
    DataError, LabeledItem, PromptItem, StudentProfile, Turn, jsonl_hint, parse_json_lines, read_text,
    render_context,
)


def normalise_problem(text: str) -> str:
    """Lower-case words and numbers only: the copies of a GSM8K problem differ in spaces and punctuation."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def problem_id(text: str) -> str:
    return "p" + hashlib.sha1(normalise_problem(text).encode()).hexdigest()[:12]


# ---------------------------------------------------------------- reading records with their line numbers

def _iter_json_records(path: Path) -> Iterator[tuple[str, dict]]:
    """(`file:line`, record) for a JSONL file or a JSON list; the line is where the record starts."""
    path = Path(path)
    text = read_text(path)
    if text.lstrip().startswith("["):
        yield from _iter_json_list(path, text)
        return
    for lineno, record in parse_json_lines(path, text.split("\n")):
        yield f"{path}:{lineno}", record


def _iter_json_list(path: Path, text: str) -> Iterator[tuple[str, dict]]:
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == "]":
            return
        lineno = text.count("\n", 0, pos) + 1
        try:
            record, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
        yield f"{path}:{lineno}", record
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "]":
            raise DataError(f"{path}:{text.count(chr(10), 0, pos) + 1}: expected ',' or ']' between records")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


@contextmanager
def _record_errors(where: str):
    """Turn validation and parsing errors inside one record into a DataError naming file, line and field."""
    try:
        yield
    except ValidationError as err:
        e = err.errors()[0]
        field = ".".join(str(x) for x in e["loc"]) or "(record)"
        raise DataError(f"{where}: field {field}: {e['msg']}") from None
    except (ValueError, KeyError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{where}: {err}") from None


class _Raw(BaseModel):
    """Fields a source must have; other fields are ignored."""

    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------- GSM8K

class GSM8KProblem(BaseModel):
    id: str = Field(description="'gsm8k:<file stem>:<index>'")
    problem_id: str
    question: str
    solution: str = Field(description="the worked solution without the final '#### N' line")
    final_answer: str = Field(description="the number after '####'")

    @property
    def plain_solution(self) -> str:
        """The solution without GSM8K's calculator annotations ('48/2 = <<48/2=24>>24' -> '48/2 = 24')."""
        return re.sub(r"<<[^>]*>>", "", self.solution)


class _RawGSM8K(_Raw):
    question: str = Field(min_length=1)
    answer: str


def load_gsm8k(path: Path | str) -> list[GSM8KProblem]:
    path = Path(path)
    problems = []
    for index, (where, record) in enumerate(_iter_json_records(path)):
        with _record_errors(where):
            raw = _RawGSM8K.model_validate(record)
            solution, sep, final = raw.answer.rpartition("####")
            if not sep or not final.strip():
                raise ValueError("field answer: no final '#### <number>' line")
            problems.append(GSM8KProblem(
                id=f"gsm8k:{path.stem}:{index}", problem_id=problem_id(raw.question), question=raw.question,
                solution=solution.strip(), final_answer=final.strip().replace(",", ""),
            ))
    return problems


# ---------------------------------------------------------------- MathDial

class MathDialDialogue(BaseModel):
    """One MathDial conversation; `turns[i]` was spoken with teacher move `moves[i]` (None for the student)."""

    id: str = Field(description="'mathdial:<qid>-<scenario>' (with a suffix if the pair repeats)")
    qid: int
    problem_id: str
    problem: str
    reference_solution: str
    student_incorrect_solution: str
    profile: StudentProfile
    turns: list[Turn]
    moves: list[str | None]
    meta: dict = Field(default_factory=dict)


class _RawMathDial(_Raw):
    qid: int
    scenario: int
    question: str = Field(min_length=1)
    ground_truth: str
    student_incorrect_solution: str
    student_profile: str
    teacher_described_confusion: str | None = None
    conversation: str = Field(min_length=1)


TEACHER_TURN = re.compile(r"^Teacher:\s*(?:\((?P<move>[a-z]*)\))?\s*(?P<text>.*)$", re.S)
GRADE = re.compile(r"\b(\d+(?:st|nd|rd|th) grade)\b", re.I)


def parse_mathdial_profile(profile_text: str, confusion: str | None) -> StudentProfile:
    grade = GRADE.search(profile_text)
    return StudentProfile(
        grade=grade.group(1) if grade else None,
        personality=profile_text.strip() or None,
        misconception=(confusion or "").strip() or None,
    )


def parse_mathdial_conversation(conversation: str, student_name: str) -> tuple[list[Turn], list[str | None]]:
    """Split on '|EOM|'; 'Teacher: (move) text' -> tutor turn + move; 'Student:' or the student's name -> student.
    Empty turns (13 teacher turns in the test split carry only a move) are dropped: nothing was said."""
    turns, moves = [], []
    for number, chunk in enumerate(conversation.split("|EOM|"), 1):
        chunk = chunk.strip()
        teacher = TEACHER_TURN.match(chunk)
        speaker, _, text = chunk.partition(":")
        if teacher:
            turn, move = Turn(role="tutor", text=teacher.group("text").strip()), teacher.group("move") or None
        elif speaker.strip() in {"Student", student_name}:
            turn, move = Turn(role="student", text=text.strip()), None
        else:
            raise ValueError(f"field conversation: turn {number} starts with {speaker[:30]!r}, "
                             f"expected 'Teacher:', 'Student:' or '{student_name}:'")
        if turn.text:
            turns.append(turn)
            moves.append(move)
    if not turns:
        raise ValueError("field conversation: no non-empty turns")
    return turns, moves


def load_mathdial(path: Path | str) -> list[MathDialDialogue]:
    dialogues, seen = [], {}
    for where, record in _iter_json_records(Path(path)):
        with _record_errors(where):
            raw = _RawMathDial.model_validate(record)
            name = raw.student_profile.split()[0] if raw.student_profile.strip() else "Student"
            turns, moves = parse_mathdial_conversation(raw.conversation, name)
            base = f"mathdial:{raw.qid}-{raw.scenario}"
            seen[base] = seen.get(base, 0) + 1
            extra = {k: record[k] for k in ("self-correctness", "self-typical-confusion",
                                             "self-typical-interactions") if k in record}
            dialogues.append(MathDialDialogue(
                id=base if seen[base] == 1 else f"{base}-{seen[base]}", qid=raw.qid,
                problem_id=problem_id(raw.question), problem=raw.question, reference_solution=raw.ground_truth,
                student_incorrect_solution=raw.student_incorrect_solution,
                profile=parse_mathdial_profile(raw.student_profile, raw.teacher_described_confusion),
                turns=turns, moves=moves, meta={"scenario": raw.scenario, "student_name": name, **extra},
            ))
    return dialogues


# ---------------------------------------------------------------- MathTutorBench

class _RawMTBTurn(_Raw):
    text: str
    user: str
    dialog_act: str | None = None


class _RawMTB(_Raw):
    problem: str = Field(min_length=1)
    reference_solution: str
    dialog_history: list[_RawMTBTurn] = Field(min_length=1)


MTB_ROLES = {"Teacher": "tutor", "Student": "student"}


def load_mathtutorbench(path: Path | str) -> list[PromptItem]:
    """Multi-turn prompts: the last (Teacher) turn is the gold response, the turns before it the context.
    No profile: the source has none (prompts.py attaches one)."""
    path = Path(path)
    name = path.name.split(".")[0]
    items = []
    for index, (where, record) in enumerate(_iter_json_records(path)):
        with _record_errors(where):
            raw = _RawMTB.model_validate(record)
            for number, turn in enumerate(raw.dialog_history):
                if turn.user not in MTB_ROLES:
                    raise ValueError(f"field dialog_history.{number}.user: {turn.user!r} is not Teacher or Student")
            *context, gold = raw.dialog_history
            if gold.user != "Teacher" or not gold.text.strip():
                raise ValueError("field dialog_history: the last turn must be a non-empty Teacher turn (the gold response)")
            items.append(PromptItem(
                id=f"mathtutorbench:{name}:{index}", source="mathtutorbench", problem_id=problem_id(raw.problem),
                kind="multi_turn", problem=raw.problem,
                turns=[Turn(role=MTB_ROLES[t.user], text=t.text.strip()) for t in context],
                reference_solution=raw.reference_solution, reference_responses=[gold.text.strip()],
                meta=_moves_meta([t.dialog_act for t in context], gold.dialog_act),
            ))
    return items


def _moves_meta(moves: list[str | None], reference_move: str | None) -> dict:
    """Teacher moves, only when the file has them (the hard file labels each turn; the other file none)."""
    if not reference_move and not any(moves):
        return {}
    return {"moves": [m or None for m in moves], "reference_move": reference_move or None}


# ---------------------------------------------------------------- MRBench

class _RawMRBResponse(_Raw):
    response: str
    annotation: dict[str, str | int | None] = Field(default_factory=dict)


class _RawMRB(_Raw):
    conversation_id: str = Field(min_length=1)
    conversation_history: str
    tutor_responses: dict[str, _RawMRBResponse]


MRB_TURN_START = re.compile(r"^\s*(Tutor|Student):", re.M)
MRB_QUESTION = re.compile(r"The question is:(.*?)(?=^\s*Student:)", re.S | re.M)


def parse_mrbench_history(history: str) -> list[Turn]:
    """'Tutor: ...' / 'Student: ...' turns, each starting a line; other lines continue the turn before."""
    starts = list(MRB_TURN_START.finditer(history))
    if not starts or history[: starts[0].start()].strip():
        raise ValueError("field conversation_history: does not start with 'Tutor:' or 'Student:'")
    turns = []
    for match, following in zip(starts, starts[1:] + [None]):
        text = history[match.end(): following.start() if following else len(history)].strip()
        turns.append(Turn(role="tutor" if match.group(1) == "Tutor" else "student", text=text))
    return turns


def mrbench_problem(history: str) -> str | None:
    """The GSM8K problem quoted in a MathDial-derived context (None for Bridge contexts, which quote none).
    MRBench renamed every 'Teacher' to 'Tutor', also inside problems, so that is undone before matching."""
    found = MRB_QUESTION.search(history)
    if not found:
        return None
    return re.sub(r"\btutor", "teacher", found.group(1).strip(), flags=re.I)


def _mrbench_items(path: Path | str, rubric: Rubric | None) -> list[LabeledItem]:
    items = []
    for where, record in _iter_json_records(Path(path)):
        if isinstance(record, dict) and "conversation_id" not in record and {"context", "response"} <= set(record):
            raise DataError(_not_mrbench(Path(path), where))
        with _record_errors(where):
            raw = _RawMRB.model_validate(record)
            conv = raw.conversation_id
            turns = parse_mrbench_history(raw.conversation_history)
            context = render_context(None, None, turns)
            problem = mrbench_problem(raw.conversation_history)
            for tutor, answer in raw.tutor_responses.items():
                # MRBench's dialogues come from MathDial (they quote a GSM8K problem) and Bridge (they do not).
                meta = {"group": conv, "tutor": tutor, "source": "mrbench",
                        "origin": "mathdial" if problem else "bridge"}
                if problem:
                    meta["problem_id"] = problem_id(problem)
                scores = None
                if rubric is not None:
                    scores = _mrbench_scores(answer.annotation, rubric, f"conversation {conv}, tutor {tutor}")
                items.append(LabeledItem(
                    id=f"mrbench:{conv}:{tutor}", context=context, response=answer.response.strip(),
                    scores=scores, annotator="human:mrbench" if rubric is not None else None, meta=meta,
                ))
    return items


def _not_mrbench(path: Path, where: str) -> str:
    """An interchange record (a JSONL line) in a `.json` file, which readers of labels take for the MRBench release."""
    if read_text(path).lstrip().startswith("["):
        return (f"{where}: a JSON array of interchange records (context, response), not the MRBench release that a "
                f".json file is read as; {jsonl_hint(path)}")
    return (f"{where}: an interchange record (context, response), not an MRBench conversation (a .json file is read "
            f"as the MRBench release); name the file {path.with_suffix('.jsonl')}")


def _mrbench_scores(annotation: dict, rubric: Rubric, who: str) -> dict[str, int]:
    scores = {}
    for dim, label in annotation.items():
        if dim not in rubric.names:
            raise ValueError(f"{who}: field annotation.{dim}: not a dimension of rubric {rubric.name} {rubric.names}")
        if label is None or (isinstance(label, str) and not label.strip()):
            continue  # missing label: the dimension is left out of `scores`
        try:
            scores[dim] = rubric.dimension(dim).parse_level(label)
        except ValueError as err:
            raise ValueError(f"{who}: field annotation.{dim}: {err}") from None
    return scores


def load_mrbench(path: Path | str, rubric: Rubric | str = "mrbench") -> list[LabeledItem]:
    """One human-labeled item per tutor response (annotator 'human:mrbench'); absent dimensions = missing labels."""
    return _mrbench_items(path, rubric if isinstance(rubric, Rubric) else load_rubric(rubric))


def load_mrbench_unlabeled(path: Path | str) -> list[LabeledItem]:
    """The same items and ids without scores or annotator, for LLM judges to label."""
    return _mrbench_items(path, None)


def load_mrbench_problems(path: Path | str) -> dict[str, list[str]]:
    """problem_id -> MRBench conversation ids quoting that problem (the held-out problems)."""
    problems: dict[str, list[str]] = {}
    for where, record in _iter_json_records(Path(path)):
        with _record_errors(where):
            raw = _RawMRB.model_validate(record)
            problem = mrbench_problem(raw.conversation_history)
            if problem:
                problems.setdefault(problem_id(problem), []).append(raw.conversation_id)
    return problems
