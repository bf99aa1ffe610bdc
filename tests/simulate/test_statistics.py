"""Measured statistics match the configured ones, within stated bounds.

Frequencies: each feature's count over B samples is Binomial(B, f_i) (exactly, for every support
kind here), so |f_hat_i - f_i| <= Z sqrt(f_i (1 - f_i) / B) with Z = 5. A two-sided 5-sigma miss has
probability < 6e-7 per feature, < 2e-4 over 256 features (Bonferroni), and the seeds are fixed, so a
failure means a wrong sampler, not bad luck.
"""

import math

import numpy as np
import pytest
import torch

from polysemy.simulate import World, WorldConfig, get_preset
from polysemy.simulate.stats import coherence, empirical_frequencies, empirical_l0, empirical_rho2

Z = 5.0


def _batch(cfg, B, seed=0):
    world = World(cfg)
    return world, world.sample_with_truth(B, torch.Generator().manual_seed(seed))


FREQUENCY_WORLDS = {
    "exact": WorldConfig(n=128, d=8, s=5),
    "paper-toy mixture": get_preset("paper-toy").replace(d=8),
    "bernoulli uniform": WorldConfig(n=128, d=8, support="bernoulli", frequency=0.05),
    "bernoulli zipf": WorldConfig(n=128, d=8, s=4, support="bernoulli", frequency_profile="zipf",
                                  zipf_exponent=1.2, f_max=0.4, f_min=0.005),
    "bernoulli explicit": WorldConfig(n=4, d=2, s=1, support="bernoulli", frequency_profile="explicit",
                                      frequencies=(0.9, 0.5, 0.1, 0.01)),
    "cooccur": WorldConfig(n=65, d=8, s=2, support="cooccur", rho2=0.6),
    "hierarchy": WorldConfig(n=110, d=8, s=3, support="hierarchy", hierarchy_children=4, child_probability=0.8),
}


@pytest.mark.parametrize("name", list(FREQUENCY_WORLDS))
def test_measured_frequencies_fall_in_a_binomial_interval(name):
    B = 40_000
    world, batch = _batch(FREQUENCY_WORLDS[name], B)
    f = world.expected_frequencies
    f_hat = empirical_frequencies(batch, world.n)
    half_width = Z * np.sqrt(f * (1 - f) / B) + 1.0 / B
    assert np.all(np.abs(f_hat - f) <= half_width), np.max(np.abs(f_hat - f) / half_width)
    # L0 is a sum of the per-feature counts: same bound, on the mean of B per-sample L0 values, whose
    # variance is at most E[L0^2]; a loose 5-sigma bound with sd <= sqrt(max_K * L0 / B).
    l0 = empirical_l0(batch)
    K = batch.indices.shape[1]
    assert abs(l0 - world.expected_l0) <= Z * math.sqrt(max(K, 1) * world.expected_l0 / B) + 1e-9


def test_zipf_profile_has_its_ends_and_is_decreasing():
    world = World(FREQUENCY_WORLDS["bernoulli zipf"])
    f = world.expected_frequencies
    assert f[0] == pytest.approx(0.4) and f[-1] == pytest.approx(0.005)
    assert np.all(np.diff(f) < 0)
    # pure Zipf by default: f_i = f_max (i+1)^-a, f_max set so that the expected L0 is s
    pure = World(WorldConfig(n=100, d=4, s=3, support="bernoulli", frequency_profile="zipf", zipf_exponent=1.0))
    ranks = np.arange(1, 101)
    assert np.allclose(pure.expected_frequencies, pure.expected_frequencies[0] / ranks)
    assert pure.expected_l0 == pytest.approx(3.0)


def test_paper_toy_has_the_papers_frequency():
    world = World(get_preset("paper-toy"))
    assert world.f == pytest.approx(11.5 / 128)
    assert np.allclose(world.expected_frequencies, 11.5 / 128)
    batch = world.sample_with_truth(20_000, torch.Generator().manual_seed(1))
    counts = (batch.indices >= 0).sum(dim=1)
    assert set(counts.unique().tolist()) == {3, 20}
    # the share of s = 20 samples is Binomial(20000, 1/2)/20000: 5 sigma = 5 * 0.0035
    assert abs(float((counts == 20).double().mean()) - 0.5) <= Z * 0.5 / math.sqrt(20_000)


@pytest.mark.parametrize("rho2", [0.1, 0.5, 0.9])
def test_planted_rho2_comes_out_as_asked(rho2):
    # n = 64, f = 2/64: each feature occurs ~ B f = 2500 times; its partner's conditional frequency
    # has sd sqrt(rho2 (1 - rho2) / 2500) <= 0.010. The max over the 64 within-pair ratios lies in
    # [rho2 - Z sd, rho2 + Z sd] (Bonferroni over 64 ratios as above); cross-pair ratios sit near
    # f = 0.031 with sd 0.003, far below the smallest rho2 tested.
    B = 80_000
    world, batch = _batch(WorldConfig(n=64, d=8, s=2, support="cooccur", rho2=rho2), B, seed=3)
    assert world.expected_rho2 == pytest.approx(rho2)
    sd = math.sqrt(rho2 * (1 - rho2) / (B * 2 / 64 * 0.97))  # 0.97: counts fall up to 3% short at 5 sigma
    assert abs(empirical_rho2(batch, 64) - rho2) <= Z * sd


def test_exact_worlds_rho2_matches_theory():
    # uniform supports: rho2 = (s-1)/(n-1) = 0.2 for n=16, s=4. Counts ~ B s/n = 12,500 per feature,
    # ratio sd ~ sqrt(0.2 * 0.8 / 12500) = 0.0036; the max over 240 pairs sits < 5 sd above 0.2.
    world, batch = _batch(WorldConfig(n=16, d=4, s=4), 50_000)
    assert world.expected_rho2 == pytest.approx(0.2)
    assert 0.2 <= empirical_rho2(batch, 16) <= 0.2 + Z * math.sqrt(0.2 * 0.8 / 12_500)


def test_hierarchy_children_are_mutually_exclusive_and_imply_their_parent():
    cfg = FREQUENCY_WORLDS["hierarchy"]
    world, batch = _batch(cfg, 5_000)
    P = cfg.n_parents
    mask = batch.active_mask(cfg.n)
    parent_of_child = torch.arange(cfg.n - P) % P
    child_mask = mask[:, P:]
    assert torch.all(mask[:, :P].gather(1, parent_of_child.expand(len(batch), -1))[child_mask])
    children_per_parent = torch.zeros(len(batch), P, dtype=torch.int64).index_add_(1, parent_of_child, child_mask.long())
    assert int(children_per_parent.max()) <= 1
    assert empirical_rho2(batch, cfg.n) == 1.0 and world.expected_rho2 == 1.0


def test_rho2_ignores_rare_features_and_handles_tiny_batches():
    world, batch = _batch(WorldConfig(n=64, d=4, s=2), 10)
    assert math.isnan(empirical_rho2(batch, 64))  # no feature seen 20 times


def test_stats_coherence_accepts_numpy_and_torch():
    V = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]])
    assert coherence(V) == pytest.approx(0.8)
    assert coherence(torch.tensor(V)) == pytest.approx(0.8)
