"""What a world's config predicts, before any sample is drawn: frequencies, co-occurrence, coherence,
row sparsity and coefficient floor. Used by ``bands.predict`` and the "predicted" conditions.

Formulas (docs/paper.md sections 1-2; the simulate module docstring for the support models):

- f = mean_i f_i with f_i = P(h_i > 0) (``World.expected_frequencies``).
- rho2 = max_{i != j} P(h_j > 0 | h_i > 0) = ``World.expected_rho2`` (simulate's exact formula per
  support: (s-1)/(n-1) for exact s of n, max_j f_j for independent features, rho2 for planted pairs,
  1 for a hierarchy whose children fire).
- coherence mu: Gaussian rows: the median max |cos| over n(n-1)/2 random pairs
  (:func:`gaussian_coherence`; docs/paper.md section 2's sqrt(2 ln(n^2)/d) is its large-d limit); orthogonal
  rows: the bound the dictionary promises (``orthogonal_coherence_bound``); coherent rows: the
  configured mu; a user matrix: its exact coherence.
- row sparsity (H1): the largest L0 a row can have when bounded (exact: s; mixture: largest level;
  hierarchy: s parents plus at most one child each), else (Bernoulli, planted pairs) the ``quantile``
  of L0 by a normal approximation, ceil(E L0 + z_q sd(L0)).
- coefficient floor (H2): min_i h_i * spread_lo divided by the mean non-zero coefficient
  sum_i f_i h_i (lo + hi)/2 / sum_i f_i (scale-free).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..simulate import World
from ..simulate.bounds import gaussian_coherence  # noqa: F401 (re-exported: the theory's predictor)


@dataclass(frozen=True)
class PredictedWorld:
    """Quantities predicted from a ``WorldConfig`` (see the module docstring for each formula)."""

    n: int
    d: int
    s_theorem: float            # s for exact worlds, else the expected L0
    expected_l0: float
    f: float
    min_frequency: float
    rho2: float
    coherence: float
    coherence_source: str
    l0_high: float              # bound (or high quantile) of a row's L0
    l0_high_source: str
    min_relative_coefficient: float
    full_rank_expected: bool


def _config_and_world(cfg_or_world):
    if isinstance(cfg_or_world, World):
        return cfg_or_world.config, cfg_or_world
    return cfg_or_world, World(cfg_or_world)


def predicted_coherence(cfg) -> tuple[float, str]:
    """(mu, how it was obtained) for the config's dictionary (module docstring; each dictionary kind
    predicts its own: ``Dictionary.predicted_coherence``)."""
    if cfg.n < 2:
        return 0.0, "a single feature"
    return cfg.dictionary_kind.predicted_coherence(cfg)


def predicted_l0_high(cfg, frequencies: np.ndarray, quantile: float = 0.99) -> tuple[float, str]:
    """The largest L0 a row can have, or its ``quantile`` for unbounded supports (module docstring; each
    support kind predicts its own: ``Support.l0_high``)."""
    return cfg.support_kind.l0_high(cfg, frequencies, quantile)


def predicted_quantities(cfg_or_world, quantile: float = 0.99) -> PredictedWorld:
    """Everything the config predicts, in one record (builds the ``World`` once for its frequencies)."""
    cfg, world = _config_and_world(cfg_or_world)
    freqs = np.asarray(world.expected_frequencies, dtype=np.float64)
    mags = np.asarray(world.magnitudes.detach().cpu().numpy() if hasattr(world.magnitudes, "detach")
                      else world.magnitudes, dtype=np.float64)
    lo, hi = float(cfg.spread[0]), float(cfg.spread[1])
    occurs = freqs > 0
    mean_coef = float((freqs * mags).sum() * (lo + hi) / 2.0 / freqs.sum()) if freqs.sum() > 0 else 0.0
    min_coef = float(mags[occurs].min() * lo) if occurs.any() else 0.0
    rho2 = float(world.expected_rho2)
    mu, mu_source = predicted_coherence(cfg)
    l0_high, l0_source = predicted_l0_high(cfg, freqs, quantile)
    expected_l0 = float(world.expected_l0)
    return PredictedWorld(
        n=cfg.n, d=cfg.d,
        s_theorem=cfg.support_kind.s_theorem(cfg, expected_l0),
        expected_l0=expected_l0, f=float(world.f), min_frequency=float(freqs.min()),
        rho2=rho2, coherence=mu, coherence_source=mu_source,
        l0_high=l0_high, l0_high_source=l0_source,
        min_relative_coefficient=min_coef / mean_coef if mean_coef > 0 else 0.0,
        full_rank_expected=bool(occurs.all() and (lo < hi or rho2 < 1.0)),
    )
