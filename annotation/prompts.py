"""`python -m annotation data --out DIR`: prompt sets with student profiles, split into rm / rl / eval.

Items come from three sources:
- single-turn: a GSM8K question asked by a student with a synthetic profile (configs/profiles.yaml);
- multi-turn: a MathDial dialogue (real profile) cut at a teacher turn, whose real turn becomes the reference;
- multi-turn: a MathTutorBench context, whose gold teacher turn becomes the reference.

Splits are by problem: each problem id (hash of the normalised problem text) is placed in one split by a seeded
hash, so no math problem is in two splits. Problems quoted by MRBench (held-out human labels) and the problems
of the held-out GSM8K files never go to rm or rl. Each split then draws its sizes per kind, seeded.
"""
from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from core.cli import ArgumentParser
from core.config import Config, ConfigError, Seed, add_arguments, build_config, load_config
from core.errors import exits_on_bad_input
from core.schema import PromptItem, StudentProfile, Turn, write_json, write_jsonl, write_text
from core.sources import (
    GSM8KProblem, MathDialDialogue, load_gsm8k, load_mathdial, load_mathtutorbench, load_mrbench_problems,
    normalise_problem,
)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
SPLITS = ("rm", "rl", "eval")
KINDS = ("single_turn", "multi_turn")


class ProfileLists(Config):
    """The lists synthetic student profiles are drawn from (configs/profiles.yaml)."""

    interests_per_student: int = Field(2, ge=0, description="how many interests each synthetic student has")
    grades: list[str] = Field(min_length=1, description="grade levels, e.g. '5th grade'")
    interests: list[str] = Field(min_length=1, description="topics a student may like")
    personalities: list[str] = Field(min_length=1, description="personality or learning-style sentences")
    misconceptions: list[str] = Field(min_length=1, description="typical misconceptions in word problems")


class KindSizes(Config):
    single_turn: int = Field(ge=0, description="single-turn items (GSM8K questions)")
    multi_turn: int = Field(ge=0, description="multi-turn items (MathDial and MathTutorBench contexts)")


class SplitSizes(Config):
    rm: KindSizes = Field(KindSizes(single_turn=140, multi_turn=60), description="reward-model prompts")
    rl: KindSizes = Field(KindSizes(single_turn=48, multi_turn=16), description="RL (GRPO) prompts")
    eval: KindSizes = Field(KindSizes(single_turn=32, multi_turn=16), description="evaluation prompts")


class SplitShares(Config):
    rm: float = Field(0.6, ge=0, description="share of (unpinned) problems that may be drawn for rm")
    rl: float = Field(0.2, ge=0, description="share of (unpinned) problems that may be drawn for rl")
    eval: float = Field(0.2, ge=0, description="share of (unpinned) problems that may be drawn for eval")

    @model_validator(mode="after")
    def _some_share(self):
        if self.rm + self.rl + self.eval <= 0:
            raise ValueError("at least one share must be positive")
        return self


