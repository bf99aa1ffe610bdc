"""Supports: which features are active in each sample, as padded index lists [B, K] (-1 = padding).

Each support kind is one :class:`Support` subclass registered by name (``@register_support("exact")``)
with its own params dataclass (``Kind.Params``, fields declared with :func:`~.registry.param`), and
holds everything about the kind: its checks in the world's context (``validate``, ``validate_size``),
its sampler, and its exact predictions: ``expected_frequencies`` gives f_i = P(h_i > 0),
``expected_rho2`` gives max_{i != j} P(h_j > 0 | h_i > 0), ``l0_high`` the largest (or a high
quantile of the) L0 of a sample. ``Support(cfg)`` builds the kind ``cfg.support`` names.

Built-in kinds (each class's docstring has its math and source): ``exact`` [default], ``bernoulli``,
``mixture``, ``cooccur``, ``hierarchy``, ``structured``.

Every sampler costs at most O(n) per sample and never builds a dense [B, n] coefficient matrix for
the exact-s and mixture kinds (those cost O(s^2) per sample). Random numbers come only from the
``torch.Generator`` passed in, so a generator state fixes the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.special import ndtri, owens_t
from scipy.stats import norm

from ..errors import require, require_float_range, require_int_range
from .registry import SUPPORTS, SupportParams, is_number, param, register_support

if TYPE_CHECKING:
    from .config import WorldConfig

FREQUENCY_PROFILES = ("uniform", "zipf", "explicit")
def floyd_subsets(sizes_B: torch.Tensor, n: int, k_max: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform random subsets of {0..n-1} of per-sample sizes, as [B, k_max] (-1 after the subset).

    Floyd's algorithm (Bentley & Floyd 1987), vectorised over the batch: for j = n-size, ..., n-1 draw
    t uniform in [0, j]; add t unless already present, else add j. Each size-s subset is equally
    likely, at O(s^2) work per sample (the duplicate check) and no O(n) work at all.
    """
    B = sizes_B.shape[0]
    if k_max == 0:
        return torch.empty((B, 0), dtype=torch.int64)
    step_K = torch.arange(k_max)
    top_BK = n - sizes_B[:, None] + step_K[None, :]          # j for each step
    uniforms_BK = torch.rand(B, k_max, generator=generator, dtype=torch.float64)
    draws_BK = (uniforms_BK * (top_BK + 1)).to(torch.int64)  # uniform in [0, j]
    for t in range(1, k_max):
        taken_B = (draws_BK[:, :t] == draws_BK[:, t:t + 1]).any(dim=1)
        draws_BK[:, t] = torch.where(taken_B, top_BK[:, t], draws_BK[:, t])
    return draws_BK.masked_fill_(step_K[None, :] >= sizes_B[:, None], -1)


def bernoulli_subsets(batch_size: int, n: int, q: float, generator: torch.Generator) -> torch.Tensor:
    """Independent Bernoulli(q) subsets of {0..n-1} as padded index lists [B, K].

    Sparse path (n q <= 32): the subset size is Binomial(n, q) and, given its size, the subset is
    uniform, so draw the size then a Floyd subset: O(K^2) per sample instead of O(n). Dense path
    otherwise: rand(B, n) < q.
    """
    if n * q <= 32:
        sizes_B = torch.binomial(torch.full((batch_size,), float(n)), torch.full((batch_size,), float(q)),
                                 generator=generator).to(torch.int64)
        return floyd_subsets(sizes_B, n, int(sizes_B.max()) if batch_size else 0, generator)
    return mask_to_indices(torch.rand(batch_size, n, generator=generator) < q)


def drop_and_pack(indices_BK: torch.Tensor, drop_BK: torch.Tensor) -> torch.Tensor:
    """Set dropped entries to -1 and move the kept ones first (stable), trimming empty columns."""
    indices_BK = indices_BK.masked_fill(drop_BK, -1)
    order = torch.argsort((indices_BK < 0).to(torch.int8), dim=1, stable=True)
    packed = torch.gather(indices_BK, 1, order)
    K = int((packed >= 0).sum(dim=1).max()) if packed.numel() else 0
    return packed[:, :K].contiguous()


