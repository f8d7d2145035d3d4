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


def test_training_state_is_kept_only_to_resume_the_same_interrupted_command(tmp_path):
    """A redone or changed stage starts from scratch (old checkpoints would leak into it); an interrupted run of
    the same command keeps its folder so it can resume."""
    from pipeline.runner import Manifest, StagePlan, run_stage

    state = tmp_path / "policy"

    def plan(option: str) -> StagePlan:
        # The stage checks whether the marker of an earlier run is there, then writes its output and a new marker.
        script = ("import pathlib, sys; d = pathlib.Path(sys.argv[1]); d.mkdir(exist_ok=True); "
                  "(d / 'saw_old_state').write_text(str((d / 'checkpoint').exists())); "
                  "(d / 'checkpoint').write_text('x'); (d / 'run.json').write_text('{}')")
        return StagePlan("grpo", "test", [sys.executable, "-c", script, str(state), option], [state / "run.json"],
                         state_dir=state)

    manifest = Manifest(tmp_path, {})
    assert run_stage(plan("a"), manifest)["status"] == "done"
    assert (state / "saw_old_state").read_text() == "False"

    run_stage(plan("a"), manifest, redo=True)  # --redo: from scratch
    assert (state / "saw_old_state").read_text() == "False"

    run_stage(plan("b"), manifest)  # changed option: from scratch
    assert (state / "saw_old_state").read_text() == "False"

    # Killed mid-run: the manifest still says running with this command's fingerprint, so the state is resumed.
    (state / "checkpoint").write_text("x")
    key = manifest.stage("grpo")["fingerprint"]
    manifest.record("grpo", status="running", fingerprint=key)
    run_stage(plan("b"), manifest)
    assert (state / "saw_old_state").read_text() == "True"
