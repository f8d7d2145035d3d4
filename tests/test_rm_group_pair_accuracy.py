"""The within-context pair order metric: what GRPO's group-relative advantages take from the RM."""
import numpy as np

from core.rubric import load_rubric
from core.schema import LabeledItem
from hpc_rm.data import MISSING, group_ids
from hpc_rm.metrics import all_metrics, metrics_table, within_group_pair_accuracy


def test_counts_only_pairs_inside_a_group_with_different_labels():
    truth = np.array([2, 1, 0, 2, 0])
    groups = np.array([0, 0, 0, 1, 1])
    # group 0 ordered right (3 pairs), group 1 wrong (1 pair); across groups 2 > 0 would be "wrong" but must not count
    scores = np.array([1.9, 1.0, 0.1, 0.0, 2.0])
    assert within_group_pair_accuracy(truth, scores, groups) == 3 / 4


def test_ties_count_half_and_equal_labels_and_missing_labels_are_skipped():
    truth = np.array([2, 0, 2, MISSING])
    # pairs: (0, 1) tied -> 0.5, (2, 1) right -> 1; (0, 2) share a label; the unlabeled item would order wrong
    scores = np.array([1.0, 1.0, 2.0, -9.0])
    assert within_group_pair_accuracy(truth, scores, np.zeros(4, dtype=int)) == 0.75


def test_no_comparable_pair_gives_none_and_the_mean_skips_it():
    rubric = load_rubric("hpc")
    n = 4
    truth = np.full((n, len(rubric.names)), MISSING)
    truth[:, 0] = [0, 2, 1, 2]          # first dimension: group 0 ordered right, group 1 wrong
    truth[:, 1] = [1, 1, 2, 2]          # second: labels equal inside each group -> no pair
    groups = np.array([0, 0, 1, 1])
    scores = {d: np.array([0.0, 2.0, 1.5, 0.5]) for d in rubric.names}
    levels = {d: np.array([0, 2, 1, 1]) for d in rubric.names}
    report = all_metrics(rubric, truth, levels, scores, groups)
    first, second = rubric.names[:2]
    assert report["dimensions"][first]["group_pair_accuracy"] == 0.5
    assert report["dimensions"][second]["group_pair_accuracy"] is None
    assert report["mean"]["group_pair_accuracy"] == 0.5
    assert "group_pair_accuracy" in metrics_table(report)
    assert "group_pair_accuracy" not in all_metrics(rubric, truth, levels, scores)["mean"]


def test_group_ids_follow_the_context_group():
    items = [LabeledItem(id=f"dlg{d}:{t}", context="c", response="r", scores={}) for d, t in
             [(1, "a"), (1, "b"), (2, "a"), (1, "c")]]
    assert group_ids(items).tolist() == [0, 0, 1, 0]
