"""Every command meets bad input with one clear line (issue #23): exit status 2, exactly one `error: ...` line on
stderr naming the file, the line and the field (or the config key / flag), no traceback, and nothing written.

One table: a row per command, a column per bad input (CASES; issue #32 added a file that is not UTF-8, a JSON
array where JSONL is expected, an item labeled twice by one annotator with two responses, a YAML key written twice
and an unknown flag). Each cell runs in-process through the command's
real entry point (the package's dispatch, or `main` of a module run with `python -m`), so torch is imported once;
test_cli_bad_input_outside_the_table.py runs two as real processes. A case that cannot apply to a
command is listed in the row's `na` with the reason, so the table documents coverage. Adding a command is one
row; test_table_is_complete fails when a registered command has none.
"""
from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FILE_CASES = ("missing_file", "empty_file", "bad_json_line", "score_out_of_range", "unknown_dimension",
              "missing_field", "not_utf8", "json_array", "duplicate_label")
SCORE_CASES = ("score_out_of_range", "unknown_dimension", "duplicate_label")
CONFIG_CASES = ("bad_yaml", "unknown_config_key", "duplicate_yaml_key")
CASES = (*FILE_CASES, *CONFIG_CASES, "wrong_flag_type", "number_out_of_range", "unknown_model", "unknown_flag")
MODEL = "no-such-model"
E_ACUTE_LATIN1 = "\u00e9".encode("latin-1")  # how a spreadsheet's Latin-1 export writes the e of café

# Data files by kind: three valid rows, and the field line 2 lacks in the missing_field case.
HPC = {"Helpfulness": 1, "Personalization": 2, "Creativity": 0}
PROFILE = {"grade": "5th grade"}
KINDS = {
    "labels": ([{"id": f"i{k}", "context": "c", "response": f"r{k}", "scores": HPC, "annotator": "human:x"}
                for k in range(3)], "response"),
    "items": ([{"id": f"i{k}", "context": "c", "response": f"r{k}"} for k in range(3)], "response"),
    "prompts": ([{"id": f"p{k}", "source": "gsm8k", "problem_id": f"g{k}", "kind": "single_turn", "profile": PROFILE,
                  "problem": "1+1?", "reference_solution": "#### 2"} for k in range(3)], "kind"),
    "gsm8k": ([{"question": f"What is {k}+1?", "answer": f"{k}+1={k + 1}\n#### {k + 1}"} for k in range(3)],
              "answer"),
    "oof": ([{"id": f"i{k}", "fold": k % 2, "human": HPC, "rm_ordinal": {}} for k in range(3)], "human"),
    "yaml": ([], None),
    "sqlite": ([], None),
}


@dataclass(frozen=True)
class Command:
    """A command as typed after `python -m`, its flags ({data}: the file under test, {out}: the output folder,
    {rm}: a reward model, {llm}: a valid labels file, {run}: a crossval run folder), the kind of {data}, a typed
    flag with a value of the wrong type, the flag naming a model ({m}), the cases that cannot apply, with why, and a
    number outside its option's bounds (issue #32: one that had none before, where the command has one)."""

    name: str
    argv: str
    data: str | None
    bad_flag: str | None = None
    model_flag: str | None = None
    na: dict[str, str] = field(default_factory=dict)
    out_of_range: str | None = None


def na(cases, why: str) -> dict[str, str]:
    return dict.fromkeys(cases, why)


