"""``WorldConfig``: every knob of a world of superposed features, validated and JSON-serialisable.

A world is X = H V (docs/paper.md section 1): V [n, d] holds the true features as rows, each sample
x = sum_i h_i v_i + noise has non-negative coefficients h_i, most of them zero. The config is one flat,
frozen dataclass so that a sweep can vary any field with ``cfg.replace(field=value)`` and every cell is
regenerated exactly from its JSON (``cfg.config_hash()`` names it).

Fields, grouped (defaults in brackets):

Dimensions
    n [256]       number of true features (rows of V).
    d [64]        ambient dimension.
    s [3]         sparsity: active features per sample for ``support="exact"``; the number of active
                  *parents* for ``"hierarchy"``; and the default expected L0 (frequency ``s/n``) of the
                  Bernoulli-type supports when ``frequency`` is not given.

Dictionary (``dictionary``, see ``dictionaries.py``)
    "gaussian"    [default] i.i.d. Gaussian rows scaled to unit norm (the theorem's model, docs/paper.md section 1).
    "orthogonal"  as incoherent as n and d allow: orthonormal rows when n <= d, otherwise a unit-norm
                  frame pushed toward the Welch bound by frame-potential descent (our choice); its
                  coherence is at most ``bounds.orthogonal_coherence_bound(n, d)``.
    "coherent"    unit rows with coherence exactly ``coherence`` (mu): disjoint pairs of rows planted at
                  cosine mu on an incoherent base, all other pairs below mu (our choice).
    "matrix"      the user's matrix ``matrix`` (a .npy path or a nested list [n][d]), rows used as given.

Supports (``support``, see ``supports.py``)
    "exact"       [default] exactly s of n features, uniform without replacement (f = s/n).
    "bernoulli"   independent features, P(h_i > 0) = f_i from ``frequency_profile``:
                  "uniform" (f_i = ``frequency``, default s/n), "zipf" (``zipf_exponent``, ``f_max``,
                  ``f_min``; feature 0 most frequent) or "explicit" (``frequencies``, n values).
    "mixture"     each sample draws a sparsity level from ``mixture_levels`` with ``mixture_weights``,
                  then that many features uniformly: the paper's imbalanced world is levels (3, 20),
                  weights (0.5, 0.5).
    "cooccur"     features in disjoint pairs (2k, 2k+1); each fires with frequency f (``frequency``,
                  default s/n) and its partner fires with it with probability ``rho2``; pairs are
                  independent, so max_{i!=j} P(h_j>0 | h_i>0) = rho2 exactly. rho2 must lie in
                  [f, 1] (below f the independent pairs dominate) and f (2 - rho2) <= 1.
    "hierarchy"   P = n // (1 + ``hierarchy_children``) parents (features 0..P-1) and n - P children;
                  child P + j belongs to parent j mod P. Exactly s parents fire (uniform without
                  replacement) and each active parent has one of its children active with probability
                  ``child_probability`` (children of one parent are mutually exclusive).
    "structured"  the hierarchy's parents and children (same layout, children mutually exclusive, each
                  active parent has one child active with probability ``child_probability``), but the
                  P parents fire as Bernoulli features with frequencies from ``frequency_profile`` over
                  the P parents ("uniform": ``frequency``, default s/P; "zipf": ``zipf_exponent``,
                  ``f_max``, ``f_min``, parent 0 most frequent; "explicit": P values), made to fire
                  together by a rank-``correlation_rank`` Gaussian copula of strength
                  ``correlation_scale`` c: parent p fires iff z_p < Phi^-1(f_p) with
                  z = sqrt(c) U g + sqrt(1 - c) eps, g ~ N(0, I_r), eps ~ N(0, I_P) and U [P, r] unit
                  rows drawn from ``seed``. Each f_p is exact; Corr(z_p, z_q) = c <u_p, u_q>. (Our
                  extension for the ``realistic-1k`` preset: Zipf frequencies, a hierarchy and low-rank
                  correlated firing in one world, as SAELens's synthetic models combine them.)

Coefficients: h_i = magnitude_i * U[spread]
    magnitude_profile  "uniform" [default, all 1] | "geometric" (from 1 down to 1/``imbalance``,
                  geometrically spaced, assigned to features in a random order fixed by ``seed``)
                  | "explicit" (``magnitudes``, n positive values).
    spread [(0.5, 1.5)]  each active coefficient is multiplied by U[lo, hi] (docs/paper.md section 1, [unknown]).
    noise [0.0]   standard deviation sigma of additive Gaussian noise on x.
    scale [1.0]   every sample (coefficients and noise) is multiplied by this constant C > 0 (our choice:
                  a world in other units, to check that a method does not depend on the input scale).

Seed
    seed [0]      fixes the dictionary and the magnitude order. The *data seed* of
                  ``World.stream(batch_size, seed)`` fixes the samples.

Options that only make sense for one kind (``coherence``, ``matrix``, ``rho2``, ``frequencies``,
``f_max``, ``f_min``, ``magnitudes``) must be left ``None`` otherwise, so that nothing is silently ignored.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..configs import Config
from ..errors import ConfigError, require, require_float_range, require_int_range
from .bounds import coherent_minimum, welch_bound

DICTIONARIES = ("gaussian", "orthogonal", "coherent", "matrix")
SUPPORTS = ("exact", "bernoulli", "mixture", "cooccur", "hierarchy", "structured")
FREQUENCY_PROFILES = ("uniform", "zipf", "explicit")
MAGNITUDE_PROFILES = ("uniform", "geometric", "explicit")


def zipf_frequencies(n: int, exponent: float, f_max: float, f_min: float) -> np.ndarray:
    """Zipf-shaped frequencies from f_max (feature 0) down to f_min (feature n-1).

    f_i = f_max * r_i^(-a) with ranks r_i = 1 + i/(n-1) * ((f_max/f_min)^(1/a) - 1), i.e. a power law
    of exponent a on ranks rescaled to hit both ends (a Zipf-Mandelbrot shape; our choice). When
    f_min = f_max * n^(-a) the ranks are 1..n, a pure Zipf law.
    """
    if n == 1:
        return np.array([f_max], dtype=np.float64)
    top_rank = (f_max / f_min) ** (1.0 / exponent)
    ranks = 1.0 + np.arange(n, dtype=np.float64) / (n - 1) * (top_rank - 1.0)
    return f_max * ranks ** (-exponent)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


@dataclass(frozen=True)
class WorldConfig(Config):
    """A world of superposed features; see the module docstring for every field and its source."""

    n: int = 256
    d: int = 64
    s: int = 3
    dictionary: str = "gaussian"
    coherence: float | None = None
    matrix: str | tuple | None = None
    support: str = "exact"
    frequency_profile: str = "uniform"
    frequency: float | None = None
    zipf_exponent: float = 1.0
    f_max: float | None = None
    f_min: float | None = None
    frequencies: tuple | None = None
    mixture_levels: tuple = (3, 20)
    mixture_weights: tuple = (0.5, 0.5)
    rho2: float | None = None
    hierarchy_children: int = 4
    child_probability: float = 1.0
    correlation_rank: int = 0
    correlation_scale: float = 0.0
    magnitude_profile: str = "uniform"
    imbalance: float = 1.0
    magnitudes: tuple | None = None
    spread: tuple = (0.5, 1.5)
    noise: float = 0.0
    scale: float = 1.0
    seed: int = 0

    # -- derived quantities that need no sampling ------------------------------------------------
    @property
    def base_frequency(self) -> float:
        """The uniform frequency of the Bernoulli-type supports: ``frequency`` or s/n (s/P for the
        parents of a structured world)."""
        return float(self.frequency) if self.frequency is not None else self.s / self.n_profiled

    @property
    def n_profiled(self) -> int:
        """How many features ``frequency_profile`` describes: the P parents of a structured world, else n."""
        return self.n_parents if self.support == "structured" else self.n

    @property
    def n_parents(self) -> int:
        """Number of parent features of a hierarchy world: n // (1 + hierarchy_children)."""
        return self.n // (1 + self.hierarchy_children)

    def resolved_zipf(self) -> tuple[float, float]:
        """(f_max, f_min) of the Zipf profile with defaults filled in.

        Default f_max: the pure-Zipf level whose mean L0 is s, i.e. s / sum_{r=1..n} r^-a, capped at 1.
        Default f_min: f_max * n^-a (a pure Zipf law).
        """
        a = float(self.zipf_exponent)
        m = self.n_profiled
        if self.f_max is not None:
            f_max = float(self.f_max)
        else:
            f_max = min(1.0, self.s / float(np.sum(np.arange(1, m + 1, dtype=np.float64) ** (-a))))
        f_min = float(self.f_min) if self.f_min is not None else f_max * m ** (-a)
        return f_max, f_min

    # -- validation --------------------------------------------------------------------------------
    def validate(self) -> None:
        require_int_range("n", self.n, 1)
        require_int_range("d", self.d, 1)
        require_int_range("seed", self.seed, 0)
        require(self.dictionary in DICTIONARIES,
                f"dictionary must be one of {list(DICTIONARIES)}, got {self.dictionary!r}")
        require(self.support in SUPPORTS, f"support must be one of {list(SUPPORTS)}, got {self.support!r}")
        require(self.frequency_profile in FREQUENCY_PROFILES,
                f"frequency_profile must be one of {list(FREQUENCY_PROFILES)}, got {self.frequency_profile!r}")
        require(self.magnitude_profile in MAGNITUDE_PROFILES,
                f"magnitude_profile must be one of {list(MAGNITUDE_PROFILES)}, got {self.magnitude_profile!r}")
        if self.support in ("hierarchy", "structured"):
            require_int_range("hierarchy_children", self.hierarchy_children, 1, max(1, self.n - 1))
            require(self.n_parents >= 1,
                    f"n must be at least 1 + hierarchy_children = {1 + self.hierarchy_children} "
                    f"for a hierarchy, got {self.n}")
            require_int_range("s", self.s, 1, self.n_parents)
        else:
            require(isinstance(self.s, int) and not isinstance(self.s, bool) and 1 <= self.s <= self.n,
                    f"s must be an integer in [1, n={self.n}], got {self.s!r}")
        self._validate_dictionary()
        self._validate_support()
        self._validate_coefficients()

    def _validate_dictionary(self) -> None:
        n, d = self.n, self.d
        if self.dictionary == "coherent":
            require(self.coherence is not None, "coherence must be given (a number in (0, 1)) for dictionary='coherent'")
            lo = coherent_minimum(n, d)
            require(n >= 2, f"n must be at least 2 for dictionary='coherent', got {n}")
            ok = _is_number(self.coherence) and lo <= float(self.coherence) < 1 and float(self.coherence) > 0
            if lo == 0:
                require(ok, f"coherence must be in (0, 1) for n={n} <= d={d}, got {self.coherence!r}")
            require(ok, f"coherence must be in [{lo:.4g}, 1) for n={n}, d={d} (Welch bound "
                    f"{welch_bound(n, d):.4g}; below {lo:.4g} use dictionary='orthogonal'), got {self.coherence!r}")
        else:
            require(self.coherence is None,
                    f"coherence applies only to dictionary='coherent', got coherence={self.coherence!r} "
                    f"with dictionary={self.dictionary!r}")
        if self.dictionary == "matrix":
            require(self.matrix is not None, "matrix must be a .npy path or a nested list [n][d] for dictionary='matrix'")
            shape = load_matrix(self.matrix).shape
            require(shape == (n, d), f"matrix must have shape (n, d) = ({n}, {d}), got {shape}")
        else:
            require(self.matrix is None, f"matrix applies only to dictionary='matrix', got dictionary={self.dictionary!r}")

    def _validate_support(self) -> None:
        n = self.n_profiled
        uses_frequency = self.support in ("bernoulli", "structured", "cooccur") and (
            self.support == "cooccur" or self.frequency_profile == "uniform")
        if self.frequency is not None:
            require(uses_frequency, "frequency applies only to support='bernoulli' or 'structured' with "
                    f"frequency_profile='uniform', or support='cooccur', got support={self.support!r}")
            require_float_range("frequency", self.frequency, 0.0, 1.0, low_open=True)
        elif uses_frequency:
            require_float_range("frequency (default s/n)", self.base_frequency, 0.0, 1.0, low_open=True)
        profile_used = self.support in ("bernoulli", "structured")
        zipf = profile_used and self.frequency_profile == "zipf"
        explicit = profile_used and self.frequency_profile == "explicit"
        if not profile_used:
            require(self.frequency_profile == "uniform", "frequency_profile applies only to support='bernoulli' "
                    f"or 'structured', got support={self.support!r}")
        for name in ("f_max", "f_min"):
            if getattr(self, name) is not None:
                require(zipf, f"{name} applies only to frequency_profile='zipf' with support='bernoulli' or 'structured'")
                require_float_range(name, getattr(self, name), 0.0, 1.0, low_open=True)
        if zipf:
            require_float_range("zipf_exponent", self.zipf_exponent, 0.0, math.inf, low_open=True, high_open=True)
            f_max, f_min = self.resolved_zipf()
            require(f_min <= f_max, f"f_min must be in (0, f_max={f_max:.4g}], got {f_min:.4g}")
        if self.frequencies is not None:
            require(explicit, "frequencies applies only to frequency_profile='explicit' with support='bernoulli' "
                    "or 'structured'")
        if explicit:
            what = f"P={n} (one per parent)" if self.support == "structured" else f"n={n}"
            require(isinstance(self.frequencies, (tuple, list)) and len(self.frequencies) == n,
                    f"frequencies must be a list of {what} numbers in (0, 1], got "
                    f"{'a list of ' + str(len(self.frequencies)) if isinstance(self.frequencies, (tuple, list)) else repr(self.frequencies)}")
            bad = [f for f in self.frequencies if not (_is_number(f) and 0 < float(f) <= 1)]
            require(not bad, f"frequencies must all be in (0, 1], got {bad[0]!r}" if bad else "")
        if self.support == "mixture":
            levels, weights = self.mixture_levels, self.mixture_weights
            require(isinstance(levels, (tuple, list)) and len(levels) >= 1,
                    f"mixture_levels must be a non-empty list of integers in [1, n={n}], got {levels!r}")
            for level in levels:
                require_int_range("mixture_levels entry", level, 1, n)
            require(isinstance(weights, (tuple, list)) and len(weights) == len(levels),
                    f"mixture_weights must be a list of {len(levels)} positive numbers (one per level), got {weights!r}")
            require(all(_is_number(w) and float(w) >= 0 for w in weights) and sum(float(w) for w in weights) > 0,
                    f"mixture_weights must be non-negative with a positive sum, got {weights!r}")
        if self.rho2 is not None or self.support == "cooccur":
            require(self.support == "cooccur", f"rho2 applies only to support='cooccur', got support={self.support!r}")
            require(n >= 2, f"n must be at least 2 for support='cooccur', got {n}")
            f = self.base_frequency
            require(self.rho2 is not None, "rho2 must be given for support='cooccur'")
            require(_is_number(self.rho2) and f <= float(self.rho2) <= 1.0,
                    f"rho2 must be in [f={f:.4g}, 1] for support='cooccur' (max_(i!=j) P(h_j>0|h_i>0) "
                    f"cannot fall below the frequency f of independent pairs), got {self.rho2!r}")
        if self.support in ("hierarchy", "structured"):
            require_float_range("child_probability", self.child_probability, 0.0, 1.0)
        if self.support == "structured":
            require_int_range("correlation_rank", self.correlation_rank, 0, self.n_parents)
            require_float_range("correlation_scale", self.correlation_scale, 0.0, 1.0, high_open=True)
            require(self.correlation_scale == 0 or self.correlation_rank >= 1,
                    f"correlation_rank must be at least 1 when correlation_scale > 0, got {self.correlation_rank}")
        else:
            require(self.correlation_rank == 0 and self.correlation_scale == 0.0,
                    "correlation_rank and correlation_scale apply only to support='structured', got "
                    f"support={self.support!r}")

    def _validate_coefficients(self) -> None:
        n = self.n
        spread = self.spread
        require(isinstance(spread, (tuple, list)) and len(spread) == 2 and all(_is_number(v) for v in spread)
                and 0 < float(spread[0]) <= float(spread[1]) <= COEFFICIENT_LIMIT,
                f"spread must be a pair (lo, hi) with 0 < lo <= hi <= {COEFFICIENT_LIMIT:.0e} "
                f"(larger coefficients overflow float32 in training), got {spread!r}")
        require_float_range("noise", self.noise, 0.0, COEFFICIENT_LIMIT)
        require_float_range("scale", self.scale, 0.0, COEFFICIENT_LIMIT, low_open=True)
        if self.magnitude_profile == "geometric" or self.imbalance != 1.0:
            require(self.magnitude_profile == "geometric",
                    f"imbalance applies only to magnitude_profile='geometric', got {self.magnitude_profile!r}")
            require_float_range("imbalance", self.imbalance, 1.0, math.inf, high_open=True)
        if self.magnitude_profile == "explicit" or self.magnitudes is not None:
            require(self.magnitude_profile == "explicit",
                    f"magnitudes applies only to magnitude_profile='explicit', got {self.magnitude_profile!r}")
            require(isinstance(self.magnitudes, (tuple, list)) and len(self.magnitudes) == n
                    and all(_is_number(m) and float(m) > 0 for m in self.magnitudes),
                    f"magnitudes must be a list of n={n} positive numbers, got {_describe(self.magnitudes)}")
            top = max(float(m) for m in self.magnitudes) * float(spread[1])
            require(top <= COEFFICIENT_LIMIT,
                    f"magnitudes times spread hi must be at most {COEFFICIENT_LIMIT:.0e} (larger coefficients "
                    f"overflow float32 in training), got {top:.3g}")


# Largest coefficient (and noise std) a world may have: sums of squares of [B, d] float32 batches stay
# finite and precise below it (our choice; float32 overflows at 3.4e38).
COEFFICIENT_LIMIT = 1e6


def _describe(value) -> str:
    if isinstance(value, (tuple, list)):
        return f"a list of {len(value)} values"
    return repr(value)


def load_matrix(matrix) -> np.ndarray:
    """The user's dictionary as float64 [n, d]: from a .npy path or a nested list. ConfigError if unreadable."""
    if isinstance(matrix, (str, os.PathLike)):
        path = os.fspath(matrix)
        require(os.path.isfile(path), f"matrix must be an existing .npy file, got {path!r}")
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"matrix must be a readable .npy file, got {path!r} ({exc})") from None
    else:
        try:
            array = np.asarray(matrix, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError("matrix must be a nested list of numbers [n][d]") from None
    require(array.ndim == 2, f"matrix must be 2-dimensional [n, d], got {array.ndim} dimension(s)")
    require(np.isfinite(array).all(), "matrix must contain only finite numbers")
    return array.astype(np.float64)
