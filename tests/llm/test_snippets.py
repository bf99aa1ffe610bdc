"""Snippet pages: byte-level tokens merged, left context across context boundaries, duplicates removed,
examples from every activation quantile band as well as the top."""

import re

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the LLM extras (transformers) are not installed")

from polysemy.llm.extract import extract_activations  # noqa: E402
from polysemy.llm.snippets import BANDS, feature_activations, pick_examples, render, snippets_page  # noqa: E402


@pytest.fixture(scope="module")
def byte_tokenizer():
    """A byte-level BPE tokenizer trained here on ASCII text: any non-ASCII character is several tokens."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<s>"])
    tok.train_from_iterator(["the snow man stands in the snow"] * 20, trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>")


class Words:
    """decode(ids) = 'w<id>' words joined by spaces."""

    def decode(self, ids):
        return " ".join(f"w{i}" for i in ids)


def test_byte_level_tokens_are_merged_and_marked_whole(byte_tokenizer):
    text = "the snow man \u2603 stands"
    ids = byte_tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = [byte_tokenizer.decode([i]) for i in ids]
    assert any("\ufffd" in p for p in pieces)               # decoded one by one, the snowman breaks
    first_byte = next(k for k, p in enumerate(pieces) if "\ufffd" in p)
    html_text, plain = render(byte_tokenizer, np.array(ids), first_byte, window=10)
    assert plain == text and "\ufffd" not in html_text
    assert re.search("<mark>[^<]*\u2603[^<]*</mark>", html_text)


def test_left_context_runs_across_the_context_boundary():
    stream = np.arange(100, 140)          # two contexts of 20 tokens each, concatenated
    html_text, plain = render(Words(), stream, 20, window=4)    # the first token of the second context
    assert plain.startswith("w116 w117 w118 w119 w120")
    assert "<mark>" in html_text and "w120" in html_text.split("<mark>")[1]


def test_examples_come_from_the_top_and_every_quantile_band():
    values = np.arange(1, 401, dtype=float)
    picks = pick_examples(values, top=5, per_band=2, seed=0)
    assert [i for band, i in picks if band == "top"] == [399, 398, 397, 396, 395]
    for lo, hi in BANDS:
        label = f"{int(lo * 100)}-{int(hi * 100)}%"
        chosen = [values[i] for band, i in picks if band == label]
        assert len(chosen) == 2 and all(lo * 400 < v <= hi * 400 for v in chosen), label
    assert len({i for _, i in picks}) == len(picks)
    assert pick_examples(np.zeros(0), 5, 2) == []


class ReluSAE:
    """width = d, acts = relu(x): feature j fires where coordinate j is positive."""

    def __init__(self, d):
        self.width, self.W_dec = d, torch.eye(d)

    def encode(self, x):
        return torch.relu(x)


def test_page_removes_duplicates_and_draws_histograms(tiny_lm, tmp_path):
    one = torch.randint(3, 97, (1, 8), generator=torch.Generator().manual_seed(4))
    ctx = torch.cat([torch.ones(12, 1, dtype=torch.int64), one.repeat(12, 1)], dim=1)   # 12 identical contexts
    store = extract_activations(tiny_lm, ctx, tmp_path / "s", layer=2, contexts_per_shard=5, progress=False)
    sae = ReluSAE(32)
    found = feature_activations(sae, store, [0, 1])
    x = store.activations()
    assert found[0][0].size == int((x[:, 0] > 0).sum())
    page = snippets_page(sae, store, Words(), [0, 1], (x > 0).float().mean(0).numpy(), "t", per_feature=12,
                         window=3, per_band=1)
    for block in page.split("<h2>")[1:]:
        rows = re.findall(r"<td>(.*?)</td></tr>", block)
        assert len(rows) == len(set(rows)) > 0        # every text once per feature
        assert len(rows) < 12                         # the same window in 12 identical contexts, shown once
    assert page.count("<svg") == 3                    # feature density + one histogram per feature