def mask_to_indices(mask_BN: torch.Tensor) -> torch.Tensor:
    """Padded index lists [B, K] of the True entries of a boolean mask, K = the largest row count."""
    B = mask_BN.shape[0]
    counts = mask_BN.sum(dim=1)
    K = int(counts.max()) if B > 0 else 0
    rows, cols = mask_BN.nonzero(as_tuple=True)  # row-major order
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.shape[0]) - starts[rows]
    indices = torch.full((B, K), -1, dtype=torch.int64)
    indices[rows, slot] = cols
    return indices




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


# -- parameters shared by several kinds (one declaration each, so they are declared alike) -----------
def frequency_param():
    return param(None, "occurrence frequency in (0, 1] of a uniform Bernoulli or cooccur world (default s/n)",
                 cli_type=float, metavar="F", implies={"support": "bernoulli"},
                 used_when={"frequency_profile": ("uniform",)})


def _zipf_param(default, help: str, lenient: bool = False):
    return param(default, help, cli_type=float, implies={"support": "bernoulli", "frequency_profile": "zipf"},
                 used_when={"frequency_profile": ("zipf",)}, lenient=lenient)


@dataclass(frozen=True)
class FrequencyProfileParams(SupportParams):
    """Per-feature firing frequencies f_i (of the n features, or of a structured world's P parents)."""

    frequency_profile: str = param("uniform", "Bernoulli frequencies: uniform (--frequency), zipf (--zipf-exponent, "
                                   "--f-max, --f-min) or explicit", cli_type=str, choices=FREQUENCY_PROFILES,
                                   implies={"support": "bernoulli"})
    frequency: float | None = frequency_param()
    zipf_exponent: float = _zipf_param(1.0, "Zipf exponent a > 0 (default 1)", lenient=True)
    f_max: float | None = _zipf_param(None, "largest Zipf frequency (default: mean L0 = s)")
    f_min: float | None = _zipf_param(None, "smallest Zipf frequency (default f_max n^-a)")
    frequencies: tuple | None = param(None, "one frequency in (0, 1] per profiled feature", flag=None,
                                      used_when={"frequency_profile": ("explicit",)})


@dataclass(frozen=True)
class HierarchyParams(SupportParams):
    """Parents and their mutually exclusive children."""

    hierarchy_children: int = param(4, "children per parent: P = n // (1 + C) parents (default 4)",
                                    cli_type=int, metavar="C", implies={"support": "hierarchy"}, lenient=True)
    child_probability: float = param(1.0, "probability that an active parent has one of its children active "
                                     "(default 1)", cli_type=float, metavar="Q", implies={"support": "hierarchy"},
                                     lenient=True)


