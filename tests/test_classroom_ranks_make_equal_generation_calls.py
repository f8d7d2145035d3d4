"""Two ranks whose dialogues end at different turns still make the same number of tutor generation calls, with equal
sequence counts, so a collective generate (vLLM server mode, tensor parallelism, ZeRO-3) cannot leave a rank waiting
forever: 2-process torchrun over gloo, with a time-out."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from core.schema import PromptItem, StudentProfile, write_jsonl

ROOT = Path(__file__).resolve().parent.parent


def test_ranks_whose_dialogues_end_early_keep_generating_with_the_others(tmp_path):
    profile = StudentProfile(grade="5th grade", interests=["football"], misconception="adds instead of subtracting")
    write_jsonl(tmp_path / "rl.jsonl", [
        PromptItem(id=f"p{i}", source="gsm8k", problem_id=f"q{i}", kind="single_turn", profile=profile,
                   problem=f"Sam has {i + 7} apples and gives away 3. How many are left?",
                   reference_solution=f"{i + 7} - 3 = {i + 4}\n#### {i + 4}") for i in range(2)])
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [exe, "--nproc_per_node", "2", "--master_port", "29531", str(ROOT / "tests" / "classroom_ranks_driver.py"),
               "--prompts", str(tmp_path / "rl.jsonl"), "--out", str(tmp_path)]
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True) as proc:
        try:
            output, _ = proc.communicate(timeout=120)  # ~20 s when the ranks agree; a rank left waiting hangs
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
            raise AssertionError("the two ranks did not finish within 120 s: one was left waiting in generate") from None
    assert proc.returncode == 0, output[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["tutor_turns"] == [1, 1] and ranks[1]["tutor_turns"] == [3, 3]  # rank 0's tutor ended at once
    assert ranks[0]["generate_calls"] == ranks[1]["generate_calls"] == 3
