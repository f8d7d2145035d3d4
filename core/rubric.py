"""Rubrics: named dimensions, each with ordered levels described in words. Loaded from YAML in configs/rubrics/.

Every stage takes any rubric with any number of dimensions; the default is HPC (Helpfulness,
Personalization, Creativity, 0-2) after EduAlign. `Rubric.hash` keys resumable label runs, so editing a
rubric's wording re-labels instead of mixing old and new labels.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.config import ConfigError, load_yaml, validate

RUBRIC_DIR = Path(__file__).resolve().parent.parent / "configs" / "rubrics"


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: int = Field(ge=0, description="the integer stored in `scores`")
    label: str = Field(description="short name shown to annotators, e.g. 'Yes' or 'Partly'")
    description: str = Field(description="what a response at this level does")
    aliases: list[str] = Field(default_factory=list, description="other spellings mapped to this level on import")


class Dimension(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="key in `scores`")
    description: str
    levels: list[Level]

    @model_validator(mode="after")
    def _levels_are_0_to_n(self):
        scores = sorted(level.score for level in self.levels)
        if scores != list(range(len(scores))) or len(scores) < 2:
            raise ValueError(f"dimension {self.name}: levels must be scored 0..n-1 (got {scores})")
        return self

    @property
    def max_score(self) -> int:
        return len(self.levels) - 1

    def parse_level(self, value) -> int:
        """Map an imported value (int, '2', 'Yes', 'To some extent') to this dimension's score."""
        if isinstance(value, bool):
            raise ValueError(f"{self.name}: {value!r} is not a level")
        if isinstance(value, (int, float)) and float(value).is_integer() and 0 <= value <= self.max_score:
            return int(value)
        text = str(value).strip().lower()
        if text.isdigit() and int(text) <= self.max_score:
            return int(text)
        for level in self.levels:
            if text in {level.label.lower(), *(a.lower() for a in level.aliases)}:
                return level.score
        known = ", ".join(f"{lv.score}={lv.label}" for lv in self.levels)
        raise ValueError(f"{self.name}: {value!r} is not a level ({known})")


class Rubric(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    dimensions: list[Dimension]
    weights: dict[str, float] | None = Field(None, description="default aggregation weights (equal if omitted)")

    @model_validator(mode="after")
    def _check(self):
        names = [d.name for d in self.dimensions]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"dimension names must be unique and non-empty: {names}")
        if self.weights is not None and set(self.weights) != set(names):
            raise ValueError(f"weights must name exactly the dimensions {names}, got {sorted(self.weights)}")
        return self

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def dimension(self, name: str) -> Dimension:
        for d in self.dimensions:
            if d.name == name:
                return d
        raise KeyError(f"rubric {self.name} has no dimension {name!r} (it has {self.names})")

    def default_weights(self) -> dict[str, float]:
        return dict(self.weights) if self.weights else {n: 1.0 / len(self.names) for n in self.names}

    @property
    def hash(self) -> str:
        blob = json.dumps(self.model_dump(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def check_scores(self, scores: dict[str, int]) -> None:
        """Raise ValueError naming the dimension when scores do not fit this rubric."""
        for name, value in scores.items():
            dim = self.dimension(name) if name in self.names else None
            if dim is None:
                raise ValueError(f"scores.{name}: not a dimension of rubric {self.name} ({self.names})")
            if not isinstance(value, int) or not 0 <= value <= dim.max_score:
                raise ValueError(f"scores.{name}: {value!r} is outside 0..{dim.max_score}")

    def check_item(self, item) -> None:
        """`check_scores` for one labeled item (unlabeled items pass); a `read_jsonl(check=...)` callback, so the
        error names the file and line."""
        self.check_scores(item.scores or {})

    def as_prompt_text(self) -> str:
        """The rubric in words, for judges and annotators."""
        parts = []
        for d in self.dimensions:
            parts.append(f"### {d.name}\n{d.description.strip()}")
            for lv in sorted(d.levels, key=lambda lv: lv.score):
                parts.append(f"- {lv.score} ({lv.label}): {lv.description.strip()}")
        return "\n".join(parts)


def load_rubric(path_or_name: str | Path) -> Rubric:
    """A path to a YAML file, or the name of one in configs/rubrics/ (e.g. 'hpc', 'mrbench')."""
    path = Path(path_or_name)
    if not path.exists() and (RUBRIC_DIR / f"{path_or_name}.yaml").exists():
        path = RUBRIC_DIR / f"{path_or_name}.yaml"
    if not path.exists():
        raise ConfigError(f"{path}: rubric not found (give a YAML path or one of {sorted(p.stem for p in RUBRIC_DIR.glob('*.yaml'))})")
    return validate(Rubric, load_yaml(path), str(path))


def majority(values: list[int]) -> int:
    """Most frequent level; a tie between levels goes to the rounded mean (half rounds up)."""
    counts = Counter(values).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return math.floor(sum(values) / len(values) + 0.5)
    return counts[0][0]
