"""`completion_logprobs` batches left-padded rows and keeps only the completion's logits; each completion's
log-probabilities must equal those of the sequence scored alone, whatever the prompt and completion lengths."""
from __future__ import annotations

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from policy.rollout import completion_logprobs


def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(config).eval()


def alone(model, prompt, completion, temperature):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float() / temperature
    logps = torch.log_softmax(logits[:-1], dim=-1).gather(-1, ids[0, 1:, None]).squeeze(-1)
    return logps[len(prompt) - 1:].numpy()


def test_batched_left_padded_logprobs_equal_each_sequence_alone():
    model = tiny_llama()
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(1, 64, p).tolist(), rng.integers(1, 64, c).tolist())
             for p, c in [(3, 5), (11, 1), (7, 9), (2, 2), (15, 6)]]
    got = completion_logprobs(model, pairs, temperature=0.7, batch_size=3, pad_id=0)
    for (prompt, completion), values in zip(pairs, got, strict=True):
        assert values.shape == (len(completion),)
        np.testing.assert_allclose(values, alone(model, prompt, completion, 0.7), atol=1e-4)
