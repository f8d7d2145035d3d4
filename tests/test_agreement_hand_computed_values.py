"""Agreement statistics match values worked out by hand (and Krippendorff's own textbook example)."""

import numpy as np
import pytest

from annotation.agreement import consensus, krippendorff_alpha, pairwise_agreement


def test_pairwise_agreement_small_vectors():
    # a = [0,1,2,2], b = [0,2,2,1], 3 levels.
    # exact: positions 0 and 2 agree -> 2/4 = 0.5.
    # QWK: weights w_ij = (i-j)^2/4. Observed pairs (0,0),(1,2),(2,2),(2,1) -> sum w*O = 1/4 + 1/4 = 0.5.
    #   Marginals a = b = [1,1,2]; E_ij = a_i b_j / 4 -> sum w*E = (1/16) * sum (i-j)^2 a_i b_j
    #   = (1/16) * (1+1 + 8+8 + 2+2) = 22/16 = 1.375. kappa = 1 - 0.5/1.375 = 7/11.
    # Spearman: ranks a = [1,2,3.5,3.5], b = [1,3.5,3.5,2]; centred dot product 2.25, each variance 4.5 -> 0.5.
    stats = pairwise_agreement([0, 1, 2, 2], [0, 2, 2, 1], n_levels=3)
    assert stats["n"] == 4
    assert stats["exact"] == pytest.approx(0.5)
    assert stats["qwk"] == pytest.approx(7 / 11)
    assert stats["spearman"] == pytest.approx(0.5)


def test_qwk_penalises_far_disagreements_more():
    # Same exact agreement (3/4), but the one disagreement is 0-vs-1 in `near` and 0-vs-2 in `far`.
    # Weights w_ij = (i-j)^2/4, E_ij = a_i b_j / n (n = 4), kappa = 1 - sum(w*O) / sum(w*E).
    # near: b = [1,1,2,2]: sum w*O = w01 = 1/4; marginals a = [1,1,2], b = [0,2,2];
    #   sum w*a_i*b_j = 1*2*(1/4) + 1*2*1 + 1*2*(1/4) + 2*2*(1/4) = 4 -> sum w*E = 1 -> kappa = 3/4.
    # far: b = [2,1,2,2]: sum w*O = w02 = 1; marginals b = [0,1,3];
    #   sum w*a_i*b_j = 1*1*(1/4) + 1*3*1 + 1*3*(1/4) + 2*1*(1/4) = 4.5 -> sum w*E = 9/8 -> kappa = 1/9.
    assert pairwise_agreement([0, 1, 2, 2], [1, 1, 2, 2], n_levels=3)["qwk"] == pytest.approx(3 / 4)
    assert pairwise_agreement([0, 1, 2, 2], [2, 1, 2, 2], n_levels=3)["qwk"] == pytest.approx(1 / 9)


def test_alpha_nominal_case_by_hand():
    # Two coders, 4 items, 2 levels: A = [0,0,1,1], B = [0,1,1,1]. With two levels ordinal = nominal.
    # Coincidences: o00 = 2, o01 = o10 = 1, o11 = 4; n0 = 3, n1 = 5, n = 8.
    # alpha = 1 - (n-1) * (o01+o10) / (2 * n0 * n1) = 1 - 7*2/30 = 8/15.
    assert krippendorff_alpha([[0, 0, 1, 1], [0, 1, 1, 1]], n_levels=2) == pytest.approx(8 / 15)


def test_alpha_ordinal_case_by_hand():
    # A = [0,1,2], B = [0,2,2]. o00 = 2, o12 = o21 = 1, o22 = 2; n0 = 2, n1 = 1, n2 = 3, n = 6.
    # Ordinal distances delta^2_ck = (sum_{g=c..k} n_g - (n_c+n_k)/2)^2:
    #   d01 = (3-1.5)^2 = 2.25, d12 = (4-2)^2 = 4, d02 = (6-2.5)^2 = 12.25.
    # alpha = 1 - (n-1) * sum o*d / sum n_c n_k d = 1 - 5*(2*4) / (2*(2*2.25 + 3*4 + 6*12.25)) = 1 - 40/180 = 7/9.
    assert krippendorff_alpha([[0, 1, 2], [0, 2, 2]], n_levels=3) == pytest.approx(7 / 9)


def test_alpha_textbook_example_with_missing_values():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", 4 observers x 12 units, values 1..5,
    # with missing values; the paper reports ordinal alpha = 0.815. Levels shifted to 0..4 (ordinal alpha is
    # invariant to the shift).
    nan = None
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    shifted = [[None if v is None else v - 1 for v in row] for row in data]
    assert krippendorff_alpha(shifted, n_levels=5) == pytest.approx(0.815, abs=5e-4)
    as_nan = np.array([[np.nan if v is None else v for v in row] for row in shifted], dtype=float)
    assert krippendorff_alpha(as_nan, n_levels=5) == pytest.approx(0.815, abs=5e-4)


# item -> labels of raters a..e: "clear" has a majority (2, 2, 1); "split" is a 0-vs-2 tie (mean 1);
# "tie" is 1 vs 2 (mean 1.5 rounds half up to 2); "three" is 0,1,2,2,1 (1 and 2 tie, mean 1.2 -> 1).
LABELS = {"clear": [2, 2, 1], "split": [0, 2], "tie": [1, 2], "three": [0, 1, 2, 2, 1]}
RATINGS = {
    rater: {item: {"Helpfulness": labels[k]} for item, labels in LABELS.items() if k < len(labels)}
    for k, rater in enumerate("abcde")
}


def test_consensus_is_majority_then_rounded_mean():
    assert consensus(RATINGS, "Helpfulness") == {"clear": 2, "split": 1, "tie": 2, "three": 1}