NO_SCORES = na(SCORE_CASES, "reads no rubric scores")
NO_MODEL = na(["unknown_model"], "loads no model")
NO_TYPED_FLAG = na(["wrong_flag_type", "number_out_of_range"], "every option is a path or a name")
NO_NUMBER = na(["number_out_of_range"], "takes no number")
GRPO_FLAGS = "--beta 0.04 --loss-type grpo --policy smollm2-135m-instruct"
TABLE = [
    Command("annotation data", "--gsm8k-paths [{data}] --heldout-gsm8k-paths [] --out {out}", "gsm8k",
            "--seed many", None,
            {**na(SCORE_CASES, "reads GSM8K problems, no rubric scores"), **NO_MODEL,
             "json_array": "GSM8K and MathDial ship as JSONL or as a JSON list; both are read"},
            out_of_range="--seed -1"),
    Command("annotation generate", "--prompts {data} --generators human:teacher --out {out}/result.jsonl",
            "prompts", "--batch-size many", "--generators local:{m}", NO_SCORES, out_of_range="--seed -1"),
    Command("annotation label", "--items {data} --rubric hpc --judges local --out {out}", "items",
            "--samples many", "--judges local?model={m}", na(SCORE_CASES, "labels items; scores in them are not read"),
            out_of_range="--calibration-shares [0.5,-0.25,0.75]"),
    Command("annotation import", "--input {data} --rubric hpc --out {out}/result.jsonl " + " ".join(
        f"--map {d}=scores.{d}" for d in HPC), "labels", "--format xml", None, {**NO_MODEL, **NO_NUMBER,
        "unknown_dimension": "reads the columns mapped to the rubric's dimensions (an unknown one in the long "
                             "layout: its own test)"}),
    Command("annotation export-labelstudio", "--items {data} --rubric hpc --out {out}", "items",
            None, None, {**na(SCORE_CASES, "exports items; scores in them are not read"), **NO_TYPED_FLAG,
                         **NO_MODEL}),
    Command("annotation agreement", "--labels {data} {llm} --rubric hpc --out {out}", "labels", None,
            None, {**NO_TYPED_FLAG, **NO_MODEL}),
    Command("annotation serve", "--tasks {data} --rubric hpc --db {out}/labels.sqlite", "items",
            "--port many", None, {**na(SCORE_CASES, "tasks must be unlabeled (its own test)"), **NO_MODEL},
            out_of_range="--claim-batch 0"),
    Command("annotation annotators", "list --db {data}", "sqlite", "--admin maybe", None,
            {"empty_file": "an empty file is an empty SQLite database", **na(SCORE_CASES, "reads no rubric scores"),
             "bad_json_line": "reads SQLite, not JSONL (a file that is not a database: its own test)",
             **na(["missing_field", "not_utf8", "json_array"], "reads SQLite, not JSONL"),
             **na(CONFIG_CASES, "takes no --config"), **NO_MODEL, **NO_NUMBER}),
    Command("hpc_rm train", "--labels {data} --rubric hpc --out {out}", "labels", "--batch-size many",
            "--backbone {m}", out_of_range="--epochs -1"),
    Command("hpc_rm eval", "--model {rm} --labels {data} --out {out}", "labels", "--batch-size many",
            "--model {m}", out_of_range="--batch-size 0"),
    Command("hpc_rm score", "--model {rm} --input {data} --out {out}/result.jsonl", "items",
            "--batch-size many", "--model {m}", na(SCORE_CASES, "scores responses; labels in them are passed through"),
            out_of_range="--batch-size 0"),
    Command("hpc_rm serve", "--model {rm} --host 127.0.0.1 --port 0", None, "--port many", "--model {m}",
            na(FILE_CASES, "reads no data file: requests bring the pairs (a bad request is a 400: its own test)"),
            out_of_range="--max-wait-ms -1"),
    Command("hpc_rm convert", "{rm} --out {out}/new", None, "--check maybe", None,
            {**na(FILE_CASES, "reads a reward model folder, not a data file"), "unknown_model": "its model is the "
             "folder OLD, not a name (a missing, new-layout or non-RM folder: test_rm_legacy_folder_converts_"
             "with_equal_scores.py)"}, out_of_range="--batch-size 0"),
    Command("hpc_rm consistency", "--human {data} --llm {llm} --rubric hpc --out {out}", "labels",
            "--seeds many", "--train.backbone {m}", out_of_range="--seeds [0,-1]"),
    Command("hpc_rm.crossval", "--labels {data} --train.rubric hpc --out {out}", "labels", "--folds many",
            "--train.backbone {m}", out_of_range="--quality-bar 2"),
    Command("hpc_rm.crossval_seeds", "--runs {data} {run} --out {out}", "oof", None, None,
            {**na(SCORE_CASES, "reads predictions of finished runs"), **na(CONFIG_CASES, "takes no --config"),
             **NO_TYPED_FLAG, **NO_MODEL}),
    Command("policy grpo", f"{GRPO_FLAGS} --reward-model {{rm}} --prompts {{data}} --out {{out}}", "prompts",
            "--max-steps many", "--policy {m}", NO_SCORES, out_of_range="--seed -1"),
    Command("policy bon", "--reward-model {rm} --prompts {data} --out {out}", "prompts", "--n many",
            "--policy {m}", NO_SCORES, out_of_range="--n 0"),
    Command("policy rft", "--reward-model {rm} --prompts {data} --out {out}", "prompts", "--n many",
            "--policy {m}", NO_SCORES, out_of_range="--top-k 0"),
    Command("policy dpo", "--reward-model {rm} --prompts {data} --out {out}", "prompts", "--n many",
            "--policy {m}", NO_SCORES, out_of_range="--beta 0"),
    Command("policy sft", "--prompts {data} --also-from [] --out {out}", "prompts", "--max-length many",
            "--policy {m}", NO_SCORES, out_of_range="--max-length 1"),
    Command("policy compare", "--run {out}/nowhere --out {out}/compare", None, "--budget many", None,
            {**na(FILE_CASES, "reads a run folder (data/, rm/), not one file; its splits are read by the eval's "
                              "reader, which names file and line"),
             "unknown_model": "its methods name their models in their own configs (each checked by its method)"},
            out_of_range="--budget 0"),
    Command("policy classroom", f"{GRPO_FLAGS} --prompts {{data}} --out {{out}}", "prompts",
            "--dialogue.max-turns many", "--student.model {m}", NO_SCORES, out_of_range="--student.seed -1"),
    Command("policy classroom-eval", "--run {crun} --prompts {data} --out {out}", "prompts", "--batch-size many",
            "--base {m}", NO_SCORES, out_of_range="--seed -1"),
    Command("policy eval", "--base smollm2-135m-instruct --tuned smollm2-135m-instruct --reward-model {rm} "
            "--prompts {data} --gsm8k null --out {out}", "prompts", "--batch-size many", "--tuned {m}", NO_SCORES,
            out_of_range="--min-judge-qwk 2"),
    Command("policy sweep", "--grpo-config configs/policy/tiny.yaml --reward-model {rm} --prompts {data} "
            "--eval.prompts {data} --out {out}", "prompts", "--max-steps many", "--reward-model {m}", NO_SCORES,
            out_of_range="--eval.seed -1"),
    Command("pipeline run", "--config {data} --run-dir {out} --dry-run", "yaml", "--seed many", None,
            {"empty_file": "an empty config means all defaults",
             **na(["bad_json_line", "json_array"], "reads YAML, not JSONL"),
             "missing_field": "every config key has a default", **NO_SCORES,
             "unknown_model": "passes model names to its stages, which check them"}, out_of_range="--seed -1"),
]
CELLS = [(cmd, case) for cmd in TABLE for case in CASES if case not in cmd.na]


