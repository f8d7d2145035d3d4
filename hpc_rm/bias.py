"""Bias probes for a reward model: does a head follow response length, and does it move when the same
response is shown with another student's profile (`core.schema.swap_profile`)?"""
from __future__ import annotations

import numpy as np

from core.schema import PROFILE_HEADER, LabeledItem, StudentProfile, swap_profile

# Used when the contexts carry no profiles of their own: students far apart in age, interests and needs.
CONTRAST_PROFILES = [
    StudentProfile(grade="2nd grade", interests=["dinosaurs", "drawing"],
                   personality="Young, easily discouraged, needs very short steps and encouragement."),
    StudentProfile(grade="12th grade", interests=["competitive programming", "physics"],
                   personality="Advanced and impatient with over-explanation; prefers terse, rigorous hints."),
    StudentProfile(grade="6th grade", interests=["football"], misconception="Thinks multiplying always makes bigger",
                   personality="English learner who prefers concrete, real-life examples."),
]


def length_correlation(items: list[LabeledItem], scores: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Spearman correlation of each head's score with the response length in words (None if undefined)."""
    from scipy.stats import spearmanr

    lengths = np.array([len(i.response.split()) for i in items])
    out = {}
    for name, values in scores.items():
        values = np.asarray(values, dtype=float)
        keep = ~np.isnan(values)  # NaN = no label (when the "scores" are human labels)
        ok = np.unique(lengths[keep]).size > 1 and np.unique(values[keep]).size > 1
        out[name] = float(spearmanr(lengths[keep], values[keep]).statistic) if ok else None
    return out


def profiles_of(items: list[LabeledItem]) -> list[str]:
    """The distinct profile blocks found at the top of the contexts."""
    blocks = []
    for item in items:
        if item.context.startswith(PROFILE_HEADER):
            block = item.context.split("\n\n## ", 1)[0]
            if block not in blocks:
                blocks.append(block)
    return blocks


def swapped_contexts(items: list[LabeledItem], seed: int) -> tuple[list[str], str]:
    """Each context with a different student's profile, and where the profiles came from.

    Profiles present in the data are rotated (each item gets another item's profile); without any, each item
    gets one of CONTRAST_PROFILES (a context without a profile gains one)."""
    rng = np.random.default_rng(seed)
    own = profiles_of(items)
    if len(own) >= 2:
        profiles = [StudentProfile(personality=block.split("\n", 1)[1]) for block in own]
        source = f"{len(own)} profiles found in the data, rotated"
    else:
        profiles, source = CONTRAST_PROFILES, "built-in contrasting profiles (the data has none)"
    contexts = []
    for item in items:
        choice = profiles[rng.integers(len(profiles))]
        new = swap_profile(item.context, choice)
        if new == item.context and len(profiles) > 1:  # drew the item's own profile: take the next one
            new = swap_profile(item.context, profiles[(profiles.index(choice) + 1) % len(profiles)])
        contexts.append(new)
    return contexts, source


def profile_shift(original: dict[str, np.ndarray], swapped: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per head: mean signed and mean absolute score change when the profile is swapped."""
    out = {}
    for name in original:
        diff = np.asarray(swapped[name], dtype=float) - np.asarray(original[name], dtype=float)
        out[name] = {"mean_shift": float(diff.mean()), "mean_abs_shift": float(np.abs(diff).mean())}
    return out
