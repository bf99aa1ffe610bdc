"""H1, H2, H3, V1 predicted from configs and measured on samples (polysemy.theory.conditions)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polysemy.errors import ConfigError
from polysemy.simulate import World, WorldConfig
from polysemy.theory import conditions
from polysemy.theory.conditions import ConditionConstants, check_conditions
from polysemy.theory.world_predictions import gaussian_coherence, predicted_quantities


def _by(reports, source):
    return {r.name: r for r in reports if r.source == source}


def _sample(cfg, B, seed=0):
    world = World(cfg)
    return world, world.sample_with_truth(B, torch.Generator().manual_seed(seed))


def test_a_sparse_incoherent_uniform_world_meets_every_condition_both_ways():
    # n = 64, s = 2: rho2 = 1/63 against 1/sqrt(64) = 0.125. Measured rho2 is a max over ~4000 pair
    # ratios of Bin(~156, 0.016)/156 (mean 2.5 co-occurrences); reaching 0.125 needs >= 20, a Chernoff
    # tail below 1e-9 per pair, so the measured check holds too.
    world, batch = _sample(WorldConfig(n=64, d=48, s=2), 5000)
    reports = check_conditions(world, batch)
    assert [r.name for r in reports] == ["H1", "H2", "H3", "V1"] * 2
    assert all(r.holds for r in reports), [r for r in reports if not r.holds]
    pred, meas = _by(reports, "predicted"), _by(reports, "measured")
    assert pred["H1"].value == 2 and meas["H1"].value == 2
    assert pred["H3"].value == pytest.approx(1 / 63)
    assert pred["H3"].threshold == pytest.approx(0.125)
    assert meas["V1"].value == pytest.approx(world.dictionary_coherence, rel=1e-6)


def test_planted_cooccurrence_breaks_h3_both_ways():
    # rho2 = 0.5 planted: every feature is seen ~250 times in 5000 samples, so each partner ratio has
    # sd sqrt(0.25/250) = 0.032; the max over 64 features stays within 0.5 +- 0.15 (4.7 sd).
    cfg = WorldConfig(n=64, d=48, s=3, support="cooccur", frequency=0.05, rho2=0.5)
    world, batch = _sample(cfg, 5000)
    pred, meas = _by(check_conditions(world, batch), "predicted"), _by(check_conditions(world, batch), "measured")
    assert pred["H3"].value == pytest.approx(0.5) and not pred["H3"].holds and pred["H3"].margin < 0
    assert not meas["H3"].holds and abs(meas["H3"].value - 0.5) < 0.15


def test_a_coherent_dictionary_breaks_v1_both_ways():
    cfg = WorldConfig(n=64, d=128, s=2, dictionary="coherent", coherence=0.8)
    world, batch = _sample(cfg, 500)
    reports = check_conditions(world, batch)
    pred, meas = _by(reports, "predicted"), _by(reports, "measured")
    # threshold 2.5 sqrt(ln 64 / 128) = 0.46 < 0.8
    assert pred["V1"].value == pytest.approx(0.8) and not pred["V1"].holds
    assert meas["V1"].value == pytest.approx(0.8, abs=1e-4) and not meas["V1"].holds


def test_h2_fails_for_a_tiny_coefficient_for_missing_features_and_for_rank_deficiency():
    tiny = WorldConfig(n=32, d=24, s=2, magnitude_profile="explicit", magnitudes=(0.01,) + (1.0,) * 31)
    world, batch = _sample(tiny, 4000)
    for r in check_conditions(world, batch):
        if r.name == "H2":
            assert not r.holds and r.value < 0.1, r
    # children that never fire: not every feature occurs
    silent = WorldConfig(n=30, d=24, s=2, support="hierarchy", hierarchy_children=2, child_probability=0.0)
    world, batch = _sample(silent, 2000)
    h2 = [r for r in check_conditions(world, batch) if r.name == "H2"]
    assert all(not r.holds for r in h2) and "never seen in 2000 samples: 20" in h2[1].note
    # one child per parent that always fires with it, with equal coefficients: identical columns of H
    twins = WorldConfig(n=32, d=24, s=2, support="hierarchy", hierarchy_children=1, spread=(1.0, 1.0))
    world, batch = _sample(twins, 2000)
    h2 = [r for r in check_conditions(world, batch) if r.name == "H2"]
    assert all(not r.holds for r in h2)
    assert "deficient" in h2[1].note and "full column rank expected: no" in h2[0].note


def test_h1_predicted_quantile_matches_the_measured_one():
    # L0 ~ Bin(256, 0.05): mean 12.8, sd 3.49. The normal 0.99-quantile (ceil(20.9) = 21) sits within
    # 2 counts of the exact binomial one (21-22, skewed); the empirical quantile of 20000 samples has
    # ~100 samples beyond it, so it moves by at most one count.
    cfg = WorldConfig(n=256, d=64, s=3, support="bernoulli", frequency=0.05)
    world, batch = _sample(cfg, 20000)
    reports = check_conditions(world, batch)
    pred, meas = _by(reports, "predicted"), _by(reports, "measured")
    assert abs(pred["H1"].value - meas["H1"].value) <= 2


@settings(max_examples=10, deadline=None)
@given(st.integers(2, 80), st.integers(2, 60), st.integers(1, 6), st.integers(0, 3))
def test_margin_sign_agrees_with_holds(n, d, s, seed):
    s = min(s, n)
    world, batch = _sample(WorldConfig(n=n, d=d, s=s, seed=seed), 300, seed=seed)
    for r in check_conditions(world, batch):
        assert r.holds <= (r.margin >= 0), r
        if r.name != "H2":  # H2 also needs every feature seen and full rank
            assert r.holds == (r.margin >= 0), r
        assert r.threshold > 0
        # measured rho2 is undetermined (NaN, not holding) when no feature was seen often enough
        assert math.isfinite(r.value) or (r.name == "H3" and r.source == "measured" and not r.holds)


def test_constants_move_the_thresholds_and_round_trip():
    constants = ConditionConstants(c_h3=0.01, c_v1=0.1)
    again = ConditionConstants.from_json(constants.to_json())
    assert again == constants and again.config_hash() == constants.config_hash()
    pred = _by(check_conditions(WorldConfig(n=64, d=48, s=2), constants=constants), "predicted")
    assert pred["H3"].threshold == pytest.approx(0.01 / 8) and not pred["H3"].holds
    assert not pred["V1"].holds


@pytest.mark.parametrize("bad", [dict(c_h3=0.0), dict(h1_quantile=1.5), dict(c_h2=-0.1), dict(rank_tol=0.0)])
def test_bad_constants_are_config_errors(bad):
    with pytest.raises(ConfigError):
        ConditionConstants(**bad)


def test_gaussian_coherence_predictor_tracks_realised_dictionaries():
    # Median-of-max predictor against three realised Gaussian dictionaries per size: measured spread of
    # the realised coherence is about +-0.05 at these sizes, so 0.08 is a 1.5x margin.
    for n, d in [(128, 42), (256, 64), (512, 256)]:
        mu = gaussian_coherence(n, d)
        for seed in range(3):
            assert abs(World(WorldConfig(n=n, d=d, s=1, seed=seed)).dictionary_coherence - mu) < 0.08


def test_predicted_quantities_of_the_paper_toy():
    from polysemy.simulate import get_preset

    q = predicted_quantities(get_preset("paper-toy"))
    assert q.f == pytest.approx(11.5 / 128)
    assert q.l0_high == 20 and q.s_theorem == pytest.approx(11.5)
    # mixture rho2 = (0.5*3*2 + 0.5*20*19) / (127 * 11.5)
    assert q.rho2 == pytest.approx((3 + 190) / (127 * 11.5))
    assert conditions.thresholds(128, 42, ConditionConstants())["H3"] == pytest.approx(1 / math.sqrt(128))