class Support:
    """Base of the support kinds: sample index lists and predict their statistics.

    ``Support(cfg)`` builds the registered kind that ``cfg.support`` names. A kind sets ``Params`` (its
    own dataclass, possibly empty), ``summary`` (a few words for ``--help``), overrides the checks
    (classmethods on the flat config, run by ``WorldConfig.validate``) as needed, and implements
    ``expected_frequencies``, ``_rho2``, ``sample`` (and ``max_active``, ``l0_high`` when it knows better
    than the defaults).
    """

    name: str | None = None       # set by register_support
    Params = SupportParams
    summary = ""
    padded = True                 # index lists may hold -1 (False: every slot is a feature)
    hierarchical = False          # an active child implies its parent (H3 fails by construction)

    def __new__(cls, cfg: WorldConfig):
        if cls is Support:
            cls = SUPPORTS.get(cfg.support)
        return super().__new__(cls)

    def __init__(self, cfg: WorldConfig):
        self.cfg = cfg
        self.n = cfg.n

    # -- checks in the world's context (classmethods: no sampler is built) ------------------------
    @classmethod
    def validate_size(cls, cfg: WorldConfig) -> None:
        """Check s (and what the layout needs), before the dictionary's checks."""
        require(isinstance(cfg.s, int) and not isinstance(cfg.s, bool) and 1 <= cfg.s <= cfg.n,
                f"s must be an integer in [1, n={cfg.n}], got {cfg.s!r}")

    @classmethod
    def validate(cls, cfg: WorldConfig) -> None:
        """Check the kind's own params (that params of other kinds are left alone is checked for it)."""

    @classmethod
    def n_profiled(cls, cfg: WorldConfig) -> int:
        """How many features a frequency profile describes (n unless the kind says otherwise)."""
        return cfg.n

    # -- predictions -------------------------------------------------------------------------------
    def expected_frequencies(self) -> np.ndarray:
        """f_i = P(h_i > 0) for every feature, float64 [n]."""
        raise NotImplementedError

    def expected_rho2(self) -> float:
        """max_{i != j} P(h_j > 0 | h_i > 0) under the model (0 when n = 1)."""
        return 0.0 if self.n < 2 else self._rho2()

    def _rho2(self) -> float:
        raise NotImplementedError

    @property
    def max_active(self) -> int | None:
        """Fixed padding width K of the index lists, or None when it varies from batch to batch."""
        return None

    @classmethod
    def s_theorem(cls, cfg: WorldConfig, expected_l0: float) -> float:
        """The s of the theorem (docs/paper.md section 5): the expected L0 unless the kind fixes it."""
        return expected_l0

    @classmethod
    def l0_high(cls, cfg: WorldConfig, frequencies: np.ndarray, quantile: float) -> tuple[float, str]:
        """(the largest L0 a sample can have, or its ``quantile``; how it was obtained). Default: the
        normal approximation ceil(E L0 + z_q sd(L0)), capped at n, with ``_l0_variance``."""
        f = np.asarray(frequencies, dtype=np.float64)
        z = float(norm.ppf(quantile))
        mean = float(f.sum())
        var = cls._l0_variance(cfg, f)
        return float(min(cfg.n, math.ceil(mean + z * math.sqrt(max(var, 0.0))))), f"normal {quantile:g}-quantile"

    @classmethod
    def _l0_variance(cls, cfg: WorldConfig, f: np.ndarray) -> float:
        """Var(L0) as if the features fired independently: sum_i f_i (1 - f_i)."""
        return float((f * (1 - f)).sum())

    # -- sampling ----------------------------------------------------------------------------------
    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Active indices [B, K] int64, -1 = padding."""
        raise NotImplementedError


def check_frequency(cfg: WorldConfig) -> None:
    """The uniform frequency (``frequency``, default s/n or s/P) lies in (0, 1]."""
    if cfg.frequency is not None:
        require_float_range("frequency", cfg.frequency, 0.0, 1.0, low_open=True)
    else:
        require_float_range("frequency (default s/n)", cfg.base_frequency, 0.0, 1.0, low_open=True)


class ProfiledSupport(Support):
    """A support whose features (or parents) fire with frequencies from a profile:
    "uniform" (f_i = ``frequency``, default s/n), "zipf" (``zipf_exponent``, ``f_max``, ``f_min``, see
    :func:`zipf_frequencies`; feature 0 most frequent) or "explicit" (``frequencies``)."""

    def __init__(self, cfg: WorldConfig):
        super().__init__(cfg)
        self._freq = torch.as_tensor(self.profile_frequencies(cfg), dtype=torch.float64)   # [n_profiled]

    @classmethod
    def resolved_zipf(cls, cfg: WorldConfig) -> tuple[float, float]:
        """(f_max, f_min) of the Zipf profile with defaults filled in.

        Default f_max: the pure-Zipf level whose mean L0 is s, i.e. s / sum_{r=1..m} r^-a, capped at 1
        (m = the profiled features). Default f_min: f_max * m^-a (a pure Zipf law).
        """
        a = float(cfg.zipf_exponent)
        m = cls.n_profiled(cfg)
        if cfg.f_max is not None:
            f_max = float(cfg.f_max)
        else:
            f_max = min(1.0, cfg.s / float(np.sum(np.arange(1, m + 1, dtype=np.float64) ** (-a))))
        f_min = float(cfg.f_min) if cfg.f_min is not None else f_max * m ** (-a)
        return f_max, f_min

    @classmethod
    def profile_frequencies(cls, cfg: WorldConfig) -> np.ndarray:
        m = cls.n_profiled(cfg)
        if cfg.frequency_profile == "uniform":
            return np.full(m, cfg.base_frequency)
        if cfg.frequency_profile == "zipf":
            f_max, f_min = cls.resolved_zipf(cfg)
            return zipf_frequencies(m, float(cfg.zipf_exponent), f_max, f_min)
        return np.asarray(cfg.frequencies, dtype=np.float64)

    @classmethod
    def validate(cls, cfg: WorldConfig) -> None:
        super().validate(cfg)
        profile, m = cfg.frequency_profile, cls.n_profiled(cfg)
        if profile == "uniform":
            check_frequency(cfg)
        for name in ("f_max", "f_min"):
            if getattr(cfg, name) is not None:
                require_float_range(name, getattr(cfg, name), 0.0, 1.0, low_open=True)
        if profile == "zipf":
            require_float_range("zipf_exponent", cfg.zipf_exponent, 0.0, math.inf, low_open=True, high_open=True)
            f_max, f_min = cls.resolved_zipf(cfg)
            require(f_min <= f_max, f"f_min must be in (0, f_max={f_max:.4g}], got {f_min:.4g}")
        if profile == "explicit":
            what = f"P={m} (one per parent)" if cls.hierarchical else f"n={m}"
            freqs = cfg.frequencies
            require(isinstance(freqs, (tuple, list)) and len(freqs) == m,
                    f"frequencies must be a list of {what} numbers in (0, 1], got "
                    f"{'a list of ' + str(len(freqs)) if isinstance(freqs, (tuple, list)) else repr(freqs)}")
            bad = [f for f in freqs if not (is_number(f) and 0 < float(f) <= 1)]
            require(not bad, f"frequencies must all be in (0, 1], got {bad[0]!r}" if bad else "")


@register_support("exact")
class Exact(Support):
    """Exactly s of n features, uniform without replacement (f = s/n; the theorem's model,
    docs/paper.md section 1). Floyd's algorithm: O(s^2) per sample, no padding."""

    summary = "s uniform, default"
    padded = False

    def expected_frequencies(self) -> np.ndarray:
        return np.full(self.n, self.cfg.s / self.n)

    def _rho2(self) -> float:
        return (self.cfg.s - 1) / (self.n - 1)

    @property
    def max_active(self) -> int:
        return self.cfg.s

    @classmethod
    def s_theorem(cls, cfg: WorldConfig, expected_l0: float) -> float:
        return float(cfg.s)

    @classmethod
    def l0_high(cls, cfg: WorldConfig, frequencies: np.ndarray, quantile: float) -> tuple[float, str]:
        return float(cfg.s), "exact s"

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        s = self.cfg.s
        return floyd_subsets(torch.full((batch_size,), s, dtype=torch.int64), self.n, s, generator)


