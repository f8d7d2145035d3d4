"""Shared fixtures. Tiny randomly initialised models for mechanics (they reuse the real tokenizers, which
ship offline); tests never touch the network."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402



@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory) -> str:
    """A 2-layer Llama with SmolLM2's tokenizer and chat template, saved to a folder; returns the path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> str:
    """A 2-layer BERT with MiniLM's tokenizer, saved to a folder; returns the path."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from core.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=512,
    )
    torch.manual_seed(0)
    model = BertModel(config)
    path = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
