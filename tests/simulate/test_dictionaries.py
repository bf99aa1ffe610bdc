"""Dictionaries reach the coherence they promise."""

import numpy as np
import pytest
import torch

from polysemy.simulate import World, WorldConfig
from polysemy.simulate.bounds import coherence_lower_bound, orthogonal_coherence_bound, welch_bound
from polysemy.simulate.stats import coherence


def test_welch_bound_values():
    assert welch_bound(10, 10) == 0.0
    assert welch_bound(256, 64) == pytest.approx(np.sqrt(192 / (64 * 255)))
    # Levenstein's bound takes over once n > d(d+1)/2
    assert coherence_lower_bound(256, 12) > welch_bound(256, 12)


def test_gaussian_rows_are_unit_and_coherence_near_theory():
    V = World(WorldConfig(n=256, d=64)).V
    assert torch.allclose(V.norm(dim=1), torch.ones(256), atol=1e-5)
    # docs/paper.md section 2: mu ~ sqrt(2 log(n^2) / d) = 0.59 for n=256, d=64 (an upper-tail estimate); allow 0.35..0.7
    assert 0.35 < coherence(V) < 0.7


@pytest.mark.parametrize("n, d", [(16, 32), (32, 32)])
def test_orthogonal_is_orthonormal_when_n_le_d(n, d):
    V = World(WorldConfig(n=n, d=d, dictionary="orthogonal")).V.double()
    assert torch.allclose(V @ V.T, torch.eye(n, dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("n, d", [(64, 16), (48, 24), (40, 8)])  # (40, 8): Levenstein regime
def test_orthogonal_reaches_its_promise_and_beats_gaussian(n, d):
    mu = coherence(World(WorldConfig(n=n, d=d, dictionary="orthogonal")).V)
    assert mu <= orthogonal_coherence_bound(n, d)
    assert mu >= coherence_lower_bound(n, d) - 1e-6  # sanity: no frame beats the bound
    assert mu < coherence(World(WorldConfig(n=n, d=d)).V)


@pytest.mark.parametrize("n, d, mu", [(16, 32, 0.3), (64, 16, None), (64, 16, 0.6), (48, 24, 0.9), (33, 8, 0.8)])
def test_coherent_reaches_the_prescribed_mu(n, d, mu):
    if mu is None:  # the smallest coherence the config accepts
        mu = orthogonal_coherence_bound(n, d)
    V = World(WorldConfig(n=n, d=d, dictionary="coherent", coherence=mu)).V
    assert torch.allclose(V.norm(dim=1), torch.ones(n), atol=1e-5)
    assert coherence(V) == pytest.approx(mu, abs=1e-5)
    pair = float(V[0] @ V[1]) / float(V[0].norm() * V[1].norm())
    assert pair == pytest.approx(mu, abs=1e-5)  # planted pairs (2k, 2k+1) sit exactly at mu


def test_dictionary_depends_only_on_config():
    cfg = WorldConfig(n=40, d=8, dictionary="orthogonal", seed=3)
    assert torch.equal(World(cfg).V, World(WorldConfig.from_json(cfg.to_json())).V)