@register_support("bernoulli")
class Bernoulli(ProfiledSupport):
    """Independent features, P(h_i > 0) = f_i from ``frequency_profile`` (see :class:`ProfiledSupport`;
    the default uniform frequency s/n makes the expected L0 s). Independence gives
    max_{i != j} P(h_j > 0 | h_i > 0) = max_j f_j."""

    @dataclass(frozen=True)
    class Params(FrequencyProfileParams):
        pass

    summary = "independent features"

    def expected_frequencies(self) -> np.ndarray:
        return self._freq.numpy().copy()

    def _rho2(self) -> float:
        f = np.sort(self._freq.numpy())
        return float(f[-1])  # independent features: P(j | i) = f_j, largest over j != i

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        # Thinning: Bernoulli(f_max) candidates, each kept with probability f_i / f_max, gives
        # independent Bernoulli(f_i) features exactly.
        f_top = float(self._freq.max())
        candidates = bernoulli_subsets(batch_size, self.n, f_top, generator)
        if bool((self._freq == f_top).all()):
            return candidates
        keep_prob = (self._freq / f_top)[candidates.clamp(min=0)]
        u = torch.rand(candidates.shape, generator=generator, dtype=torch.float64)
        return drop_and_pack(candidates, (candidates < 0) | (u >= keep_prob))


