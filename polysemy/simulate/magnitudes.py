"""The magnitudes config: the law of a world's coefficients, h_i = magnitude_i * U[spread].

One small config (no registry): ``magnitude_profile`` picks the per-feature magnitudes, ``spread`` the
uniform factor each active coefficient is multiplied by (docs/paper.md section 1, [unknown] in the paper).

- "uniform" [default]: all magnitudes 1.
- "geometric": imbalance^(-r/(n-1)) for r = 0..n-1, i.e. from 1 down to 1/``imbalance`` (max/min =
  imbalance), given to the features in a random order drawn from ``default_rng([seed, 2])`` (our choice:
  decorrelated from the frequency order).
- "explicit": ``magnitudes``, n positive values, as given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import require, require_float_range
from .registry import COEFFICIENT_LIMIT, Params, describe_value, is_number, param, set_group

if TYPE_CHECKING:
    from .config import WorldConfig

MAGNITUDE_PROFILES = ("uniform", "geometric", "explicit")


@dataclass(frozen=True)
class Magnitudes(Params):
    """Per-feature magnitudes and the spread of the coefficients (module docstring)."""

    magnitude_profile: str = param("uniform", "per-feature magnitudes: uniform (all 1), geometric (--imbalance) "
                                   "or explicit (magnitudes)", flag=None, choices=MAGNITUDE_PROFILES)
    imbalance: float = param(1.0, "max/min ratio >= 1 of geometric per-feature magnitudes h_i", cli_type=float,
                             implies={"magnitude_profile": "geometric"},
                             used_when={"magnitude_profile": ("geometric",)})
    magnitudes: tuple | None = param(None, "n positive per-feature magnitudes", flag=None,
                                     used_when={"magnitude_profile": ("explicit",)})
    spread: tuple = param((0.5, 1.5), "each coefficient is h_i times U[LO, HI] (default 0.5 1.5)", cli_type=float,
                          nargs=2, metavar=("LO", "HI"))

    @staticmethod
    def validate_in(cfg: WorldConfig) -> None:
        """Check the coefficient law of ``cfg`` (its spread, imbalance and magnitudes)."""
        spread = cfg.spread
        require(isinstance(spread, (tuple, list)) and len(spread) == 2 and all(is_number(v) for v in spread)
                and 0 < float(spread[0]) <= float(spread[1]) <= COEFFICIENT_LIMIT,
                f"spread must be a pair (lo, hi) with 0 < lo <= hi <= {COEFFICIENT_LIMIT:.0e} "
                f"(larger coefficients overflow float32 in training), got {spread!r}")
        if cfg.magnitude_profile == "geometric":
            require_float_range("imbalance", cfg.imbalance, 1.0, math.inf, high_open=True)
        if cfg.magnitude_profile == "explicit":
            mags = cfg.magnitudes
            require(isinstance(mags, (tuple, list)) and len(mags) == cfg.n
                    and all(is_number(m) and float(m) > 0 for m in mags),
                    f"magnitudes must be a list of n={cfg.n} positive numbers, got {describe_value(mags)}")
            top = max(float(m) for m in mags) * float(spread[1])
            require(top <= COEFFICIENT_LIMIT,
                    f"magnitudes times spread hi must be at most {COEFFICIENT_LIMIT:.0e} (larger coefficients "
                    f"overflow float32 in training), got {top:.3g}")

    def build(self, n: int, seed: int) -> np.ndarray:
        """Per-feature magnitudes h_i [n] (float64) for a world of n features and seed ``seed``."""
        if self.magnitude_profile == "uniform":
            return np.ones(n)
        if self.magnitude_profile == "explicit":
            return np.asarray(self.magnitudes, dtype=np.float64)
        levels = float(self.imbalance) ** (-np.arange(n) / max(n - 1, 1))
        order = np.random.default_rng([seed, 2]).permutation(n)
        return levels[order]


set_group("magnitudes", Magnitudes)
