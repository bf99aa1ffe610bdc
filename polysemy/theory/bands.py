"""The paper's predictions as numbers: the resonance band, Theorem 6.1's band and width, the regime,
and the classical lines a phase diagram draws beside them (docs/paper.md sections 5 and 8).

All the paper's "≲" are read as "<=" with a constant that is a parameter (default 1, our choice: the
constants are unknown, docs/paper.md section 5). Functions take plain numbers, so sweeps and figures can
draw the lines on any grid; :func:`predict` gathers them for one world config.

- Resonance band (docs/paper.md section 5, the reading of Theorem 6.1 with f = s/n):
  ``c_low * f <= p <= c_high * min(sqrt(f), f * d)``.
- Theorem 6.1's band for the target frequency p:
  ``1/n <= p <= min(n^{-(1+1/s)/2}, n^{-2(1+eps)^2/s}, d^{1-varsigma}/n)``; it can be empty (low > high,
  e.g. for s = 1 or small n), which :func:`predict` reports as ``theorem_band_empty``.
- Width requirement: ``M >= n * p^{-s/(1-eps)^2}`` (linear in n, exponential in s).
- Regime: "light" superposition when d > sqrt(n), else "heavy" (the band shrinks toward p = f).
- Classical dictionary-learning limit (Arora et al. 2015; NOODL; ITKM): ``s <= sqrt(d) / (mu log d)``.
- Donoho–Tanner weak threshold for l1 recovery with a *known* random dictionary: see
  :func:`donoho_tanner_rho`.

Default constants (our choice, documented in docs/theory.md): ``eps = 0.1`` (success probability
1 - n^{-4 eps}), ``varsigma = 0.1`` (T = 1/varsigma = 10 iterations).
"""

from __future__ import annotations

import math
from typing import Any

from scipy.optimize import minimize_scalar
from scipy.stats import norm

from ..errors import require_float_range, require_int_range
from .world_predictions import predicted_quantities

DEFAULT_EPS = 0.1
DEFAULT_VARSIGMA = 0.1


def _positive(name: str, value: float) -> float:
    require_float_range(name, value, 0.0, math.inf, low_open=True, high_open=True)
    return float(value)


def resonance_band(f: float, d: float, c_low: float = 1.0, c_high: float = 1.0) -> tuple[float, float]:
    """(low, high) = (c_low * f, c_high * min(sqrt(f), f * d)): target frequencies p at which a neuron
    resonates with features of frequency f (docs/paper.md section 5). With the default constants low <= high
    whenever f is in (0, 1] and d >= 1."""
    require_float_range("f", f, 0.0, 1.0, low_open=True)
    require_float_range("d", d, 1.0, math.inf, high_open=True)
    _positive("c_low", c_low)
    _positive("c_high", c_high)
    return c_low * f, c_high * min(math.sqrt(f), f * d)


def theorem_band(n: int, d: int, s: float, eps: float = DEFAULT_EPS,
                 varsigma: float = DEFAULT_VARSIGMA) -> tuple[float, float]:
    """Theorem 6.1's band for the target frequency p (docs/paper.md section 5):
    ``(1/n, min(n^{-(1+1/s)/2}, n^{-2(1+eps)^2/s}, d^{1-varsigma}/n))``.

    ``s`` may be fractional (an expected L0). The band is empty when low > high; it is returned as is."""
    require_int_range("n", n, 1)
    require_int_range("d", d, 1)
    _positive("s", s)
    require_float_range("eps", eps, 0.0, 1.0, low_open=True, high_open=True)
    require_float_range("varsigma", varsigma, 0.0, 1.0, low_open=True, high_open=True)
    high = min(n ** (-(1.0 + 1.0 / s) / 2.0), n ** (-2.0 * (1.0 + eps) ** 2 / s), d ** (1.0 - varsigma) / n)
    return 1.0 / n, high


def log10_width_requirement(n: int, s: float, p: float, eps: float = DEFAULT_EPS) -> float:
    """log10 of :func:`width_requirement` (finite even when the width itself overflows)."""
    require_int_range("n", n, 1)
    _positive("s", s)
    require_float_range("p", p, 0.0, 1.0, low_open=True)
    require_float_range("eps", eps, 0.0, 1.0, low_open=True, high_open=True)
    return math.log10(n) - s / (1.0 - eps) ** 2 * math.log10(p)


def width_requirement(n: int, s: float, p: float, eps: float = DEFAULT_EPS) -> float:
    """Theorem 6.1's width ``M >= n * p^{-s/(1-eps)^2}`` (docs/paper.md section 5); ``inf`` if it overflows a float."""
    log10_m = log10_width_requirement(n, s, p, eps)
    return 10.0 ** log10_m if log10_m < 308 else math.inf


def regime(n: int, d: int) -> str:
    """"light" superposition when d > sqrt(n), else "heavy" (docs/paper.md section 5)."""
    require_int_range("n", n, 1)
    require_int_range("d", d, 1)
    return "light" if d > math.sqrt(n) else "heavy"


def classical_sparsity_limit(d: float, mu: float, c: float = 1.0) -> float:
    """``c * sqrt(d) / (mu * ln d)``: the sparsity up to which provable neural dictionary learning
    (Arora–Ge–Ma–Moitra 2015; NOODL 2019; ITKM) is guaranteed (docs/paper.md section 8). Needs d > 1, mu > 0."""
    require_float_range("d", d, 1.0, math.inf, low_open=True, high_open=True)
    require_float_range("mu", mu, 0.0, 1.0, low_open=True)
    _positive("c", c)
    return c * math.sqrt(d) / (mu * math.log(d))


