"""Bad input beyond the table in test_cli_bad_input_one_error_line.py (issue #23): what a user sees from a real
`python -m ...` process (exactly one `error:` line, no traceback, exit 2, nothing written), inputs that are not
the table's data file (a --db that is not SQLite, a --run folder without run.json), and an exception that is not
bad input, which keeps its traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GOOD = '{"id": "a", "context": "c", "response": "r", "scores": {"Helpfulness": 1}}'


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def only_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_malformed_line_in_labels_is_one_error_line_naming_the_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text(f'{GOOD}\n{{"id": "b", "context": \n{GOOD}\n')
    result = run("hpc_rm", "train", "--labels", "bad.jsonl", "--rubric", "hpc", "--out", "rm", cwd=tmp_path)
    assert only_error_line(result).startswith("error: bad.jsonl:2: not valid JSON")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]  # no output folder, no temp file


def test_unknown_model_is_one_error_line_naming_the_flag(tmp_path):
    (tmp_path / "labels.jsonl").write_text(f"{GOOD}\n")
    result = run("hpc_rm", "eval", "--model", "nomodel", "--labels", "labels.jsonl", cwd=tmp_path)
    line = only_error_line(result)
    assert "'nomodel' (flag --model): not a reward model folder" in line


def test_a_bug_is_not_bad_input_and_keeps_its_traceback(tmp_path, monkeypatch):
    """Only core.errors.BadInput becomes an error line; a KeyError inside a command propagates unchanged."""
    import annotation.__main__
    import annotation.labelstudio

    def broken(*args, **kwargs):
        raise KeyError("a bug, not bad input")

    monkeypatch.setattr(annotation.labelstudio, "export_labelstudio", broken)
    (tmp_path / "items.jsonl").write_text(f"{GOOD}\n")
    with pytest.raises(KeyError, match="a bug"):
        annotation.__main__.main(["export-labelstudio", "--items", str(tmp_path / "items.jsonl"),
                                  "--out", str(tmp_path / "ls")])


def test_a_file_that_is_not_a_database_is_one_error_line(tmp_path, capsys):
    import annotation.__main__

    (tmp_path / "labels.sqlite").write_text("not a database\n")
    with pytest.raises(SystemExit) as exit_:
        annotation.__main__.main(["annotators", "list", "--db", str(tmp_path / "labels.sqlite")])
    assert exit_.value.code == 2
    db = tmp_path / "labels.sqlite"
    assert capsys.readouterr().err == f"error: {db}: not an annotation database (file is not a database)\n"


@pytest.mark.parametrize("command", ["eval", "classroom-eval"])
def test_a_run_folder_without_run_json_is_one_error_line(command, tmp_path, capsys):
    import policy.__main__

    (tmp_path / "prompts.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit) as exit_:
        policy.__main__.main([command, "--run", str(tmp_path / "nowhere"),
                              "--prompts", str(tmp_path / "prompts.jsonl")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'nowhere' / 'run.json'}: not found")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.jsonl"]