class DataConfig(Config):
    """Options of `python -m annotation data` (configs/data.yaml lists them with comments)."""

    out: Path | None = Field(None, description="output folder for rm.jsonl, rl.jsonl, eval.jsonl and the summary")
    gsm8k_paths: list[Path] = Field(
        [DATA / "gsm8k" / "train.jsonl", DATA / "gsm8k" / "test.jsonl"],
        description="GSM8K files whose questions become single-turn items")
    heldout_gsm8k_paths: list[Path] = Field(
        [DATA / "gsm8k" / "test.jsonl"],
        description="GSM8K files whose problems may only go to eval (kept unseen for the policy's perplexity check)")
    mathdial_path: Path | None = Field(DATA / "mathdial" / "test.jsonl", description="MathDial JSONL (null: none)")
    mathtutorbench_paths: list[Path] = Field(
        [DATA / "mathtutorbench" / "mathdial_bridge.mathdial_only.json",
         DATA / "mathtutorbench" / "mathdial_bridge_hard.mathdial_only.json"],
        description="MathTutorBench JSON files (contexts ending in a gold teacher turn)")
    mrbench_path: Path | None = Field(
        DATA / "mrbench_v3_dev" / "mrbench_v3_devset.json",
        description="MRBench JSON whose quoted problems are held out of rm and rl (null: no holdout)")
    mrbench_problems: Literal["eval", "drop"] = Field(
        "eval", description="where problems quoted by MRBench go: only to eval, or to no split at all")
    profiles_path: Path = Field(REPO / "configs" / "profiles.yaml", description="lists for synthetic profiles")
    seed: Seed = Field(0, description="seed for split assignment, sampling, profiles and dialogue cuts")
    sizes: SplitSizes = Field(SplitSizes(), description="items per split and kind")
    shares: SplitShares = Field(SplitShares(), description="how unpinned problems are divided among the splits")
    mathdial_cuts_per_dialogue: int = Field(
        1, ge=1, description="teacher turns at which each MathDial dialogue is cut (one item per cut)")
    profiles_per_problem: int = Field(
        1, ge=1, description="single-turn items per GSM8K problem, each with another synthetic student")


def _seeded(seed: int, *key) -> random.Random:
    return random.Random(":".join(map(str, (seed, *key))))


# ---------------------------------------------------------------- profiles

def load_profile_lists(path: Path) -> ProfileLists:
    return load_config(ProfileLists, path)


def synthetic_profile(lists: ProfileLists, rng: random.Random) -> StudentProfile:
    return StudentProfile(
        grade=rng.choice(lists.grades),
        interests=rng.sample(lists.interests, min(lists.interests_per_student, len(lists.interests))),
        personality=rng.choice(lists.personalities),
        misconception=rng.choice(lists.misconceptions),
    )


# ---------------------------------------------------------------- items per source

def single_turn_items(problems: list[GSM8KProblem], lists: ProfileLists, config: DataConfig) -> list[PromptItem]:
    items = []
    for problem in problems:
        for k in range(config.profiles_per_problem):
            item_id = problem.id if k == 0 else f"{problem.id}:s{k}"
            items.append(PromptItem(
                id=item_id, source="gsm8k", problem_id=problem.problem_id, kind="single_turn",
                profile=synthetic_profile(lists, _seeded(config.seed, item_id)), problem=problem.question,
                reference_solution=f"{problem.plain_solution}\n#### {problem.final_answer}",
                meta={"final_answer": problem.final_answer, "profile_source": "synthetic"},
            ))
    return items


def mathdial_items(dialogues: list[MathDialDialogue], config: DataConfig) -> list[PromptItem]:
    """Cut each dialogue just before seeded teacher turns. The student's written (incorrect) solution, which
    the MathDial teacher saw before the chat, opens the dialogue as a student turn."""
    items = []
    for d in dialogues:
        turns = [Turn(role="student", text="My solution:\n" + d.student_incorrect_solution.strip()), *d.turns]
        moves = [None, *d.moves]
        teacher_turns = [i for i, t in enumerate(turns) if t.role == "tutor"]
        cuts = _seeded(config.seed, d.id).sample(teacher_turns, min(config.mathdial_cuts_per_dialogue, len(teacher_turns)))
        for i in sorted(cuts):
            items.append(PromptItem(
                id=f"{d.id}:t{i}", source="mathdial", problem_id=d.problem_id, kind="multi_turn",
                profile=d.profile, problem=d.problem, turns=turns[:i], reference_solution=d.reference_solution,
                reference_responses=[turns[i].text],
                meta={"dialogue": d.id, "reference_move": moves[i], "profile_source": "mathdial", **d.meta},
            ))
    return items


