"""Token contexts: BOS prepended by us, EOS between documents, deterministic, bounded by the corpus."""

import pytest
import torch

from polysemy.errors import ConfigError
from polysemy.llm.text import load_texts, token_contexts


class WordTokenizer:
    """A stand-in tokenizer: one id per word (3 + word length), BOS 1, EOS 2."""

    bos_token_id, eos_token_id = 1, 2

    def __call__(self, texts, add_special_tokens=True):
        assert add_special_tokens is False
        return {"input_ids": [[3 + len(w) for w in t.split()] for t in texts]}


DOCS = ["a bb ccc", "dddd e", "ff ggg hhhh iiiii", "j"] * 5


def test_contexts_shape_bos_and_separators():
    ctx = token_contexts(WordTokenizer(), DOCS, context_length=5, n_contexts=6, seed=0)
    assert ctx.shape == (6, 5) and ctx.dtype == torch.int64
    assert torch.all(ctx[:, 0] == 1)
    body = ctx[:, 1:].reshape(-1)
    assert (body == 2).sum() >= 3            # documents are separated by EOS
    assert not (body == 1).any()             # BOS only where we put it


def test_contexts_are_deterministic_per_seed():
    a = token_contexts(WordTokenizer(), DOCS, 5, 6, seed=3)
    b = token_contexts(WordTokenizer(), DOCS, 5, 6, seed=3)
    c = token_contexts(WordTokenizer(), DOCS, 5, 6, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_asking_for_more_than_the_corpus_is_a_config_error():
    with pytest.raises(ConfigError, match="tokens must be at most"):
        token_contexts(WordTokenizer(), DOCS, 5, 10_000)


def test_load_texts_reads_json_and_txt(tmp_path):
    (tmp_path / "c.json").write_text('{"x": {"extract": "one two"}, "y": {"extract": " "}, "z": "three"}')
    (tmp_path / "c.txt").write_text("first doc\n\nsecond doc\n")
    assert load_texts(tmp_path / "c.json") == ["one two", "three"]
    assert load_texts(tmp_path / "c.txt") == ["first doc", "second doc"]
    with pytest.raises(ConfigError):
        load_texts(tmp_path / "missing.json")