def _row(kind: str, k: int, case: str) -> bytes:
    rows, missing = KINDS[kind]
    row = json.loads(json.dumps(rows[k]))
    if k == 1 and case == "bad_json_line":
        return b'{"id": "i1", "context": '
    if k == 1 and case == "not_utf8":
        key = next(key for key, value in row.items() if isinstance(value, str))
        return json.dumps({**row, key: row[key] + " caf\u00e9"}, ensure_ascii=False).encode("latin-1")
    if k == 2 and case == "duplicate_label":  # line 3: line 2's id and annotator, another response
        return json.dumps({**rows[1], "response": "another response"}).encode()
    if k == 1 and case == "score_out_of_range":
        row["scores"] = {**row["scores"], "Helpfulness": 5}
    if k == 1 and case == "unknown_dimension":
        row["scores"] = {**row["scores"], "Bogus": 1}
    if k == 1 and case == "missing_field":
        row.pop(missing)
    return json.dumps(row).encode()


def write_data(kind: str, case: str, folder: Path) -> Path:
    """The file under test for this case; line 2 carries the fault."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / {"oof": "oof_predictions.jsonl", "yaml": "config.yaml", "sqlite": "labels.sqlite"}.get(
        kind, "data.jsonl")
    if kind == "oof":
        (folder / "crossval.json").write_text(json.dumps(
            {"rm_ordinal": {}, "config": {"train": {"seed": folder.name, "rubric": "hpc"}}}))
    if case == "missing_file":
        return path if kind == "oof" else path.with_name("absent" + path.suffix)
    if kind == "sqlite":
        from annotation.serve.db import LabelStore

        LabelStore(path)
    elif kind == "yaml":
        texts = {"empty_file": b"", "not_utf8": b"seed: 1\nname: caf" + E_ACUTE_LATIN1 + b"\n"}
        path.write_bytes(texts.get(case, b"name: bad-input-test\n"))
    elif case == "json_array":
        path.write_text(json.dumps(KINDS[kind][0], indent=2))
    else:
        path.write_bytes(b"" if case == "empty_file" else b"".join(_row(kind, k, case) + b"\n" for k in range(3)))
    return path


def expected(cmd: Command, case: str, data: Path | None, tmp: Path) -> list[str]:
    """What the error line must name: the file and line, and the field, key or flag."""
    model_flag = (cmd.model_flag or "-").split()[0]
    return {
        "missing_file": [str(data)], "empty_file": [str(data)], "bad_json_line": [f"{data}:2: not valid JSON"],
        "score_out_of_range": [f"{data}:2: field scores.Helpfulness", "5"],
        "unknown_dimension": [f"{data}:2: field scores.Bogus: not a dimension of rubric hpc"],
        "missing_field": [f"{data}:2: field {KINDS[cmd.data][1]}"] if cmd.data else [],
        "bad_yaml": [f"{tmp / 'bad.yaml'}:2: invalid YAML"],
        "unknown_config_key": [f"{tmp / 'cfg.yaml'}: invalid config: field no_such_key"],
        "wrong_flag_type": [f"flag {(cmd.bad_flag or '-').split()[0]}: "],
        "number_out_of_range": [f"flag {(cmd.out_of_range or '-').split()[0]}", ": Input should be "],
        "unknown_model": [MODEL, f"flag {model_flag}"],
        "not_utf8": [f"{data}:2: not UTF-8 text (byte 0xe9 at byte offset {_offset(data, E_ACUTE_LATIN1)})"],
        "json_array": [f"{data}: a JSON array; this command reads JSONL, one object per line", "jq -c '.[]'"],
        "duplicate_label": [f"{data}:3: field response: item",
                            re.compile(r"another response than (on line |at \S+:)2\b")],
        "duplicate_yaml_key": [f"{tmp / 'dup.yaml'}:2: invalid YAML: key 'seed' appears twice (lines 1 and 2)"],
        "unknown_flag": [": unrecognized arguments: --no-such-flag 1"],
    }[case]


def _offset(path: Path | None, byte: bytes) -> int | None:
    return path.read_bytes().find(byte) if path is not None and path.is_file() else None


def registered(name: str) -> bool:
    """A row may come before its command is registered (work in progress elsewhere); such a row is skipped."""
    first, _, command = name.partition(" ")
    commands = getattr(importlib.import_module(first + ".__main__"), "COMMANDS", None) if command else None
    return commands is None or command in commands


def entry_point(name: str):
    """(main, leading argv) for `python -m NAME ...`: a package's dispatch, or a module's own main."""
    first, _, command = name.partition(" ")
    module = importlib.import_module(first)
    if hasattr(module, "__path__"):
        module = importlib.import_module(first + ".__main__")
    return module.main, [command] if command else []


def classroom_run(tmp: Path) -> Path:
    """A finished `policy classroom` run as `classroom-eval` reads it: run.json only."""
    from policy.classroom.config import ClassroomConfig

    cfg = ClassroomConfig(beta=0.04, loss_type="grpo", policy="smollm2-135m-instruct")
    folder = tmp / "classroom"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"config": cfg.model_dump(mode="json"), "policy": cfg.policy,
                                                 "base_policy": cfg.policy}))
    return folder


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under root, with the bytes of each file."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory, tiny_encoder) -> Path:
    from core.reward_model import HPCRewardModel

    path = tmp_path_factory.mktemp("bad-input-rm") / "rm"
    HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=32).save_pretrained(path)
    return path


def run_cell(cmd: Command, case: str, tmp: Path, rm: Path, capsys, monkeypatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("serve started despite bad input"))
    data = write_data(cmd.data, case if case in FILE_CASES else "valid", tmp / "run0") if cmd.data else None
    llm = write_data("labels", "valid", tmp / "llm")
    run1 = write_data("oof", "valid", tmp / "run1").parent
    out = tmp / "out"
    out.mkdir()
    (out / "result.jsonl").write_text('{"id": "old", "context": "c", "response": "r"}\n')  # must stay as it is
    data_arg = data.parent if cmd.data == "oof" else data  # crossval_seeds takes run folders
    crun = classroom_run(tmp) if "{crun}" in cmd.argv else None
    argv = cmd.argv.format(data=data_arg, out=out, rm=rm, llm=llm, run=run1, crun=crun).split()
    if case == "bad_yaml":
        (tmp / "bad.yaml").write_text("name: x\n  seed: 1\n")  # line 2: a mapping where none may start
        argv += ["--config", str(tmp / "bad.yaml")]
    elif case == "unknown_config_key":
        (tmp / "cfg.yaml").write_text("no_such_key: 1\n")
        argv += ["--config", str(tmp / "cfg.yaml")]
    elif case == "duplicate_yaml_key":
        (tmp / "dup.yaml").write_text("seed: 1\nseed: 2\n")
        argv += ["--config", str(tmp / "dup.yaml")]
    elif case == "unknown_flag":
        argv += ["--no-such-flag", "1"]
    elif case == "wrong_flag_type":
        argv += cmd.bad_flag.split()
    elif case == "number_out_of_range":
        argv += cmd.out_of_range.split()
    elif case == "unknown_model":
        argv += cmd.model_flag.format(m=MODEL).split()
    before = snapshot(tmp)
    main, lead = entry_point(cmd.name)
    capsys.readouterr()
    try:
        main(lead + argv)
    except SystemExit as exit_:
        code = exit_.code
    except BaseException as err:  # a traceback: the cell failed
        pytest.fail(f"{cmd.name} / {case}: {type(err).__name__} escaped: {err}")
    else:
        pytest.fail(f"{cmd.name} / {case}: finished without an error")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2, f"{cmd.name} / {case}: exit status {code!r}, stderr:\n{err}"
    assert len(lines) == 1 and "Traceback" not in err, f"{cmd.name} / {case}: stderr:\n{err}"
    for part in expected(cmd, case, data, tmp):
        found = part.search(lines[0]) if isinstance(part, re.Pattern) else part in lines[0]
        assert found, f"{cmd.name} / {case}: {part!r} not in {lines[0]!r}"
    after = snapshot(tmp)
    assert after == before, f"{cmd.name} / {case}: files changed: {sorted(set(after) ^ set(before))}"


@pytest.mark.parametrize("cmd, case", CELLS, ids=[f"{c.name}-{case}" for c, case in CELLS])
def test_bad_input_gives_one_error_line_and_writes_nothing(cmd, case, tmp_path, tiny_rm, capsys, monkeypatch):
    if not registered(cmd.name):
        pytest.skip(f"{cmd.name} is not registered in this checkout")
    run_cell(cmd, case, tmp_path, tiny_rm, capsys, monkeypatch)


def test_table_is_complete():
    """Every command of every CLI has a row, and each cell is either run or marked N/A with a reason."""
    listed = {c.name for c in TABLE}
    for package in ("annotation", "hpc_rm", "policy"):
        commands = importlib.import_module(package + ".__main__").COMMANDS
        assert {f"{package} {name}" for name in commands} <= listed
    for cmd in TABLE:
        assert set(cmd.na) <= set(CASES) and all(cmd.na.values()), cmd.name
        needs = {"wrong_flag_type": cmd.bad_flag, "unknown_model": cmd.model_flag,
                 "number_out_of_range": cmd.out_of_range}
        assert all(needs[case] for case in needs if case not in cmd.na), cmd.name
        assert cmd.data or set(FILE_CASES) <= set(cmd.na), cmd.name
    print(f"\n{len(TABLE)} commands x {len(CASES)} cases: {len(CELLS)} run, {len(TABLE) * len(CASES) - len(CELLS)} N/A")