@register_support("mixture")
class Mixture(Support):
    """Each sample draws a sparsity level from ``mixture_levels`` with probabilities proportional to
    ``mixture_weights``, then that many features uniformly: the paper's imbalanced toy world is levels
    (3, 20), weights (0.5, 0.5) (docs/paper.md section 6). f_i = E[level] / n and
    max P(h_j>0 | h_i>0) = E[L (L-1)] / ((n-1) E[L])."""

    @dataclass(frozen=True)
    class Params(SupportParams):
        mixture_levels: tuple = param((3, 20), "sparsity levels of a mixture, each in [1, n] (default 3 20)",
                                      cli_type=int, nargs="+", metavar="S", lenient=True)
        mixture_weights: tuple = param((0.5, 0.5), "weights of the levels, non-negative with a positive sum "
                                       "(default 0.5 0.5)", cli_type=float, nargs="+", metavar="W", lenient=True)

    summary = "of sparsity levels"

    def __init__(self, cfg: WorldConfig):
        super().__init__(cfg)
        w = np.asarray(cfg.mixture_weights, dtype=np.float64)
        self._levels = torch.as_tensor(cfg.mixture_levels, dtype=torch.int64)
        self._level_cdf = torch.as_tensor(np.cumsum(w / w.sum()), dtype=torch.float64)
        self._level_weights = w / w.sum()

    @classmethod
    def validate(cls, cfg: WorldConfig) -> None:
        n, levels, weights = cfg.n, cfg.mixture_levels, cfg.mixture_weights
        require(isinstance(levels, (tuple, list)) and len(levels) >= 1,
                f"mixture_levels must be a non-empty list of integers in [1, n={n}], got {levels!r}")
        for level in levels:
            require_int_range("mixture_levels entry", level, 1, n)
        require(isinstance(weights, (tuple, list)) and len(weights) == len(levels),
                f"mixture_weights must be a list of {len(levels)} positive numbers (one per level), got {weights!r}")
        require(all(is_number(w) and float(w) >= 0 for w in weights) and sum(float(w) for w in weights) > 0,
                f"mixture_weights must be non-negative with a positive sum, got {weights!r}")

    def expected_frequencies(self) -> np.ndarray:
        mean_level = float(np.dot(self._level_weights, np.asarray(self.cfg.mixture_levels, dtype=np.float64)))
        return np.full(self.n, mean_level / self.n)

    def _rho2(self) -> float:
        levels = np.asarray(self.cfg.mixture_levels, dtype=np.float64)
        w = self._level_weights
        return float(np.dot(w, levels * (levels - 1)) / ((self.n - 1) * np.dot(w, levels)))

    @property
    def max_active(self) -> int:
        return int(max(self.cfg.mixture_levels))

    @classmethod
    def l0_high(cls, cfg: WorldConfig, frequencies: np.ndarray, quantile: float) -> tuple[float, str]:
        levels = [lvl for lvl, w in zip(cfg.mixture_levels, cfg.mixture_weights) if float(w) > 0]
        return float(max(levels)), "largest mixture level"

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(batch_size, generator=generator, dtype=torch.float64)
        which = torch.searchsorted(self._level_cdf, u, right=True).clamp(max=len(self._levels) - 1)
        sizes = self._levels[which]
        return floyd_subsets(sizes, self.n, int(self._levels.max()), generator)