def attach_profiles(items: list[PromptItem], dialogues: list[MathDialDialogue], lists: ProfileLists,
                    seed: int) -> list[PromptItem]:
    """MathTutorBench contexts are cut from MathDial dialogues: take the real profile when exactly one MathDial
    dialogue on the same problem shares a student turn with the context; otherwise draw a synthetic one."""
    by_turn = defaultdict(set)
    for d in dialogues:
        for t in d.turns:
            if t.role == "student":
                by_turn[d.problem_id, normalise_problem(t.text)].add(d.id)
    profiles = {d.id: d.profile for d in dialogues}
    out = []
    for item in items:
        found = set().union(*(by_turn.get((item.problem_id, normalise_problem(t.text)), set())
                              for t in item.turns if t.role == "student"))
        if len(found) == 1:
            (dialogue_id,) = found
            profile, meta = profiles[dialogue_id], {"profile_source": "mathdial", "dialogue": dialogue_id}
        else:
            profile, meta = synthetic_profile(lists, _seeded(seed, item.id)), {"profile_source": "synthetic"}
        out.append(item.model_copy(update={"profile": profile, "meta": {**item.meta, **meta}}))
    return out


# ---------------------------------------------------------------- splits

def pinned_problems(config: DataConfig, mrbench: set[str]) -> dict[str, str | None]:
    """problem_id -> 'eval' or None (dropped) for the held-out problems; MRBench's rule wins over GSM8K's."""
    pinned: dict[str, str | None] = {}
    for path in config.heldout_gsm8k_paths:
        pinned.update({p.problem_id: "eval" for p in load_gsm8k(path)})
    target = "eval" if config.mrbench_problems == "eval" else None
    pinned.update({pid: target for pid in mrbench})
    return pinned


def split_of(problem_id: str, shares: SplitShares, seed: int) -> str:
    """A seeded hash of the problem id picks the split, so the choice depends on nothing else."""
    u = int(hashlib.sha256(f"{seed}:{problem_id}".encode()).hexdigest()[:15], 16) / 16**15
    total = shares.rm + shares.rl + shares.eval
    bound = 0.0
    for split in SPLITS:
        bound += getattr(shares, split) / total
        if u < bound:
            return split
    return next(s for s in reversed(SPLITS) if getattr(shares, s) > 0)


def assign_splits(items: list[PromptItem], pinned: dict[str, str | None], config: DataConfig) -> dict[str, list[PromptItem]]:
    """Pools of candidate items per split (every item of one problem in the same pool)."""
    pools: dict[str, list[PromptItem]] = {s: [] for s in SPLITS}
    for item in items:
        split = pinned[item.problem_id] if item.problem_id in pinned else split_of(item.problem_id, config.shares, config.seed)
        if split is not None:
            pools[split].append(item)
    return pools


def draw(pools: dict[str, list[PromptItem]], config: DataConfig) -> dict[str, list[PromptItem]]:
    drawn = {}
    for split in SPLITS:
        chosen = []
        for kind in KINDS:
            pool = sorted((it for it in pools[split] if it.kind == kind), key=lambda it: it.id)
            want = getattr(getattr(config.sizes, split), kind)
            if want > len(pool):
                raise ConfigError(
                    f"field sizes.{split}.{kind}: asked for {want} items, but split {split} has only {len(pool)} "
                    f"{kind} candidates; lower it, or raise shares.{split} or "
                    + ("profiles_per_problem" if kind == "single_turn" else "mathdial_cuts_per_dialogue"))
            chosen += _seeded(config.seed, split, kind).sample(pool, want)
        drawn[split] = [it.model_copy(update={"split": split, "meta": {**it.meta, "group": it.problem_id}})
                        for it in chosen]
    return drawn


# ---------------------------------------------------------------- the whole build

def build_prompt_sets(config: DataConfig) -> tuple[dict[str, list[PromptItem]], dict]:
    lists = load_profile_lists(config.profiles_path)
    problems = [p for path in config.gsm8k_paths for p in load_gsm8k(path)]
    dialogues = load_mathdial(config.mathdial_path) if config.mathdial_path else []
    tutorbench = [it for path in config.mathtutorbench_paths for it in load_mathtutorbench(path)]
    items = (single_turn_items(problems, lists, config) + mathdial_items(dialogues, config)
             + attach_profiles(tutorbench, dialogues, lists, config.seed))
    mrbench = set(load_mrbench_problems(config.mrbench_path)) if config.mrbench_path else set()
    pinned = pinned_problems(config, mrbench)
    pools = assign_splits(items, pinned, config)
    drawn = draw(pools, config)
    return drawn, summarise(drawn, pools, items, pinned, mrbench, config)


