"""The "structured" support and the ``realistic-1k`` preset: Zipf parents, mutually exclusive children,
low-rank correlated firing, each within stated bounds.

Bounds as in test_statistics.py: a count over B samples is Binomial(B, p), so a measured rate lies
within Z = 5 standard deviations of p (a miss has probability < 6e-7 per number; seeds are fixed, so a
failure means a wrong sampler, not bad luck). Samples come from the support alone (no dictionary), so
the orthogonalised 1024 x 128 dictionary (about 30 s to build) is not needed here.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtri
from scipy.stats import multivariate_normal

from polysemy.errors import ConfigError
from polysemy.simulate import WorldConfig, get_preset
from polysemy.simulate.config import zipf_frequencies
from polysemy.simulate.supports import (Support, bivariate_normal_cdf, copula_loadings,
                                        structured_parent_rho2)

Z = 5.0
REALISTIC = get_preset("realistic-1k")


def _active(cfg, B, seed=0):
    support = Support(cfg)
    idx = support.sample(B, torch.Generator().manual_seed(seed))
    mask = torch.zeros(B, cfg.n + 1, dtype=torch.bool)
    mask.scatter_(1, torch.where(idx < 0, cfg.n, idx), True)
    return support, mask[:, :cfg.n].numpy()


def _within(measured, p, B):
    return np.abs(measured - p) <= Z * np.sqrt(p * (1 - p) / B) + 1e-12


@pytest.fixture(scope="module")
def realistic_sample():
    return _active(REALISTIC, 40_000)


def test_realistic_1k_is_what_its_docstring_says():
    c = REALISTIC
    assert (c.n, c.d, c.dictionary, c.support) == (1024, 128, "orthogonal", "structured")
    assert c.n_parents == 256 and c.hierarchy_children == 3
    support = Support(c)
    assert 8.5 < support.expected_frequencies().sum() < 9.2           # expected L0 about 8.9
    assert support.expected_rho2() == 1.0                              # a child implies its parent


def test_parent_frequencies_follow_the_zipf_law(realistic_sample):
    support, active = realistic_sample
    P, B = REALISTIC.n_parents, active.shape[0]
    zipf = zipf_frequencies(P, 1.0, 0.2, 0.005)
    np.testing.assert_allclose(support.expected_frequencies()[:P], zipf)
    assert np.all(_within(active[:, :P].mean(axis=0), zipf, B))
    # the law itself: log f against log rank is a straight line of slope -1 (ranks rescaled to hit 0.005)
    ranks = 1 + np.arange(P) / (P - 1) * (0.2 / 0.005 - 1)
    slope = np.polyfit(np.log(ranks), np.log(active[:, :P].mean(axis=0)), 1)[0]
    assert -1.05 < slope < -0.95


def test_children_are_mutually_exclusive_and_need_their_parent(realistic_sample):
    _, active = realistic_sample
    P, n = REALISTIC.n_parents, REALISTIC.n
    child_parent = np.arange(n - P) % P
    children = active[:, P:]
    per_parent = np.zeros((active.shape[0], P), dtype=np.int64)
    np.add.at(per_parent.T, child_parent, children.T.astype(np.int64))
    assert per_parent.max() == 1                                       # at most one child per parent
    assert not np.any(children & ~active[:, child_parent])             # a child never fires alone
    # an active parent has a child with probability 0.8
    with_child = per_parent[active[:, :P]].mean()
    B_act = int(active[:, :P].sum())
    assert abs(with_child - 0.8) <= Z * math.sqrt(0.8 * 0.2 / B_act)


def test_every_feature_has_its_expected_frequency(realistic_sample):
    support, active = realistic_sample
    assert np.all(_within(active.mean(axis=0), support.expected_frequencies(), active.shape[0]))


def test_parents_fire_together_as_the_low_rank_copula_says(realistic_sample):
    _, active = realistic_sample
    P, B = REALISTIC.n_parents, active.shape[0]
    f = zipf_frequencies(P, 1.0, 0.2, 0.005)
    L = copula_loadings(REALISTIC)
    assert L.shape == (P, 8)
    corr = L @ L.T
    # the most and least correlated pairs among the 20 most frequent parents: exact joint rates
    top = np.arange(20)
    sub = corr[np.ix_(top, top)] - 10 * np.eye(20)
    for p, q in (np.unravel_index(np.argmax(sub), sub.shape), np.unravel_index(np.argmin(sub + 20 * np.eye(20)), sub.shape)):
        joint = bivariate_normal_cdf(ndtri(f[p]), ndtri(f[q]), corr[p, q])
        measured = float((active[:, p] & active[:, q]).mean())
        assert _within(measured, joint, B), (p, q, corr[p, q])
    # and the firing really is correlated: positive-loading pairs co-fire more than independence says
    p, q = np.unravel_index(np.argmax(sub), sub.shape)
    assert (active[:, p] & active[:, q]).mean() > 1.3 * f[p] * f[q]


def test_without_correlation_parents_are_independent():
    cfg = REALISTIC.replace(correlation_rank=0, correlation_scale=0.0, child_probability=0.0)
    support, active = _active(cfg, 40_000)
    f = support.expected_frequencies()[:2]
    assert _within((active[:, 0] & active[:, 1]).mean(), f[0] * f[1], 40_000)
    assert support.expected_rho2() == pytest.approx(f.max())


@settings(max_examples=30, deadline=None)
@given(st.floats(-3, 1), st.floats(-3, 1), st.floats(-0.95, 0.95))
def test_bivariate_normal_cdf_agrees_with_scipy(h, k, rho):
    expected = multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([h, k])
    assert bivariate_normal_cdf(h, k, rho) == pytest.approx(expected, abs=1e-6)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 4), st.floats(0.0, 0.9), st.integers(0, 3))
def test_structured_rho2_is_the_largest_conditional_rate(seed, children, scale, rank):
    cfg = WorldConfig(n=12 * (1 + children), d=4, support="structured", hierarchy_children=children,
                      frequency_profile="zipf", f_max=0.5, f_min=0.05, correlation_rank=rank if scale > 0 else 0,
                      correlation_scale=scale if rank > 0 else 0.0, child_probability=0.0, seed=seed)
    f = Support(cfg).expected_frequencies()[:cfg.n_parents]
    rho2 = structured_parent_rho2(f, copula_loadings(cfg))
    assert f.max() - 1e-9 <= rho2 + (1.0 if cfg.correlation_scale > 0 else 0.0)  # >= f_max unless anti-correlated
    assert 0.0 <= rho2 <= 1.0 + 1e-9


@pytest.mark.parametrize("change", [
    dict(correlation_rank=2),                                       # only for structured
    dict(support="structured", correlation_scale=1.0, correlation_rank=2),
    dict(support="structured", correlation_scale=0.3),              # rank 0 with a scale
    dict(support="structured", frequency_profile="explicit", frequencies=(0.1,) * 7),  # P = 51, not 7
])
def test_impossible_structured_options_are_config_errors(change):
    with pytest.raises(ConfigError):
        WorldConfig(n=256, d=16, **change)


def test_check_explains_why_a_hierarchy_fails_h3():
    from polysemy.theory.conditions import predicted_conditions

    h3 = {r.name: r for r in predicted_conditions(REALISTIC)}["H3"]
    assert not h3.holds and h3.value == 1.0 and "by construction" in h3.note
    flat = {r.name: r for r in predicted_conditions(WorldConfig(n=64, d=16, s=2))}["H3"]
    assert "by construction" not in flat.note


@pytest.mark.slow
def test_realistic_1k_dictionary_is_orthogonalised():
    from polysemy.simulate import World
    from polysemy.simulate.bounds import orthogonal_coherence_bound
    from polysemy.simulate.stats import coherence

    world = World(REALISTIC)
    assert coherence(world.V) <= orthogonal_coherence_bound(1024, 128)