@register_support("cooccur")
class Cooccur(Support):
    """Features in disjoint pairs (2k, 2k+1); each fires with frequency f (``frequency``, default s/n)
    and its partner fires with it with probability ``rho2``; pairs are independent, so
    max_{i!=j} P(h_j>0 | h_i>0) = rho2 exactly (docs/paper.md section 2, H3; our construction). rho2 must
    lie in [f, 1] (below f the independent pairs dominate) and f (2 - rho2) <= 1. An odd last feature
    is Bernoulli(f)."""

    @dataclass(frozen=True)
    class Params(SupportParams):
        frequency: float | None = frequency_param()
        rho2: float | None = param(None, "planted co-occurrence max P(h_j>0 | h_i>0), in [f, 1] (selects support "
                                   "cooccur)", cli_type=float)

    summary = "planted rho2"

    @classmethod
    def validate(cls, cfg: WorldConfig) -> None:
        check_frequency(cfg)
        require(cfg.n >= 2, f"n must be at least 2 for support='cooccur', got {cfg.n}")
        f = cfg.base_frequency
        require(cfg.rho2 is not None, "rho2 must be given for support='cooccur'")
        require(is_number(cfg.rho2) and f <= float(cfg.rho2) <= 1.0,
                f"rho2 must be in [f={f:.4g}, 1] for support='cooccur' (max_(i!=j) P(h_j>0|h_i>0) "
                f"cannot fall below the frequency f of independent pairs), got {cfg.rho2!r}")

    def expected_frequencies(self) -> np.ndarray:
        return np.full(self.n, self.cfg.base_frequency)

    def _rho2(self) -> float:
        return float(max(self.cfg.rho2, self.cfg.base_frequency))

    @classmethod
    def _l0_variance(cls, cfg: WorldConfig, f: np.ndarray) -> float:
        # Var of a pair's count: a, b ~ Bernoulli(f), P(a b) = f rho2, so 2f + 2 f rho2 - 4 f^2.
        base, rho2 = cfg.base_frequency, float(cfg.rho2)
        return cfg.n // 2 * (2 * base * (1 + rho2) - 4 * base * base) + (cfg.n % 2) * base * (1 - base)

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        # Pair k = features (2k, 2k+1). A pair is touched with probability q = f (2 - rho2), pairs
        # independently; a touched pair is "both" with probability rho2 / (2 - rho2), else "a only" or
        # "b only" equally. So P(a) = P(b) = f and P(b | a) = rho2. An odd last feature is Bernoulli(f).
        cfg, n, B = self.cfg, self.n, batch_size
        f, rho2 = cfg.base_frequency, float(cfg.rho2)
        n_pairs = n // 2
        q = f * (2.0 - rho2)
        pairs_BK = bernoulli_subsets(B, n_pairs, q, generator)
        u_BK = torch.rand(pairs_BK.shape, generator=generator, dtype=torch.float64)
        p_both = rho2 / (2.0 - rho2)
        first_on = (u_BK < p_both) | (u_BK >= p_both + (1.0 - p_both) / 2)   # both, or a alone
        second_on = u_BK < p_both + (1.0 - p_both) / 2                      # both, or b alone
        pad = pairs_BK < 0
        parts = [drop_and_pack(2 * pairs_BK, pad | ~first_on), drop_and_pack(2 * pairs_BK + 1, pad | ~second_on)]
        if n % 2:
            lone_B = torch.rand(B, generator=generator, dtype=torch.float64) < f
            parts.append(torch.where(lone_B, n - 1, -1)[:, None])
        merged = torch.cat(parts, dim=1)
        return drop_and_pack(merged, merged < 0)


