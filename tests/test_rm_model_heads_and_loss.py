"""HPC-RM mechanics on tiny random backbones: heads per dimension, scores in range, masked loss, any rubric,
save/load round trip, long contexts cut from the left."""
import numpy as np
import pytest
import torch

from core.rubric import Rubric, load_rubric
from core.schema import PROFILE_HEADER
from hpc_rm.data import MISSING, class_weights
from core.reward_model import HPCRewardModel
from hpc_rm.train import head_loss


def small_rubric(n_dims: int, n_levels: int = 3) -> Rubric:
    levels = [{"score": k, "label": f"L{k}", "description": f"level {k}"} for k in range(n_levels)]
    return Rubric(name=f"r{n_dims}", dimensions=[
        {"name": f"D{j}", "description": f"dimension {j}", "levels": levels} for j in range(n_dims)])


CONTEXTS = ["## Student profile\nGrade level: 5\n\n## Dialogue so far\nStudent: 3*4=7?", "Student: what is 2+2?"]
RESPONSES = ["Not quite: 3*4 is three groups of four. Count them!", "Great question. What is 2+1?"]


@pytest.mark.parametrize("n_dims", [2, 4])
@pytest.mark.parametrize("head", ["ordinal", "regression"])
def test_scores_stay_in_level_range_for_any_rubric(tiny_encoder, n_dims, head):
    rubric = small_rubric(n_dims)
    rm = HPCRewardModel.from_backbone(tiny_encoder, rubric, head=head, max_length=64)
    scores = rm.score(CONTEXTS, RESPONSES)
    assert list(scores) == rubric.names == rm.dimensions
    for values in scores.values():
        assert values.shape == (2,) and np.all((values >= 0) & (values <= 2))
    weights = {name: float(k + 1) for k, name in enumerate(rubric.names)}
    expected = sum(w * scores[n] for n, w in weights.items())
    assert np.allclose(rm.reward(scores, weights), expected)
    assert np.allclose(rm.reward(scores), sum(scores[n] / n_dims for n in rubric.names), atol=1e-6)


def test_decoder_uses_last_token_and_round_trips(tiny_causal_lm, tmp_path):
    rm = HPCRewardModel.from_backbone(tiny_causal_lm, load_rubric("hpc"), max_length=64)
    assert rm.spec.decoder and rm.spec.pooling == "last"
    before = rm.score(CONTEXTS, RESPONSES, batch_size=1)
    rm.save_pretrained(tmp_path / "rm")
    again = HPCRewardModel.from_pretrained(tmp_path / "rm")
    after = again.score(CONTEXTS, RESPONSES, batch_size=2)  # other batching, same numbers
    for name in before:
        assert np.allclose(before[name], after[name], atol=1e-5)
    assert again.weights == rm.weights and again.rubric.hash == rm.rubric.hash


def test_missing_labels_give_no_gradient_to_their_head(tiny_encoder):
    rm = HPCRewardModel.from_backbone(tiny_encoder, small_rubric(2), max_length=64)
    rm.train()
    batch = rm.tokenizer(CONTEXTS, RESPONSES, return_tensors="pt", padding=True)
    outputs = rm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    labels = torch.tensor([[2, MISSING], [0, MISSING]])
    weights = {name: torch.ones(3) for name in rm.dimensions}
    loss = head_loss(rm, outputs, labels, weights)
    loss.backward()
    assert rm.heads["D0"].weight.grad.abs().sum() > 0
    assert rm.heads["D1"].weight.grad.abs().sum() == 0
    # The loss of the labeled head is plain cross-entropy averaged over the two items.
    expected = torch.nn.functional.cross_entropy(outputs["D0"], labels[:, 0]) / 2
    assert torch.isclose(loss, expected, atol=1e-6)


def test_rare_levels_weigh_more():
    labels = np.array([2] * 8 + [1] * 2 + [MISSING] * 5)
    w = class_weights(labels, 3, "balanced")
    assert w[1] > w[2] and w[0] == 1.0
    assert np.isclose((w[labels[labels != MISSING]]).mean(), 1.0)
    assert np.allclose(class_weights(labels, 3, "none"), 1.0)


def test_long_context_keeps_profile_and_last_turn(tiny_encoder):
    rm = HPCRewardModel.from_backbone(tiny_encoder, small_rubric(2), max_length=96, max_response_tokens=24)
    context = (f"{PROFILE_HEADER}\nGrade level: 4th grade\n\n## Dialogue so far\n"
               + "Tutor: keep going.\n" * 200 + "Student: LASTTURN 7 times 8 is 54")
    response = "Check 7 times 8 again. " * 30
    features = rm.encode([context], [response])[0]
    assert len(features["input_ids"]) <= 96
    text = rm.tokenizer.decode(features["input_ids"])
    assert "student profile" in text and "lastturn" in text
    assert sum(features["response_mask"]) <= 25
