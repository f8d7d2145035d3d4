"""The Makefile is offline by default but passes a user's own HF_HUB_OFFLINE through (a GPU user downloads the
hub models of configs/7b.yaml), and uses the config's run directory unless RUN= names another."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make(*args, env=None):
    base = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    out = subprocess.run(["make", "-s", "--no-print-directory", *args], cwd=REPO, env={**base, **(env or {})},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


SHOW = "--eval=show-env: ; @echo $$HF_HUB_OFFLINE $$TRANSFORMERS_OFFLINE $$HF_DATASETS_OFFLINE"


def test_offline_is_the_default():
    assert _make(SHOW, "show-env") == "1 1 1"


def test_the_users_setting_wins():
    assert _make(SHOW, "show-env", env={"HF_HUB_OFFLINE": "0"}) == "0 0 0"


def test_run_dir_comes_from_the_config_unless_run_is_given():
    assert "--run-dir" not in _make("-n", "dry-run")
    assert "--run-dir runs/other" in _make("-n", "dry-run", "RUN=runs/other")
