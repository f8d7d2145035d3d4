"""`python -m pipeline.wheelhouse --out DIR [--python 3.12] [--glibc 2.35] [--arch x86_64]` (`make wheelhouse`):
every wheel the project and its `gpu` extra need, for another machine's Python and platform, in one folder. A GPU
node without internet (the usual compute node of a university cluster) then installs the project from it with
`make install-offline WHEELS=DIR` (pip --no-index --find-links DIR).

What goes in:
- the project's own wheel (tutor_align, pure Python) and the build back-end (setuptools, wheel), so an editable
  install works offline too;
- every requirement of pyproject.toml's dependencies and `gpu` extra, resolved by pip for the target Python and
  platform (`pip download --only-binary=:all:`): torch's CUDA build and its nvidia-* libraries, vLLM and what it
  pins; these are most of the size;
- DeepSpeed, which PyPI publishes only as source: built here as a py3-none-any wheel with no ops prebuilt
  (`DS_BUILD_OPS=0`; its ops compile just in time on the GPU node, which needs nvcc and ninja), then its own
  requirements are resolved like the rest.
At the end it checks that the folder alone resolves `tutor-align[gpu]` for the target (pip install --dry-run
--no-index) and prints the folder's size.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILT_HERE = ("deepspeed",)  # source-only on PyPI


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The runtime dependencies and the gpu extra, as pyproject.toml states them (comments dropped)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return list(project["dependencies"]) + list(project.get("optional-dependencies", {}).get("gpu", []))


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def manylinux_platforms(glibc: str, arch: str) -> list[str]:
    """Every manylinux tag a machine with this glibc accepts, newest first (pip matches platform tags exactly, and
    wheels are published under different ones: llguidance, which vLLM needs, only as manylinux_2_31)."""
    major, minor = (int(x) for x in glibc.split("."))
    if major != 2 or minor < 17:
        raise SystemExit(f"error: wheelhouse: --glibc {glibc}: expected 2.17 or newer")
    return [f"manylinux_2_{m}_{arch}" for m in range(minor, 16, -1)] + [f"manylinux2014_{arch}"]


def target_flags(python: str, platforms: list[str]) -> list[str]:
    flags = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    for platform in platforms:
        flags += ["--platform", platform]
    return flags


def _pip(*args: str, env: dict | None = None) -> None:
    command = [sys.executable, "-m", "pip", *args]
    print("+ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env)


def build_wheelhouse(out: Path, python: str, platforms: list[str]) -> int:
    """Fill `out`; returns its size in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    reqs = requirements()
    built = [r for r in reqs if _name(r) in BUILT_HERE]
    # The project and the built-here packages are pure Python: built with this interpreter, no isolation (DeepSpeed's
    # setup imports torch, which must not be a several-GB CUDA build pulled into a throwaway build environment).
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT), *built,
         env=dict(os.environ, DS_BUILD_OPS="0"))
    listed = out / "requirements.txt"
    listed.write_text("\n".join(reqs + ["setuptools>=68", "wheel"]) + "\n")
    # --find-links: the wheels built above satisfy their own names, and pip fetches what they require.
    _pip("download", "-d", str(out), "--find-links", str(out), *target_flags(python, platforms), "-r", str(listed))
    check = ["install", "--dry-run", "--ignore-installed", "--no-index", "--find-links", str(out), "--target",
             str(out / ".dry-run"), *target_flags(python, platforms), "tutor-align[gpu]"]
    _pip(*check)
    shutil.rmtree(out / ".dry-run", ignore_errors=True)
    return sum(p.stat().st_size for p in out.glob("*.whl"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wheelhouse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("wheelhouse"), help="folder for the wheels (default: "
                                                                             "wheelhouse)")
    parser.add_argument("--python", default="3.12", help="the target machine's Python version (default 3.12)")
    parser.add_argument("--glibc", default="2.35", help="the target's glibc version (`ldd --version`; default 2.35, "
                                                        "Ubuntu 22.04; RHEL 8: 2.28, Ubuntu 24.04: 2.39)")
    parser.add_argument("--arch", default="x86_64", help="the target's machine (default x86_64; or aarch64)")
    args = parser.parse_args(argv)
    args.platform = manylinux_platforms(args.glibc, args.arch)
    try:
        size = build_wheelhouse(args.out, args.python, args.platform)
    except subprocess.CalledProcessError as err:
        print(f"error: wheelhouse: `{' '.join(err.cmd[2:5])} ...` failed (exit {err.returncode}); see pip's output "
              "above", file=sys.stderr)
        sys.exit(1)
    count = len(list(args.out.glob("*.whl")))
    print(f"wheelhouse: {count} wheels, {size / 2**30:.2f} GiB in {args.out} for Python {args.python}, glibc "
          f"{args.glibc}, {args.arch}; on the target: make install-offline WHEELS={args.out}")


if __name__ == "__main__":
    main()
