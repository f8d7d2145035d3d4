"""calibration=rank turns a judge that puts nearly everything in one level into levels by rank of its expected
scores; the majority vote stays in meta."""
import numpy as np
import pytest

from annotation.label import calibrate_by_rank, rank_levels
from core.rubric import load_rubric
from core.schema import LabeledItem


def test_rank_levels_cut_at_the_shares():
    values = np.array([1.01, 1.02, 1.03, 1.04, 1.05, 1.06])
    assert rank_levels(values, [1, 1, 1]).tolist() == [0, 0, 1, 1, 2, 2]
    assert rank_levels(values, [0.5, 0.0, 0.5]).tolist() == [0, 0, 0, 2, 2, 2]
    assert rank_levels(values[::-1], [1, 1, 1]).tolist() == [2, 2, 1, 1, 0, 0]


def test_calibration_replaces_levels_and_keeps_the_vote():
    rubric = load_rubric("hpc")
    items = []
    for i, ev in enumerate([1.0, 1.1, 1.2, 1.3, 1.4, 1.5]):
        items.append(LabeledItem(id=f"i{i}", context="c", response="r", annotator="llm:local",
                                 scores={n: 1 for n in rubric.names},
                                 meta={"expected": {"Helpfulness": ev, "Personalization": 2 - ev, "Creativity": ev}}))
    out = calibrate_by_rank(items, rubric, None)
    assert [x.scores["Helpfulness"] for x in out] == [0, 0, 1, 1, 2, 2]
    assert [x.scores["Personalization"] for x in out] == [2, 2, 1, 1, 0, 0]
    assert all(x.meta["majority"] == {n: 1 for n in rubric.names} for x in out)
    with pytest.raises(ValueError, match="calibration_shares: Helpfulness has 3 levels"):
        calibrate_by_rank(items, rubric, [0.5, 0.5])
