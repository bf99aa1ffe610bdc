"""The paper's bands and the classical lines (polysemy.theory.bands)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import norm

from polysemy.errors import ConfigError
from polysemy.theory import bands


@given(st.floats(1e-9, 1.0), st.floats(1.0, 1e5))
def test_resonance_band_low_never_exceeds_high(f, d):
    lo, hi = bands.resonance_band(f, d)
    assert 0 < lo <= hi
    assert lo == pytest.approx(f) and hi == pytest.approx(min(math.sqrt(f), f * d))


@given(st.integers(2, 10**6), st.integers(1, 10**4), st.floats(0.5, 100.0),
       st.floats(0.01, 0.5), st.floats(0.01, 0.9))
def test_theorem_band_matches_its_formula(n, d, s, eps, varsigma):
    lo, hi = bands.theorem_band(n, d, s, eps=eps, varsigma=varsigma)
    assert lo == pytest.approx(1 / n)
    assert hi == pytest.approx(min(n ** (-(1 + 1 / s) / 2), n ** (-2 * (1 + eps) ** 2 / s), d ** (1 - varsigma) / n))
    # where defined (non-empty) the band lies inside (0, 1]
    if lo <= hi:
        assert 0 < lo <= hi <= 1


def test_theorem_band_hand_values():
    # n = 256, d = 64, s = 3, eps = varsigma = 0.1: n^-(2/3) = 0.0248, n^-(2*1.21/3) = 0.01138,
    # d^0.9/n = 0.1654 -> band [1/256, 0.01138]; for s = 1 the second term n^-2.42 empties it.
    lo, hi = bands.theorem_band(256, 64, 3)
    assert lo == pytest.approx(0.00390625)
    assert hi == pytest.approx(256 ** (-2 * 1.21 / 3), rel=1e-12)
    lo1, hi1 = bands.theorem_band(256, 64, 1)
    assert lo1 > hi1


@given(st.integers(1, 10**6), st.floats(0.5, 50.0), st.floats(1e-4, 0.99), st.floats(1e-4, 0.99))
def test_width_requirement_formula_and_monotone_in_p(n, s, p1, p2):
    w1 = bands.width_requirement(n, s, p1)
    assert math.log10(w1) == pytest.approx(math.log10(n) - s / 0.81 * math.log10(p1), rel=1e-9, abs=1e-9)
    if p1 < p2:
        assert bands.width_requirement(n, s, p2) <= w1


def test_width_requirement_overflows_to_inf_but_its_log_stays_finite():
    assert bands.width_requirement(100, 500, 1e-3) == math.inf
    assert math.isfinite(bands.log10_width_requirement(100, 500, 1e-3))


def test_regime_switches_at_sqrt_n():
    assert bands.regime(256, 16) == "heavy"
    assert bands.regime(256, 17) == "light"
    assert bands.regime(1024, 8) == "heavy"


def test_classical_sparsity_limit():
    assert bands.classical_sparsity_limit(64, 0.5) == pytest.approx(8 / (0.5 * math.log(64)))


def test_donoho_tanner_known_points():
    # Donoho & Tanner weak thresholds at delta = 1/2: simplex (non-negative) 0.558, cross-polytope
    # (signed) 0.386 (cf. Donoho-Maleki-Montanari 2009, fig. 1). Tolerance 2e-3 covers the rounding
    # of the published values.
    assert bands.donoho_tanner_rho(0.5) == pytest.approx(0.558, abs=2e-3)
    assert bands.donoho_tanner_rho(0.5, nonnegative=False) == pytest.approx(0.385, abs=2e-3)
    assert bands.donoho_tanner_rho(1.0) == 1.0 and bands.donoho_tanner_rho(3.0) == 1.0
    # small-delta asymptotics rho ~ 1/(2 ln(1/delta)), approached from above (ratio 1.07 at 1e-8)
    for delta in (1e-8, 1e-12):
        ratio = bands.donoho_tanner_rho(delta) * 2 * math.log(1 / delta)
        assert 1.0 < ratio < 1.1


def _rho_from_statistical_dimension(delta: float, nonnegative: bool) -> float:
    """Independent route: the phase transition sits where the statistical dimension of the l1 descent
    cone at an eps-sparse point equals delta (Amelunxen-Lotz-McCoy-Tropp 2014), with the Gaussian tail
    integral computed by quadrature instead of the closed form."""
    kappa = 1 if nonnegative else 2

    def tail(tau):  # E (g - tau)_+^2
        return quad(lambda g: (g - tau) ** 2 * norm.pdf(g), tau, math.inf)[0]

    def stat_dim(eps):
        res = minimize_scalar(lambda t: eps * (1 + t * t) + (1 - eps) * kappa * tail(t),
                              bounds=(0, 10), method="bounded", options={"xatol": 1e-10})
        return res.fun

    eps_star = brentq(lambda e: stat_dim(e) - delta, 1e-9, delta - 1e-12, xtol=1e-12)
    return eps_star / delta


@pytest.mark.parametrize("delta", [0.05, 0.3, 0.7])
@pytest.mark.parametrize("nonnegative", [True, False])
def test_donoho_tanner_agrees_with_the_statistical_dimension(delta, nonnegative):
    assert bands.donoho_tanner_rho(delta, nonnegative) == pytest.approx(
        _rho_from_statistical_dimension(delta, nonnegative), abs=1e-6)


@given(st.floats(1e-6, 0.999), st.floats(1e-6, 0.999))
def test_donoho_tanner_is_increasing_and_in_unit_interval(a, b):
    lo, hi = sorted((a, b))
    r_lo, r_hi = bands.donoho_tanner_rho(lo), bands.donoho_tanner_rho(hi)
    assert 0 < r_lo <= r_hi + 1e-9 <= 1 + 1e-9
    assert bands.donoho_tanner_rho(lo, nonnegative=False) <= r_lo + 1e-9  # signed is harder


@pytest.mark.parametrize("call", [
    lambda: bands.resonance_band(0.0, 10),
    lambda: bands.resonance_band(1.5, 10),
    lambda: bands.resonance_band(0.1, 0.5),
    lambda: bands.theorem_band(0, 10, 3),
    lambda: bands.theorem_band(100, 10, 3, eps=1.0),
    lambda: bands.width_requirement(100, 3, 0.0),
    lambda: bands.regime(100, 0),
    lambda: bands.classical_sparsity_limit(1, 0.5),
    lambda: bands.donoho_tanner_rho(0.0),
])
def test_impossible_input_is_a_config_error(call):
    with pytest.raises(ConfigError):
        call()
