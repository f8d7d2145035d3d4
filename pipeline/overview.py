"""`RUN/report.md`: one page for the whole run. It stitches together the Markdown report each stage wrote and
shows their plots inline, so a reader sees label agreement, RM quality, reward before/after and the sweep's
trade-off in one place; numbers stay in the stages' own JSON files."""
from __future__ import annotations

import re
from pathlib import Path

from core.schema import write_text

SECTIONS = [
    ("Label agreement: human vs LLM judge (MRBench V3 dev)", "reports/agreement", "agreement.md"),
    ("Reward model consistency: human-label RM vs LLM-label RM", "reports/consistency", "consistency.md"),
    ("Reward model evaluation", "rm/eval", "metrics.md"),
    ("Policy: base vs tuned on held-out prompts", "reports/policy_eval", "report.md"),
    ("Reward-weight sweep and ablations", "sweep", "sweep.md"),
]


def _embed(markdown: str, folder: str) -> str:
    """Demote headings two levels and point relative image/link targets into the stage's folder."""
    markdown = re.sub(r"^(#{1,4}) ", lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", markdown, flags=re.M)
    return re.sub(r"\]\((?!https?://|/|#)([^)]+)\)", lambda m: f"]({folder}/{m.group(1)})", markdown)


def write_overview(run_dir: Path, manifest: dict) -> Path:
    run_dir = Path(run_dir)
    lines = [f"# Run overview: {manifest['config'].get('name', run_dir.name)}", ""]
    git = manifest.get("git", {})
    lines.append(f"Run directory `{run_dir}`; git {str(git.get('commit'))[:10]}{' (dirty)' if git.get('dirty') else ''};"
                 f" torch {manifest['versions'].get('torch')}, transformers {manifest['versions'].get('transformers')},"
                 f" trl {manifest['versions'].get('trl')}. Full details: `manifest.json`.")
    lines += ["", "| stage | status | seconds | peak RSS (MB) |", "|---|---|---:|---:|"]
    for name, info in manifest.get("stages", {}).items():
        lines.append(f"| {name} | {info.get('status')} | {info.get('seconds', 0):.0f} | {info.get('peak_rss_mb', 0):.0f} |")
    for title, folder, report in SECTIONS:
        path = run_dir / folder / report
        lines += ["", f"## {title}", ""]
        if not path.exists():
            lines.append(f"_Not run in this run directory (`{folder}/{report}` is missing)._")
            continue
        text = _embed(path.read_text(), folder)
        linked = set(re.findall(r"\]\(([^)]+\.png)\)", text))
        lines.append(text.strip())
        for png in sorted((run_dir / folder).glob("*.png")):
            if f"{folder}/{png.name}" not in linked:
                lines += ["", f"![{png.stem}]({folder}/{png.name})"]
    out = run_dir / "report.md"
    write_text(out, "\n".join(lines) + "\n")
    return out
