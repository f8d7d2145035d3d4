"""The level an ordinal head predicts: argmax of its logits plus a per-level shift set at training time, so that
`rare_level_boost` moves predictions between the most probable level (0) and the class-weighted argmax (1)."""
import json

import numpy as np
import pytest
import torch

from core.rubric import load_rubric
from hpc_rm.data import level_logit_shift
from core.reward_model import HPCRewardModel
from hpc_rm.train import TrainConfig, train_reward_model
from tests.test_rm_train_score_resume import synthetic_items

LABELS = np.array([0] * 80 + [1] * 5 + [2] * 15)  # level 1 is rare


def test_shift_is_zero_when_boost_matches_the_weighting_and_the_log_prior_when_boost_is_zero():
    assert level_logit_shift(LABELS, 3, "balanced", 1.0) == pytest.approx([0, 0, 0])
    assert level_logit_shift(LABELS, 3, "sqrt", 0.5) == pytest.approx([0, 0, 0])
    calibrated = np.array(level_logit_shift(LABELS, 3, "balanced", 0.0))
    prior = np.log(np.array([81, 6, 16]) / 103)  # add-one smoothed frequencies
    assert calibrated == pytest.approx(prior - prior.mean(), abs=1e-5)
    partial = np.array(level_logit_shift(LABELS, 3, "balanced", 0.7))
    assert partial == pytest.approx(0.3 * calibrated, abs=1e-5)
    # Unweighted training with boost > 0 leans towards the rare level instead.
    assert np.argmax(level_logit_shift(LABELS, 3, "none", 1.0)) == 1


def test_trained_model_stores_the_shift_and_uses_it_for_levels_not_scores(tiny_encoder, tmp_path):
    rubric = load_rubric("hpc")
    cfg = TrainConfig(backbone=tiny_encoder, rubric="hpc", epochs=1, batch_size=8, max_length=48, progress=False,
                      rare_level_boost=0.0, checkpoints=False)
    items = synthetic_items(48)
    rm = train_reward_model(cfg, items, rubric, tmp_path / "ckpt")
    rm.save_pretrained(tmp_path / "rm")
    stored = json.loads((tmp_path / "rm" / "config.json").read_text())["level_logit_shift"]
    assert set(stored) == set(rubric.names)
    loaded = HPCRewardModel.from_pretrained(tmp_path / "rm")
    name = rubric.names[0]
    shift = torch.tensor(stored[name])
    # Logits that tie everywhere: the level is the one the shift favours; the score is the plain expected value.
    outputs = {d: torch.zeros(2, 3) for d in rubric.names}
    assert loaded.levels_from_outputs(outputs)[name].tolist() == [int(shift.argmax())] * 2
    assert loaded.scores_from_outputs(outputs)[name].tolist() == pytest.approx([1.0, 1.0])
