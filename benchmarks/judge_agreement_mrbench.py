"""How well each local judge of the registry agrees with MRBench V3 dev's human raters, before it judges anything.

    python benchmarks/judge_agreement_mrbench.py --out benchmarks/results/judges_mrbench \
        --judge smollm2-135m-instruct=160 --judge qwen2.5-coder-0.5b-instruct=160 --judge qwen2.5-coder-1.5b-instruct=64

Each judge labels the first N MRBench responses (`annotation label`, one sample, resumable) and `annotation agreement`
compares every judge with the human labels (exact, QWK, Spearman of the level; confusion matrices). Because the eval
reads a local judge's expected level (probability-weighted), this also writes the Spearman correlation of that
expected level with the human label per dimension: judges.md / judges.json. The eval shows agreement.json next to
the judge's verdicts (`policy eval --judge-agreement`).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.rubric import load_rubric  # noqa: E402
from core.schema import write_json, write_text  # noqa: E402

MRBENCH = REPO / "data" / "mrbench_v3_dev" / "mrbench_v3_devset.json"


def run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", *args], cwd=REPO, check=True)


def expected_spearman(human_file: Path, raw_file: Path, dimensions: list[str]) -> dict:
    human: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for line in human_file.read_text().splitlines():
        row = json.loads(line)
        for dim, value in (row.get("scores") or {}).items():
            human[row["id"]][dim].append(value)
    expected = {}
    for line in raw_file.read_text().splitlines():
        row = json.loads(line)
        if row["status"] == "ok" and row.get("expected"):
            expected[row["item_id"]] = row["expected"]
    out = {"n": len(expected)}
    for dim in dimensions:
        ids = [i for i in expected if human[i].get(dim)]
        mean_human = [sum(human[i][dim]) / len(human[i][dim]) for i in ids]
        out[dim] = round(float(spearmanr(mean_human, [expected[i][dim] for i in ids]).statistic), 3)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "judges_mrbench")
    parser.add_argument("--judge", action="append", required=True, metavar="MODEL=ITEMS",
                        help="registry name (or hub id / folder) and how many MRBench responses it labels")
    args = parser.parse_args(argv)
    work = args.out / "labels"
    human = work / "human.jsonl"
    if not human.exists():
        run("annotation", "import", "--format", "mrbench", "--input", str(MRBENCH), "--rubric", "mrbench",
            "--out", str(human))
    dimensions = load_rubric("mrbench").names
    rows = {}
    for spec in args.judge:
        model, _, items = spec.partition("=")
        run("annotation", "label", "--items", str(human), "--rubric", "mrbench", "--samples", "1",
            "--judges", f"local?model={model}&name={model}", "--limit", items or "160", "--out", str(work / model))
        rows[model] = expected_spearman(human, work / model / "raw.jsonl", dimensions)
    run("annotation", "agreement", "--labels", str(human), *[str(work / m / "labels.jsonl") for m in rows],
        "--rubric", "mrbench", "--out", str(args.out))
    write_json(args.out / "judges.json", rows)
    lines = ["# Local judges vs MRBench V3 dev human labels", "",
             "Spearman of the judge's expected level (probability-weighted, what `policy eval` reads) with the human "
             "label; level agreement (QWK, exact) is in agreement.md.", "",
             "| judge | responses | " + " | ".join(dimensions) + " |", "|---" * (len(dimensions) + 2) + "|"]
    for model, row in rows.items():
        lines.append(f"| {model} | {row['n']} | " + " | ".join(f"{row[d]:+.3f}" for d in dimensions) + " |")
    write_text(args.out / "judges.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