class Hierarchical(Support):
    """P = n // (1 + ``hierarchy_children``) parents (features 0..P-1) and n - P children; child P + j
    belongs to parent j mod P. Each active parent has one of its children active with probability
    ``child_probability`` (children of one parent are mutually exclusive), so an active child implies
    its parent: P(parent | child) = 1 whenever children fire."""

    hierarchical = True

    def __init__(self, cfg: WorldConfig):
        super().__init__(cfg)
        P = cfg.n_parents
        n_children = cfg.n - P
        # Parent p owns children P + p + P*m for m = 0 .. count_p - 1 (child P + j has parent j mod P).
        self._children_count = torch.as_tensor(
            [(n_children - p + P - 1) // P if p < n_children else 0 for p in range(P)], dtype=torch.int64)

    @classmethod
    def validate_size(cls, cfg: WorldConfig) -> None:
        require_int_range("hierarchy_children", cfg.hierarchy_children, 1, max(1, cfg.n - 1))
        require(cfg.n_parents >= 1, f"n must be at least 1 + hierarchy_children = {1 + cfg.hierarchy_children} "
                f"for a hierarchy, got {cfg.n}")
        require_int_range("s", cfg.s, 1, cfg.n_parents)

    @classmethod
    def validate(cls, cfg: WorldConfig) -> None:
        super().validate(cfg)
        require_float_range("child_probability", cfg.child_probability, 0.0, 1.0)

    def _with_children(self, f_parent: np.ndarray) -> np.ndarray:
        """f [n]: the parents' f_parent, then each child's f_parent(its parent) q / (children of it)."""
        cfg, n = self.cfg, self.n
        P = cfg.n_parents
        f = np.empty(n)
        f[:P] = f_parent
        counts = self._children_count.numpy()
        child_parent = np.arange(n - P) % P
        f[P:] = f_parent[child_parent] * cfg.child_probability / counts[child_parent]
        return f

    def _children_fire(self) -> bool:
        return self.cfg.child_probability > 0 and self.cfg.n > self.cfg.n_parents

    def _children_of(self, parents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One child per active parent with probability child_probability (-1 otherwise); parents [B, K]
        with -1 padding allowed."""
        cfg = self.cfg
        P = cfg.n_parents
        u = torch.rand(*parents.shape, 2, generator=generator, dtype=torch.float64)
        safe = parents.clamp(min=0)
        counts = self._children_count[safe]
        which = torch.floor(u[..., 0] * counts.to(torch.float64)).to(torch.int64)
        children = P + safe + P * which
        keep = (parents >= 0) & (u[..., 1] < cfg.child_probability) & (counts > 0)
        return torch.where(keep, children, torch.full_like(children, -1))


@register_support("hierarchy")
class Hierarchy(Hierarchical):
    """The hierarchy (see :class:`Hierarchical`) with exactly s parents firing, uniform without
    replacement (our construction): parents fire with probability s/P, a child with
    (s/P) q / (children of its parent)."""

    @dataclass(frozen=True)
    class Params(HierarchyParams):
        pass

    summary = "parents, exclusive children"

    def expected_frequencies(self) -> np.ndarray:
        P = self.cfg.n_parents
        return self._with_children(np.full(P, self.cfg.s / P))

    def _rho2(self) -> float:
        if self._children_fire():
            return 1.0
        P = self.cfg.n_parents
        return (self.cfg.s - 1) / (P - 1) if P > 1 else 0.0

    @property
    def max_active(self) -> int:
        return 2 * self.cfg.s

    @classmethod
    def l0_high(cls, cfg: WorldConfig, frequencies: np.ndarray, quantile: float) -> tuple[float, str]:
        parents = cfg.n_parents
        with_children = min(parents, cfg.n - parents)
        extra = min(cfg.s, with_children) if cfg.child_probability > 0 else 0
        return float(cfg.s + extra), "s parents + one child each"

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        cfg = self.cfg
        P, s = cfg.n_parents, cfg.s
        parents = floyd_subsets(torch.full((batch_size,), s, dtype=torch.int64), P, s, generator)
        return torch.cat([parents, self._children_of(parents, generator)], dim=1)


@register_support("structured")
class Structured(Hierarchical, ProfiledSupport):
    """The hierarchy's parents and children (see :class:`Hierarchical`), but the P parents fire as
    Bernoulli features with frequencies from ``frequency_profile`` over the P parents ("uniform":
    ``frequency``, default s/P; "zipf": ``zipf_exponent``, ``f_max``, ``f_min``, parent 0 most frequent;
    "explicit": P values), made to fire together by a rank-``correlation_rank`` Gaussian copula of
    strength ``correlation_scale`` c: parent p fires iff z_p < Phi^-1(f_p) with
    z = sqrt(c) U g + sqrt(1 - c) eps, g ~ N(0, I_r), eps ~ N(0, I_P) and U [P, r] unit rows drawn from
    ``seed`` (:func:`copula_loadings`). Each f_p is exact; Corr(z_p, z_q) = c <u_p, u_q>; the exact rho2
    among parents uses the bivariate normal CDF (:func:`structured_parent_rho2`). (Our extension for the
    ``realistic-1k`` preset: Zipf frequencies, a hierarchy and low-rank correlated firing in one world,
    as SAELens's synthetic models combine them.)"""

    @dataclass(frozen=True)
    class Params(FrequencyProfileParams, HierarchyParams):
        correlation_rank: int = param(0, "rank r of the Gaussian copula that correlates a structured world's "
                                      "parents (default 0)", cli_type=int, metavar="R")
        correlation_scale: float = param(0.0, "strength c in [0, 1) of the parents' copula (default 0)",
                                         cli_type=float, metavar="C")

    summary = "Zipf or uniform parents, correlated, exclusive children"

    def __init__(self, cfg: WorldConfig):
        super().__init__(cfg)   # through ProfiledSupport: self._freq, the parents' frequencies
        self._threshold = torch.as_tensor(ndtri(self._freq.numpy()), dtype=torch.float64)
        self._loadings = torch.as_tensor(copula_loadings(cfg), dtype=torch.float64)  # [P, r], rows sqrt(c) u_p

    @classmethod
    def n_profiled(cls, cfg: WorldConfig) -> int:
        return cfg.n_parents

    @classmethod
    def validate(cls, cfg: WorldConfig) -> None:
        super().validate(cfg)  # the frequency profile, then child_probability
        require_int_range("correlation_rank", cfg.correlation_rank, 0, cfg.n_parents)
        require_float_range("correlation_scale", cfg.correlation_scale, 0.0, 1.0, high_open=True)
        require(cfg.correlation_scale == 0 or cfg.correlation_rank >= 1,
                f"correlation_rank must be at least 1 when correlation_scale > 0, got {cfg.correlation_rank}")

    def expected_frequencies(self) -> np.ndarray:
        return self._with_children(self._freq.numpy())

    def _rho2(self) -> float:
        if self._children_fire():
            return 1.0
        return structured_parent_rho2(self._freq.numpy(), self._loadings.numpy())

    @classmethod
    def l0_high(cls, cfg: WorldConfig, frequencies: np.ndarray, quantile: float) -> tuple[float, str]:
        f = np.asarray(frequencies, dtype=np.float64)
        z = float(norm.ppf(quantile))
        fp = f[:cfg.n_parents]
        parents = math.ceil(float(fp.sum()) + z * math.sqrt(float((fp * (1 - fp)).sum())))
        with_child = min(parents, cfg.n - cfg.n_parents) if cfg.child_probability > 0 else 0
        return float(min(cfg.n, parents + with_child)), \
            f"normal {quantile:g}-quantile of active parents (as if independent) + one child each"

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        # Parents: Gaussian copula z = L g + sqrt(1 - c) eps with L = sqrt(c) U (rows of norm sqrt(c)),
        # so every z_p ~ N(0, 1) and P(z_p < Phi^-1(f_p)) = f_p exactly. Then one child per active parent.
        cfg, B = self.cfg, batch_size
        P = cfg.n_parents
        r = self._loadings.shape[1]
        z_BP = torch.randn(B, P, generator=generator, dtype=torch.float64) * (1.0 - cfg.correlation_scale) ** 0.5
        if r > 0:
            z_BP += torch.randn(B, r, generator=generator, dtype=torch.float64) @ self._loadings.T
        parents = mask_to_indices(z_BP < self._threshold)
        merged = torch.cat([parents, self._children_of(parents, generator)], dim=1)
        return drop_and_pack(merged, merged < 0)


def copula_loadings(cfg: WorldConfig) -> np.ndarray:
    """sqrt(c) U [P, r]: unit rows u_p (Gaussian directions from ``default_rng([seed, 3])``) scaled by
    sqrt(correlation_scale), so Corr(z_p, z_q) = c <u_p, u_q> (a structured world's parents)."""
    P, r = cfg.n_parents, int(cfg.correlation_rank)
    if r == 0 or cfg.correlation_scale == 0:
        return np.zeros((P, 0))
    U = np.random.default_rng([cfg.seed, 3]).standard_normal((P, r))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    return U * float(cfg.correlation_scale) ** 0.5


def bivariate_normal_cdf(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """P(Z1 < h, Z2 < k) for standard normals with correlation rho, |rho| < 1, via Owen's T:
    Phi2 = (Phi(h) + Phi(k))/2 - T(h, a_h) - T(k, a_k) - (1/2)[hk < 0],
    a_h = (k - rho h) / (h sqrt(1 - rho^2)), a_k likewise (Owen 1956). Finite h, k."""
    h, k, rho = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (h, k, rho)))
    # Phi2 is continuous: an |h| or |k| below 1e-9 becomes 1e-9 (error < 1e-9), avoiding T's 0/0 limits.
    h = np.where(np.abs(h) < 1e-9, 1e-9, h)
    k = np.where(np.abs(k) < 1e-9, 1e-9, k)
    root = np.sqrt(1.0 - rho * rho)
    a_h = (k - rho * h) / (h * root)
    a_k = (h - rho * k) / (k * root)
    beta = np.where(h * k < 0, 0.5, 0.0)
    return 0.5 * (norm.cdf(h) + norm.cdf(k)) - owens_t(h, a_h) - owens_t(k, a_k) - beta


def structured_parent_rho2(freq: np.ndarray, loadings: np.ndarray) -> float:
    """max_{p != q} P(q fires | p fires) among a structured world's parents (exact under the copula)."""
    P = freq.shape[0]
    if P < 2:
        return 0.0
    if loadings.shape[1] == 0:
        return float(np.sort(freq)[-1])  # independent parents: P(q | p) = f_q
    t = ndtri(freq)
    rho = loadings @ loadings.T
    p_idx, q_idx = np.nonzero(~np.eye(P, dtype=bool))
    joint = bivariate_normal_cdf(t[p_idx], t[q_idx], rho[p_idx, q_idx])
    return float(np.max(joint / freq[p_idx]))