def summarise(drawn, pools, items, pinned, mrbench: set[str], config: DataConfig) -> dict:
    problems_by_split = {s: {it.problem_id for it in drawn[s]} for s in SPLITS}
    return {
        "counts": {s: _nested_counts(drawn[s]) for s in SPLITS},
        "candidates": {s: _nested_counts(pools[s]) for s in SPLITS},
        "items": {s: len(drawn[s]) for s in SPLITS},
        "problems": {s: len(problems_by_split[s]) for s in SPLITS},
        "profile_sources": {s: dict(Counter(it.meta["profile_source"] for it in drawn[s])) for s in SPLITS},
        "checks": {
            "problems_shared_between_splits": sum(
                len(problems_by_split[a] & problems_by_split[b]) for i, a in enumerate(SPLITS) for b in SPLITS[i + 1:]),
            "mrbench_problems_in_rm_rl": len((problems_by_split["rm"] | problems_by_split["rl"]) & mrbench),
            "items_without_profile": sum(it.profile is None for s in SPLITS for it in drawn[s]),
        },
        "pinned_problems": {"eval": sum(v == "eval" for v in pinned.values()),
                            "dropped": sum(v is None for v in pinned.values())},
        "all_candidates": len(items),
        "config": config.model_dump(mode="json"),
    }


def _nested_counts(items: list[PromptItem]) -> dict:
    counts: dict = defaultdict(Counter)
    for it in items:
        counts[it.source][it.kind] += 1
    return {source: dict(kinds) for source, kinds in sorted(counts.items())}


def summary_markdown(summary: dict) -> str:
    lines = ["# Prompt sets", "", "| split | source | single_turn | multi_turn |", "|---|---|---|---|"]
    for split in SPLITS:
        for source, kinds in summary["counts"][split].items():
            lines.append(f"| {split} | {source} | {kinds.get('single_turn', 0)} | {kinds.get('multi_turn', 0)} |")
        lines.append(f"| **{split}** | all | {summary['items'][split]} items | {summary['problems'][split]} problems |")
    checks = summary["checks"]
    lines += [
        "", "Splits are by problem (hash of the normalised problem text); every item's `meta.group` is its problem id.",
        f"- problems shared between splits: {checks['problems_shared_between_splits']}",
        f"- MRBench problems in rm/rl: {checks['mrbench_problems_in_rm_rl']} "
        f"(MRBench problems go to: {summary['config']['mrbench_problems']})",
        f"- items without a student profile: {checks['items_without_profile']}",
        f"- problems pinned to eval: {summary['pinned_problems']['eval']}, dropped: {summary['pinned_problems']['dropped']}",
        "- profile sources: " + "; ".join(f"{s}: {summary['profile_sources'][s]}" for s in SPLITS),
    ]
    return "\n".join(lines) + "\n"


def write_prompt_sets(drawn: dict[str, list[PromptItem]], summary: dict, out: Path) -> list[Path]:
    paths = []
    for split in SPLITS:
        write_jsonl(out / f"{split}.jsonl", drawn[split])
        paths.append(out / f"{split}.jsonl")
    write_json(out / "summary.json", summary)
    write_text(out / "summary.md", summary_markdown(summary))
    return paths + [out / "summary.json", out / "summary.md"]


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m annotation data", description=__doc__.split("\n")[0])
    add_arguments(parser, DataConfig)
    config = build_config(DataConfig, parser.parse_args(argv))
    if config.out is None:
        raise ConfigError("field out: give the output folder with --out DIR (or `out:` in the config file)")
    drawn, summary = build_prompt_sets(config)
    for path in write_prompt_sets(drawn, summary, config.out):
        print(f"wrote {path}")
    print(" ".join(f"{s}={summary['items'][s]}" for s in SPLITS))
