"""Missing labels are skipped, and undefined statistics come out as None/NaN, never as a made-up number."""
import math

import pytest

from annotation.agreement import agreement_report, human_agreement, krippendorff_alpha, pairwise_agreement
from core.rubric import load_rubric
from core.schema import DataError, LabeledItem


def test_missing_values_are_dropped_pairwise():
    # Only positions 1 and 3 are labeled by both: (1,1) and (2,0) -> exact 1/2, n = 2.
    stats = pairwise_agreement([None, 1, 2, 2], [0, 1, float("nan"), 0], n_levels=3)
    assert stats["n"] == 2
    assert stats["exact"] == pytest.approx(0.5)


def test_no_overlap_gives_none_everywhere():
    empty = {"n": 0, "exact": None, "qwk": None, "spearman": None}
    assert pairwise_agreement([1, None], [None, 2], n_levels=3) == empty
    assert math.isnan(krippendorff_alpha([[1, None], [None, 2]], n_levels=3))


def test_constant_vectors_give_null_kappa_and_spearman():
    same = pairwise_agreement([2, 2, 2], [2, 2, 2], n_levels=3)
    assert same["exact"] == 1.0 and same["qwk"] is None and same["spearman"] is None
    # one rater constant: kappa is defined (0: no better than chance), Spearman is not
    one = pairwise_agreement([2, 2, 2], [0, 1, 2], n_levels=3)
    assert one["qwk"] == pytest.approx(0.0) and one["spearman"] is None
    assert math.isnan(krippendorff_alpha([[1, 1, 1], [1, 1, 1]], n_levels=3))


def _item(i, who, **scores):
    return LabeledItem(id=f"i{i}", context="c", response="r", annotator=who, scores=scores)


def test_human_agreement_counts_only_items_with_two_labels():
    rubric = load_rubric("hpc")
    items = [
        _item(1, "human:a", Helpfulness=2, Creativity=1), _item(1, "human:b", Helpfulness=2),
        _item(2, "human:a", Helpfulness=0), _item(2, "human:b", Helpfulness=1),
        _item(3, "human:a", Helpfulness=1),  # only one human
        _item(1, "llm:j", Helpfulness=0),  # not a human: ignored here
    ]
    result = human_agreement(items, rubric)
    assert result["Helpfulness"]["n_items"] == 2
    assert result["Helpfulness"]["exact"] == pytest.approx(0.5)
    assert result["Creativity"]["n_items"] == 0
    assert result["Creativity"]["alpha"] is None and result["Creativity"]["qwk"] is None
    assert result["Personalization"]["n_raters"] == 2


def test_conflicting_duplicate_label_is_an_error():
    rubric = load_rubric("hpc")
    items = [_item(1, "human:a", Helpfulness=2), _item(1, "human:a", Helpfulness=0)]
    with pytest.raises(DataError, match="i1.*human:a"):
        agreement_report(items, rubric)


def test_labels_outside_the_rubric_are_an_error():
    rubric = load_rubric("hpc")
    with pytest.raises(DataError, match="scores.Mistake_Location"):
        agreement_report([_item(1, "human:a", Mistake_Location=2)], rubric)


def test_samples_as_a_list_with_a_failed_sample():
    rubric = load_rubric("hpc")
    items = [
        LabeledItem(id=f"i{i}", context="c", response="r", annotator="llm:j", scores={"Helpfulness": s[0]},
                    meta={"samples": [{"Helpfulness": s[0]}, None if i == 0 else {"Helpfulness": s[1]}]})
        for i, s in enumerate([(2, 2), (1, 1), (0, 1)])
    ]
    self_ = agreement_report(items, rubric)["dimensions"]["Helpfulness"]["llm_self"]["llm:j"]
    # sample 1 failed on i0, so the two samples share i1 (agree) and i2 (0 vs 1)
    assert self_["n_items"] == 2 and self_["exact"] == pytest.approx(0.5)
