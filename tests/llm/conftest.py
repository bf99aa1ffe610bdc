"""Fixtures for the LLM tests: a tiny randomly initialised Llama built from a config (no download)."""

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_lm():
    transformers = pytest.importorskip("transformers", reason="the LLM extras (transformers) are not installed")
    from polysemy.llm.model import LoadedModel

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=True,
    )
    model = transformers.LlamaForCausalLM(config).eval().requires_grad_(False)
    return LoadedModel(model=model, tokenizer=None, name="tiny-random-llama", device="cpu")


@pytest.fixture(scope="session")
def tiny_contexts():
    """12 contexts of 9 tokens, BOS (id 1) in column 0."""
    gen = torch.Generator().manual_seed(1)
    body = torch.randint(3, 97, (12, 8), generator=gen)
    return torch.cat([torch.ones(12, 1, dtype=torch.int64), body], dim=1)
