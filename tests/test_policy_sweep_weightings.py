"""The sweep covers each single-dimension reward and equal weights, and with grid_step every simplex point once."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, load_config
from policy.experiments.sweep import SweepConfig, run_name, weightings

DIMS = ["Helpfulness", "Personalization", "Creativity"]


def test_default_is_corners_plus_equal_weights():
    points = weightings(DIMS, None)
    assert points[:3] == [{"Helpfulness": 1.0, "Personalization": 0.0, "Creativity": 0.0},
                          {"Helpfulness": 0.0, "Personalization": 1.0, "Creativity": 0.0},
                          {"Helpfulness": 0.0, "Personalization": 0.0, "Creativity": 1.0}]
    assert points[3] == pytest.approx({d: 1 / 3 for d in DIMS}, abs=1e-6)
    assert len(points) == 4


def test_grid_adds_each_simplex_point_once():
    points = weightings(DIMS, 0.5)
    assert len(points) == 7  # 3 corners + equal + 3 half-way points (the grid's corners are not repeated)
    assert all(sum(p.values()) == pytest.approx(1.0) for p in points)
    assert len({run_name(p) for p in points}) == 7
    with pytest.raises(ConfigError, match="grid_step"):
        weightings(DIMS, 0.3)


def test_four_dimension_rubric_and_shipped_config():
    assert len(weightings(["a", "b", "c", "d"], None)) == 5
    cfg = load_config(SweepConfig, "configs/policy/sweep.yaml")
    assert cfg.max_steps >= 1 and cfg.eval.max_prompts >= 1 and Path(cfg.grpo_config).is_file()
