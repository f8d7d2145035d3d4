"""The optional ranking loss: batches hold each context's responses together, and only same-context pairs with
different labels are compared."""
import numpy as np
import torch

from core.rubric import load_rubric
from hpc_rm import train as train_module
from hpc_rm.data import MISSING, GroupedShuffleSampler
from hpc_rm.train import RANK_TEMPERATURE, TrainConfig, rank_loss, train_reward_model
from tests.test_rm_train_score_resume import synthetic_items


def test_sampler_keeps_groups_together_and_reshuffles_per_epoch():
    groups = np.repeat(np.arange(10), [3, 1, 4, 2, 5, 3, 1, 2, 4, 3])
    sampler = GroupedShuffleSampler(groups, seed=0)
    first = list(sampler)
    assert sorted(first) == list(range(len(groups))) and len(sampler) == len(groups)
    order = [int(groups[i]) for i in first]
    runs = [g for k, g in enumerate(order) if k == 0 or order[k - 1] != g]
    assert sorted(runs) == list(range(10))  # each group is one contiguous run
    assert list(sampler) == first  # same epoch, same order (a resumed run replays it)
    sampler.set_epoch(1)
    assert list(sampler) != first


class _FixedScores:
    """Stands in for the RM, with the scores given directly."""
    dimensions = ["D0", "D1"]

    def __init__(self, scores):
        self.scores = scores

    def scores_from_outputs(self, outputs):
        return self.scores


def test_only_same_context_pairs_with_different_labels_count():
    s0 = torch.tensor([1.5, 0.5, 0.0, 2.0], requires_grad=True)
    s1 = torch.tensor([1.0, 1.0, 1.0, 1.0], requires_grad=True)
    labels = torch.tensor([[2, 1], [0, 1], [1, MISSING], [0, 1]])
    groups = torch.tensor([0, 0, 1, 1])
    loss = rank_loss(_FixedScores({"D0": s0, "D1": s1}), {}, labels, groups)
    # D0: pairs (0 over 1) in group 0 and (2 over 3) in group 1; cross-group pairs such as (0 over 3) do not count.
    d0 = -torch.nn.functional.logsigmoid(torch.tensor([(1.5 - 0.5), (0.0 - 2.0)]) / RANK_TEMPERATURE).mean()
    # D1: equal labels in group 0, a missing label in group 1: no pair, contributes 0 but keeps the graph.
    assert torch.isclose(loss, d0 / 2)
    loss.backward()
    # descent raises each better item's score and lowers the worse one's; D1 gets nothing
    assert s0.grad[0] < 0 < s0.grad[1] and s0.grad[2] < 0 < s0.grad[3] and torch.all(s1.grad == 0)


def test_training_with_the_rank_loss_sees_whole_groups(tiny_encoder, tmp_path):
    seen = []
    original = train_module.rank_loss

    def spy(model, outputs, labels, groups):
        seen.append(groups.tolist())
        return original(model, outputs, labels, groups)

    train_module.rank_loss = spy
    try:
        cfg = TrainConfig(rubric="hpc", backbone=tiny_encoder, epochs=1, batch_size=8, max_length=48,
                          rank_loss_weight=1.0, progress=False, checkpoints=False)
        train_reward_model(cfg, synthetic_items(32), load_rubric("hpc"), tmp_path / "ckpt")
    finally:
        train_module.rank_loss = original
    assert len(seen) == 4
    for batch in seen:  # groups are pairs of items and batches hold 8: every group arrives whole
        assert all(batch.count(g) == 2 for g in set(batch))
