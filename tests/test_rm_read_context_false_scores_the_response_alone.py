"""`--train.read-context false`: the RM scores a response without its dialogue or profile, in training and in
scoring, and a saved model keeps that setting."""
import numpy as np

from core.rubric import load_rubric
from core.reward_model import HPCRewardModel
from hpc_rm.train import TrainConfig, build_model

DIALOGUES = ["## Dialogue so far\nStudent: 3 x 4 = 12, so the answer is 7.",
             "## Student profile\nGrade 5, likes football.\n\n## Dialogue so far\nStudent: I think it is 40."]
RESPONSE = "Let's check your second step together: what is 3 x 4?"


def test_response_only_rm_ignores_the_context_and_keeps_the_setting_when_saved(tiny_encoder, tmp_path):
    rubric = load_rubric("hpc")
    reading = HPCRewardModel.from_backbone(tiny_encoder, rubric, max_length=48, max_response_tokens=24).eval()
    assert reading.encode(DIALOGUES[:1], [RESPONSE]) != reading.encode(DIALOGUES[1:], [RESPONSE])
    rm = build_model(TrainConfig(backbone=tiny_encoder, rubric="hpc", read_context=False, max_length=48,
                                 max_response_tokens=24), rubric).eval()
    assert rm.spec.read_context is False
    first, second = rm.encode(DIALOGUES, [RESPONSE, RESPONSE])
    assert first == second
    assert first["input_ids"] == rm.encode([""], [RESPONSE])[0]["input_ids"]
    scores = rm.score(DIALOGUES, [RESPONSE, RESPONSE])
    assert all(np.isclose(s[0], s[1]) for s in scores.values())
    rm.save_pretrained(tmp_path / "rm")
    loaded = HPCRewardModel.from_pretrained(tmp_path / "rm").eval()
    assert loaded.spec.read_context is False
    reloaded = loaded.score(DIALOGUES, [RESPONSE, RESPONSE])
    assert all(np.allclose(scores[d], reloaded[d], atol=1e-5) for d in scores)
