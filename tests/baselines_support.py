"""Fixtures shared by the baseline tests (best-of-n, RFT, DPO, SFT, compare): prompt files and a tiny RM."""
from __future__ import annotations

from core.schema import PromptItem, StudentProfile, Turn, write_jsonl


def write_prompts(folder, count: int = 6):
    """rl.jsonl (the first count - 2 items) and eval.jsonl (the last 2); odd items are MathDial dialogues with a
    real teacher turn."""
    profile = StudentProfile(grade="5th grade", interests=["football"], misconception="adds instead of subtracting")
    items = []
    for i in range(count):
        multi = bool(i % 2)
        items.append(PromptItem(
            id=f"p{i}", source="mathdial" if multi else "gsm8k", problem_id=f"q{i}",
            kind="multi_turn" if multi else "single_turn", profile=profile,
            problem=f"Sam has {i + 7} apples and gives away 3. How many are left?",
            turns=[Turn(role="student", text=f"Is it {i + 10}?")] if multi else [],
            reference_solution=f"{i + 7} - 3 = {i + 4}\n#### {i + 4}",
            reference_responses=[f"What do you get when you take 3 away from {i + 7}?"] if multi else [],
        ))
    write_jsonl(folder / "rl.jsonl", items[:count - 2])
    write_jsonl(folder / "eval.jsonl", items[count - 2:])
    return folder


def save_tiny_rm(encoder: str, path) -> str:
    from core.reward_model import HPCRewardModel

    HPCRewardModel.from_backbone(encoder, "hpc").save_pretrained(path)
    return str(path)
