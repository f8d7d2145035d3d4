"""argparse's own errors (issue #32 point 6) end like bad input: one `error: PROG: ...` line, exit status 2, no
usage block, the nearest known flag or command for a typo; `-h` still prints the usage. The table in
test_cli_bad_input_one_error_line.py gives every command an unknown flag; these are the other kinds."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def one_line(capsys, main, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and "usage:" not in captured.err + captured.out, captured
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
    return captured.err.strip()


def test_typo_in_a_flag_names_the_nearest_one(capsys):
    import hpc_rm.__main__

    line = one_line(capsys, hpc_rm.__main__.main, ["train", "--labels", "x.jsonl", "--out", "o", "--epocs", "3"])
    assert line == ("error: python -m hpc_rm train: unrecognized arguments: --epocs 3 (did you mean --epochs?; "
                    "see python -m hpc_rm train --help)")


def test_missing_required_flag_and_missing_value(capsys):
    from hpc_rm import crossval_seeds, train

    assert one_line(capsys, crossval_seeds.main, ["--out", "o"]) == (
        "error: python -m hpc_rm.crossval_seeds: the following arguments are required: --runs "
        "(see python -m hpc_rm.crossval_seeds --help)")
    assert one_line(capsys, train.main, ["--out", "o", "--labels"]).startswith(
        "error: python -m hpc_rm train: argument --labels: expected one argument")
    assert one_line(capsys, train.main, ["--out", "o"]).startswith(
        "error: python -m hpc_rm train: --labels and --out are required")


def test_unknown_command_names_the_nearest_one(capsys):
    import annotation.__main__

    assert one_line(capsys, annotation.__main__.main, ["lable", "--items", "x"]) == (
        "error: python -m annotation: unknown command 'lable' (did you mean label?; see python -m annotation --help)")


def test_help_still_prints_the_usage(capsys):
    from hpc_rm import train

    with pytest.raises(SystemExit) as exit_:
        train.main(["-h"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("usage: python -m hpc_rm train")


def test_a_real_process_prints_only_the_error_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "annotation", "annotators", "list", "--db", "x", "--bogus"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("error: python -m annotation annotators: unrecognized arguments: --bogus "
                             "(see python -m annotation annotators --help)\n")
    assert list(tmp_path.iterdir()) == []
