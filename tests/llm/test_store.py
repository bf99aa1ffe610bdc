"""The store round-trips the model's activations and token ids, and resumes an interrupted extraction."""

import json

import pytest
import torch

pytest.importorskip("transformers", reason="the LLM extras (transformers) are not installed")

from polysemy.errors import ConfigError  # noqa: E402
from polysemy.llm import extract as extract_module  # noqa: E402
from polysemy.llm.extract import extract_activations  # noqa: E402
from polysemy.llm.sites import capture  # noqa: E402
from polysemy.llm.store import ActivationStore, shard_path  # noqa: E402


def _extract(lm, ctx, path, **kw):
    kw = {"layer": 2, "contexts_per_shard": 5, "batch_contexts": 3, "progress": False, **kw}
    return extract_activations(lm, ctx, path, **kw)


def test_store_round_trip(tiny_lm, tiny_contexts, tmp_path):
    store = _extract(tiny_lm, tiny_contexts, tmp_path / "s")
    want = capture(tiny_lm.model, tiny_contexts, 2, "resid")[:, 1:, :]          # BOS dropped
    assert store.n_shards == 3 and store.n_tokens == 12 * 8 and store.d == 32
    got = torch.cat([store.shard(i)[0] for i in range(store.n_shards)]).view(12, 8, 32)
    # equal up to float rounding: extraction batches 3 contexts at a time, the reference all 12
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert torch.equal(store.tokens(), tiny_contexts)
    # row -> (context, position) addresses the token whose activation it is
    acts1, tok1 = store.shard(1)
    c, p = store.row_location(13)
    torch.testing.assert_close(acts1[13], want[5 + c, p - 1], rtol=1e-5, atol=1e-6)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    for key in ("model", "layer", "site", "n_tokens", "context_length", "normalization", "dtype"):
        assert key in meta
    # normalised reading matches applying the stored normaliser
    x = store.activations()
    assert x.shape[0] == meta["n_kept_tokens"]
    assert abs(float(x.norm(dim=1).mean()) - 1.0) < 1e-3      # calibrated on these very tokens


def test_killed_extraction_resumes_where_it_stopped(tiny_lm, tiny_contexts, tmp_path, monkeypatch):
    reference = _extract(tiny_lm, tiny_contexts, tmp_path / "ref")
    real_write = extract_module.write_shard
    written = []

    def dying_write(root, index, *rest):
        if len(written) == 2:
            raise KeyboardInterrupt   # killed while working on the third shard
        written.append(index)
        real_write(root, index, *rest)

    monkeypatch.setattr(extract_module, "write_shard", dying_write)
    with pytest.raises(KeyboardInterrupt):
        _extract(tiny_lm, tiny_contexts, tmp_path / "s")
    with pytest.raises(ConfigError, match="incomplete"):
        ActivationStore(tmp_path / "s")
    first_mtime = shard_path(tmp_path / "s", 0).stat().st_mtime_ns

    resumed = []
    monkeypatch.setattr(extract_module, "write_shard",
                        lambda root, index, *rest: (resumed.append(index), real_write(root, index, *rest)))
    store = _extract(tiny_lm, tiny_contexts, tmp_path / "s")
    assert resumed == [2]                                       # only the missing shard was computed
    assert shard_path(tmp_path / "s", 0).stat().st_mtime_ns == first_mtime
    for i in range(3):
        assert torch.equal(store.shard(i)[0], reference.shard(i)[0])
    assert store.meta["normalization"] == reference.meta["normalization"]


def test_other_settings_in_the_same_folder_are_refused(tiny_lm, tiny_contexts, tmp_path):
    _extract(tiny_lm, tiny_contexts, tmp_path / "s")
    with pytest.raises(ConfigError, match="other settings"):
        _extract(tiny_lm, tiny_contexts, tmp_path / "s", layer=3)


def test_stream_is_a_seeded_shuffle_of_every_token(tiny_lm, tiny_contexts, tmp_path):
    store = _extract(tiny_lm, tiny_contexts, tmp_path / "s")
    n = store.meta["n_kept_tokens"]
    x = store.activations()
    it = store.stream(batch_size=1, seed=5, buffer_shards=3)
    epoch = torch.cat([next(it) for _ in range(n)])
    # all shards in one buffer and batch 1: the first epoch is a permutation of the stored rows
    assert torch.equal(epoch[torch.argsort(epoch[:, 0])], x[torch.argsort(x[:, 0])])
    assert not torch.equal(epoch, x)
    again = store.stream(batch_size=1, seed=5, buffer_shards=3)
    assert torch.equal(torch.cat([next(again) for _ in range(n)]), epoch)
    batches = store.stream(batch_size=7, seed=0, buffer_shards=1)
    assert all(next(batches).shape == (7, 32) for _ in range(40))   # endless, across epochs


def test_bfloat16_shards_hold_the_rounded_activations(tiny_lm, tiny_contexts, tmp_path):
    full = _extract(tiny_lm, tiny_contexts, tmp_path / "f32")
    half = _extract(tiny_lm, tiny_contexts, tmp_path / "bf16", store_dtype="bfloat16")
    from safetensors.torch import load_file

    assert load_file(str(shard_path(tmp_path / "bf16", 0)))["acts"].dtype == torch.bfloat16
    assert half.meta["store_dtype"] == "bfloat16" and half.shard(0)[0].dtype == torch.float32
    for i in range(3):   # bf16 keeps 8 bits of mantissa: relative error <= 2^-8
        torch.testing.assert_close(half.shard(i)[0], full.shard(i)[0].bfloat16().float(), rtol=0, atol=0)
    assert (half.shard(0)[0] - full.shard(0)[0]).abs().max() <= 2 ** -8 * full.shard(0)[0].abs().max()


def test_an_uninterrupted_extraction_never_reads_its_store_back(tiny_lm, tiny_contexts, tmp_path, monkeypatch):
    reads = []
    real_read = extract_module._read
    monkeypatch.setattr(extract_module, "_read", lambda out, i: (reads.append(i), real_read(out, i))[1])
    store = _extract(tiny_lm, tiny_contexts, tmp_path / "s", calibration_tokens=20)
    assert reads == []
    # and its sink count and normaliser are those of the stored tokens
    acts = torch.cat([store.shard(i)[0] for i in range(3)])
    assert store.meta["n_sink_tokens"] == int(store.normalizer.is_sink(acts).sum())
    fitted = extract_module.Normalizer.fit(acts[:20])
    torch.testing.assert_close(store.normalizer.mean_D, fitted.mean_D)