def donoho_tanner_rho(delta: float, nonnegative: bool = True) -> float:
    """Donoho–Tanner weak phase transition rho_W(delta) of l1 recovery: with delta = d/n
    (measurements per unknown) a k-sparse code is recovered by l1 minimisation (with x >= 0 when
    ``nonnegative``) for typical supports when k/d < rho_W(delta). s_max = rho_W(d/n) * d.

    Computed from the closed form
    ``rho(delta) = max_{z>=0} [1 - (kappa/delta) J(z)] / [1 + z^2 - kappa J(z)]``,
    ``J(z) = (1 + z^2) Phi(-z) - z phi(z)``, kappa = 1 for non-negative (simplex) and 2 for signed
    (cross-polytope) signals: Donoho, Maleki & Montanari, PNAS 106 (2009), eq. for rho_SE, proven equal
    to the Donoho–Tanner weak threshold (Donoho & Tanner, PNAS 102 (2005) and J. AMS 22 (2009)) by
    Donoho, Johnstone, Maleki & Montanari (2011) and, via the statistical dimension of the l1 descent
    cone, by Amelunxen, Lotz, McCoy & Tropp (2014). Accuracy: the maximisation is solved to 1e-12 in z,
    so rho is exact to ~1e-10. Known points: rho^+(0.5) = 0.5582, rho^±(0.5) = 0.3857; rho -> 1 as
    delta -> 1 and rho ~ 1/(2 ln(1/delta)) as delta -> 0. delta >= 1 returns 1.
    """
    require_float_range("delta", delta, 0.0, math.inf, low_open=True, high_open=True)
    if delta >= 1.0:
        return 1.0
    kappa = 1.0 if nonnegative else 2.0

    def negative_rho(z: float) -> float:
        j = (1.0 + z * z) * norm.sf(z) - z * norm.pdf(z)
        return -(1.0 - kappa * j / delta) / (1.0 + z * z - kappa * j)

    # the maximiser z* ~ sqrt(2 ln(1/delta)) < 40 for every representable delta > 0
    best = minimize_scalar(negative_rho, bounds=(0.0, 40.0), method="bounded", options={"xatol": 1e-12})
    return float(min(1.0, max(0.0, -best.fun)))


def donoho_tanner_sparsity(n: int, d: int, nonnegative: bool = True) -> float:
    """s_max = rho_W(d/n) * d: the Donoho–Tanner sparsity limit for a known n x d random dictionary."""
    require_int_range("n", n, 1)
    require_int_range("d", d, 1)
    return donoho_tanner_rho(d / n, nonnegative) * d


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def predict(cfg: Any, eps: float = DEFAULT_EPS, varsigma: float = DEFAULT_VARSIGMA,
            c_low: float = 1.0, c_high: float = 1.0, c_classical: float = 1.0) -> dict[str, Any]:
    """Every prediction for one world (a ``WorldConfig`` or ``World``), as a JSON-able dict.

    Keys: ``n``, ``d``, ``s`` (the row sparsity used by the theorem: s for exact worlds, else the
    expected L0), ``expected_l0``, ``f`` (mean occurrence frequency), ``rho2`` (predicted max
    co-occurrence), ``coherence`` (predicted mu) and ``coherence_source``, ``band`` [low, high] (resonance
    band), ``f_in_band``, ``theorem_band`` [low, high], ``theorem_band_empty``, ``width_requirement``
    (at p = f; ``None`` if it overflows) and ``log10_width_requirement``, ``regime``, ``sqrt_n``,
    ``classical_sparsity_limit`` (``None`` when d <= 1 or mu = 0), ``donoho_tanner_rho`` (at d/n) and
    ``donoho_tanner_sparsity``, and ``constants`` (the ones used here).
    """
    q = predicted_quantities(cfg)
    n, d, s, f = q.n, q.d, q.s_theorem, q.f
    band = resonance_band(f, d, c_low, c_high)
    t_band = theorem_band(n, d, s, eps, varsigma)
    log10_w = log10_width_requirement(n, s, f, eps)
    mu = q.coherence
    classical = classical_sparsity_limit(d, mu, c_classical) if d > 1 and mu > 0 else None
    dt_rho = donoho_tanner_rho(d / n)
    return {
        "n": n, "d": d, "s": s, "expected_l0": q.expected_l0, "f": f,
        "rho2": q.rho2, "rho2_threshold": 1.0 / math.sqrt(n),
        "coherence": mu, "coherence_source": q.coherence_source,
        "band": [band[0], band[1]], "f_in_band": bool(band[0] <= f <= band[1]),
        "theorem_band": [t_band[0], t_band[1]], "theorem_band_empty": bool(t_band[0] > t_band[1]),
        "width_requirement": _finite_or_none(10.0 ** log10_w if log10_w < 308 else math.inf),
        "log10_width_requirement": log10_w, "width_requirement_p": f,
        "regime": regime(n, d), "sqrt_n": math.sqrt(n),
        "classical_sparsity_limit": classical,
        "donoho_tanner_rho": dt_rho, "donoho_tanner_sparsity": dt_rho * d,
        "constants": {"eps": eps, "varsigma": varsigma, "c_low": c_low, "c_high": c_high,
                      "c_classical": c_classical},
    }


__all__ = [
    "resonance_band", "theorem_band", "width_requirement", "log10_width_requirement", "regime",
    "classical_sparsity_limit", "donoho_tanner_rho", "donoho_tanner_sparsity", "predict",
    "DEFAULT_EPS", "DEFAULT_VARSIGMA",
]
