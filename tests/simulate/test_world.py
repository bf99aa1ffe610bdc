"""World and Batch: the DESIGN.md contract (shapes, dtypes), exact-s laws, and determinism."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from polysemy.errors import ConfigError
from polysemy.simulate import Batch, World, WorldConfig

from .strategies import world_configs


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_contract_shapes_and_dtypes():
    world = World(WorldConfig(n=256, d=64, s=3))
    assert (world.n, world.d) == (256, 64)
    assert world.V.shape == (256, 64) and world.V.dtype == torch.float32
    assert torch.allclose(world.V.norm(dim=1), torch.ones(256), atol=1e-5)
    assert world.magnitudes.shape == (256,) and world.magnitudes.dtype == torch.float32
    assert world.expected_frequencies.dtype == np.float64 and world.expected_frequencies.shape == (256,)
    assert world.f == pytest.approx(3 / 256) and world.expected_l0 == pytest.approx(3.0)
    x = world.sample(512, _gen(0))
    assert x.shape == (512, 64) and x.dtype == torch.float32
    batch = world.sample_with_truth(512, _gen(0))
    assert isinstance(batch, Batch)
    assert batch.indices.shape == (512, 3) and batch.indices.dtype == torch.int64
    assert batch.values.shape == (512, 3) and batch.values.dtype == torch.float32
    assert torch.equal(batch.x, x)
    assert batch.dense_codes(256).shape == (512, 256)


@given(cfg=world_configs(supports=("exact",)), batch_size=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_exact_s_worlds_have_exactly_s_distinct_nonnegative_coefficients(cfg, batch_size, seed):
    world = World(cfg)
    batch = world.sample_with_truth(batch_size, _gen(seed))
    H = batch.dense_codes(cfg.n)
    assert torch.all((H > 0).sum(dim=1) == cfg.s)
    assert torch.all(H >= 0) and torch.all(batch.values > 0)
    assert torch.all(batch.indices >= 0) and torch.all(batch.indices < cfg.n)
    sorted_idx = batch.indices.sort(dim=1).values
    assert torch.all(sorted_idx[:, 1:] != sorted_idx[:, :-1])  # without replacement


@given(cfg=world_configs(), batch_size=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_every_world_builds_x_from_its_truth(cfg, batch_size, seed):
    world = World(cfg)
    batch = world.sample_with_truth(batch_size, _gen(seed))
    pad = batch.indices < 0
    assert torch.all(batch.values[pad] == 0) and torch.all(batch.values[~pad] > 0)
    lo, hi = cfg.spread
    h = world.magnitudes[batch.indices.clamp(min=0)][~pad]
    ratio = batch.values[~pad] / h  # the spread multiplier, in [lo, hi]
    assert torch.all(ratio >= lo * (1 - 1e-5)) and torch.all(ratio <= hi * (1 + 1e-5))
    clean = batch.dense_codes(cfg.n) @ world.V
    if cfg.noise == 0:
        assert torch.allclose(batch.x, clean, atol=1e-4 * (1 + float(batch.values.sum(1).max())))
    # no index repeats within a sample (padding aside)
    H_count = batch.active_mask(cfg.n).sum(dim=1)
    assert torch.all(H_count == (~pad).sum(dim=1))


@given(cfg=world_configs(), seed=st.integers(0, 2**32), batch_size=st.integers(1, 32))
def test_same_seed_gives_same_samples(cfg, seed, batch_size):
    a, b = World(cfg), World(cfg)
    assert torch.equal(a.V, b.V) and torch.equal(a.magnitudes, b.magnitudes)
    s1, s2 = a.stream(batch_size, seed=seed, with_truth=True), b.stream(batch_size, seed=seed, with_truth=True)
    for _ in range(2):
        x1, x2 = next(s1), next(s2)
        assert torch.equal(x1.x, x2.x) and torch.equal(x1.indices, x2.indices) and torch.equal(x1.values, x2.values)
    # the stream is exactly sample() with a generator seeded the same way
    first = next(a.stream(batch_size, seed=seed))
    assert torch.equal(first, a.sample(batch_size, _gen(seed)))


def test_different_data_seeds_differ_and_world_seed_changes_dictionary():
    world = World(WorldConfig(n=64, d=16, s=3))
    assert not torch.equal(next(world.stream(8, seed=0)), next(world.stream(8, seed=1)))
    assert not torch.equal(world.V, World(WorldConfig(n=64, d=16, s=3, seed=1)).V)


_CHECKSUM = (
    "import hashlib, torch; from polysemy.simulate import World, get_preset; "
    "w = World(get_preset('paper-toy')); b = next(w.stream(64, seed=7, with_truth=True)); "
    "print(hashlib.sha256(b.x.numpy().tobytes() + b.indices.numpy().tobytes()).hexdigest())"
)


def test_samples_are_identical_in_another_process():
    out = subprocess.run([sys.executable, "-c", _CHECKSUM], capture_output=True, text=True, check=True, timeout=120)
    from polysemy.simulate import get_preset

    b = next(World(get_preset("paper-toy")).stream(64, seed=7, with_truth=True))
    here = hashlib.sha256(b.x.numpy().tobytes() + b.indices.numpy().tobytes()).hexdigest()
    assert out.stdout.strip() == here


def test_noise_has_the_configured_standard_deviation():
    world = World(WorldConfig(n=32, d=16, s=2, noise=0.3))
    batch = world.sample_with_truth(4000, _gen(0))
    residual = batch.x - batch.dense_codes(32) @ world.V
    # 64,000 N(0, 0.09) draws: the sample std has relative sd ~ 1/sqrt(2 * 64000) = 0.3%; allow 2%.
    assert float(residual.std()) == pytest.approx(0.3, rel=0.02)


def test_bad_batch_size_and_seed_are_config_errors():
    world = World(WorldConfig(n=16, d=4, s=2))
    with pytest.raises(ConfigError, match="^batch_size"):
        world.sample(0, _gen(0))
    with pytest.raises(ConfigError, match="^seed"):
        world.stream(4, seed=-1)


def test_matrix_dictionary_from_list_and_npy(tmp_path):
    V = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    path = tmp_path / "V.npy"
    np.save(path, V)
    for source in (str(path), tuple(map(tuple, V.tolist()))):
        world = World(WorldConfig(n=3, d=2, s=1, dictionary="matrix", matrix=source))
        assert torch.equal(world.V, torch.tensor(V, dtype=torch.float32))  # rows used as given
