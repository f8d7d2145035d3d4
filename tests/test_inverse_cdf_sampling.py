"""The inverse-CDF sampler draws from the same distribution as torch.multinomial, never picks a zero-weight entry,
hands every other call to torch, and puts torch.multinomial back even when the block fails."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from core.sampling import inverse_cdf_sampling, sample_inverse_cdf


def test_frequencies_match_the_probabilities():
    torch.manual_seed(0)
    logits = torch.randn(40) * 2
    logits[[3, 17, 30]] = -float("inf")  # masked entries, as after top-p/top-k
    probs = torch.softmax(logits, -1)
    n = 200_000
    draws = sample_inverse_cdf(probs.expand(n, -1).contiguous()).squeeze(1).numpy()
    counts = np.bincount(draws, minlength=40)
    assert counts[[3, 17, 30]].sum() == 0
    p = probs.double().numpy()
    keep = p > 0
    expected = p[keep] / p[keep].sum() * n
    # A wrong sampler (e.g. off by one index) fails this by a huge margin; the right one passes.
    assert chisquare(counts[keep], expected).pvalue > 1e-3
    assert chisquare(np.roll(counts[keep], 1), expected).pvalue < 1e-6


def test_rows_are_sampled_independently_from_their_own_distribution():
    probs = torch.zeros(3, 5)
    probs[0, 4] = probs[1, 0] = 1.0
    probs[2, [1, 2]] = 0.5
    draws = torch.cat([sample_inverse_cdf(probs) for _ in range(200)], 1)
    assert (draws[0] == 4).all() and (draws[1] == 0).all()
    assert set(draws[2].tolist()) == {1, 2}


def test_multinomial_is_swapped_only_inside_the_block():
    original = torch.multinomial
    probs = torch.tensor([[0.0, 1.0, 0.0]])
    with inverse_cdf_sampling():
        assert torch.multinomial is not original
        assert torch.multinomial(probs, num_samples=1).tolist() == [[1]]
        # Anything but one sample per row of a 2-D tensor goes to torch itself.
        assert sorted(torch.multinomial(torch.tensor([0.5, 0.5]), 2).tolist()) == [0, 1]
    assert torch.multinomial is original
    with pytest.raises(RuntimeError), inverse_cdf_sampling():
        raise RuntimeError("generation failed")
    assert torch.multinomial is original


def test_generate_samples_through_it(tiny_causal_lm):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    calls = []
    with inverse_cdf_sampling():
        swapped = torch.multinomial

        def counting(*args, **kwargs):
            calls.append(1)
            return swapped(*args, **kwargs)

        torch.multinomial = counting
        try:
            out = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=5, min_new_tokens=5, do_sample=True,
                                 pad_token_id=0)
        finally:
            torch.multinomial = swapped
    assert out.shape == (1, 8) and len(calls) == 5
