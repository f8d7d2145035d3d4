"""`python -m pipeline run` skips a stage whose command and inputs are unchanged, re-runs it when an input or option
changes or when told to (--redo), and keeps a manifest with versions, git commit and each stage's time."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_pipeline(config: Path, run_dir: Path, *extra: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--config", str(config), "--run-dir", str(run_dir),
         "--only", "data", *extra], cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_second_run_skips_and_changes_rerun(tmp_path):
    data_config = tmp_path / "data.yaml"
    shutil.copy(REPO / "configs" / "data.yaml", data_config)
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"name: t\nstages:\n  data:\n    config: {data_config}\n")
    run_dir = tmp_path / "run"

    first = run_pipeline(config, run_dir)
    assert "done in" in first and "skipped" not in first
    manifest = json.loads((run_dir / "manifest.json").read_text())
    stage = manifest["stages"]["data"]
    assert stage["status"] == "done" and stage["seconds"] >= 0 and stage["peak_rss_mb"] > 0
    assert manifest["versions"]["torch"] and "commit" in manifest["git"]
    assert (run_dir / "report.md").exists()

    assert "up to date, skipped" in run_pipeline(config, run_dir)
    assert "up to date, skipped" not in run_pipeline(config, run_dir, "--redo", "data")

    data_config.write_text(data_config.read_text().replace("seed: 0", "seed: 1"))
    assert "up to date, skipped" not in run_pipeline(config, run_dir)
    assert "up to date, skipped" in run_pipeline(config, run_dir)

    (run_dir / "data" / "rl.jsonl").unlink()  # a lost output re-runs the stage
    assert "up to date, skipped" not in run_pipeline(config, run_dir)
