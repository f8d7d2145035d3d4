"""`python tests/lowest_versions.py`: pip requirements pinning the ML libraries to the lowest versions pyproject.toml
allows (`make test-min` installs them into .venv-min and runs the mechanics tests there), e.g. transformers==5.0.0.
torch is not pinned here: an older torch from PyPI is a CUDA build of several GB, so test-min keeps the CPU build
`make setup` installs (torch 2.13.0) and the README states that as the torch version tested."""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PINNED = ("transformers", "trl", "peft", "accelerate", "datasets")
ROOT = Path(__file__).resolve().parent.parent


def lowest_versions(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """`name==lowest` for each of PINNED, from its `>=X` or `==X.*` requirement; an error names a package without
    a floor."""
    pins = []
    requirements = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    for name in PINNED:
        spec = next((r for r in requirements if re.match(rf"{name}\s*[<>=!~]", r)), None)
        floor = spec and re.search(r"(?:>=|==)\s*([0-9][0-9.]*[0-9])(\.\*)?", spec)
        if not floor:
            raise SystemExit(f"error: {pyproject}: {name} has no lower bound (>= or ==) to test")
        version = floor.group(1) + (".0" if floor.group(2) else "")
        pins.append(f"{name}=={version}")
    return pins


if __name__ == "__main__":
    print(" ".join(lowest_versions()))
    sys.exit(0)
