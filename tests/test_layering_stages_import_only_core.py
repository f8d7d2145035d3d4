"""Imports point one way: stages (annotation, hpc_rm, policy) and the pipeline runner import the shared `core`
package, never each other; `core` imports no stage. Every import statement counts, including ones inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = {"annotation", "hpc_rm", "policy"}
# package -> the top-level packages of this project it may import (besides itself)
ALLOWED = {"core": set(), "annotation": {"core"}, "hpc_rm": {"core"}, "policy": {"core"}, "pipeline": {"core"}}
PROJECT = set(ALLOWED)


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def layering_violations(root: Path) -> list[str]:
    """'file:line: pkg imports other' for each import that crosses the allowed direction."""
    problems = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, target in imported_packages(path.read_text()):
                if target in PROJECT and target != package and target not in allowed:
                    problems.append(f"{path.relative_to(root)}:{line}: {package} imports {target}")
    return problems


def test_repository_has_no_layering_violation():
    assert layering_violations(REPO) == []


# inside policy: sub-package -> the policy sub-packages it may not import (training stands alone; see policy/__init__)
POLICY_FORBIDDEN = {"train": {"evaluation", "classroom", "experiments"}, "evaluation": {"classroom", "experiments"}}


def policy_room_violations(root: Path) -> list[str]:
    """'file:line: policy.room imports policy.other' for each import that crosses policy's rooms the wrong way."""
    problems = []
    for room, forbidden in POLICY_FORBIDDEN.items():
        for path in sorted((root / "policy" / room).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "policy" and len(parts) > 1 and parts[1] in forbidden:
                        problems.append(f"{path.relative_to(root)}:{node.lineno}: policy.{room} imports policy.{parts[1]}")
                        break
    return problems


def test_policy_training_never_imports_evaluation_or_the_classroom():
    assert policy_room_violations(REPO) == []


def test_training_importing_evaluation_is_caught(tmp_path):
    (tmp_path / "policy" / "train").mkdir(parents=True)
    (tmp_path / "policy" / "train" / "planted.py").write_text("def f():\n    from policy.evaluation import stats\n")
    assert policy_room_violations(tmp_path) == ["policy/train/planted.py:2: policy.train imports policy.evaluation"]


def test_every_project_package_is_covered():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} | {p.parent.name for p in REPO.glob("*/__main__.py")}
    assert packages - {"tests", "benchmarks"} <= PROJECT, "a new top-level package needs a row in ALLOWED"


def _plant(tmp_path: Path, package: str, source: str) -> Path:
    for name in ALLOWED:
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / package / "planted.py").write_text(source)
    return tmp_path


def test_a_stage_importing_another_stage_is_caught(tmp_path):
    root = _plant(tmp_path, "policy", "from core.schema import read_jsonl\n\ndef f():\n    from hpc_rm.train import X\n")
    assert layering_violations(root) == ["policy/planted.py:4: policy imports hpc_rm"]


def test_core_importing_a_stage_is_caught(tmp_path):
    root = _plant(tmp_path, "core", "import annotation.label\n")
    assert layering_violations(root) == ["core/planted.py:1: core imports annotation"]


def test_pipeline_importing_a_stage_is_caught(tmp_path):
    root = _plant(tmp_path, "pipeline", "import json\nfrom annotation import prompts\n")
    assert layering_violations(root) == ["pipeline/planted.py:2: pipeline imports annotation"]
