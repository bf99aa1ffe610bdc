"""Supports: which features are active in each sample, as padded index lists [B, K] (-1 = padding).

Every sampler costs at most O(n) per sample and never builds a dense [B, n] coefficient matrix for
the exact-s and mixture kinds (those cost O(s^2) per sample). ``expected_frequencies`` gives
f_i = P(h_i > 0) and ``expected_rho2`` gives max_{i != j} P(h_j > 0 | h_i > 0), both exact for the model.
The kinds and their parameters are described in ``config.py``.

Random numbers come only from the ``torch.Generator`` passed in, so a generator state fixes the batch.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtri, owens_t
from scipy.stats import norm

from .config import WorldConfig, zipf_frequencies


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


class Support:
    """The support model of a WorldConfig: sample index lists and predict their statistics."""

    def __init__(self, cfg: WorldConfig):
        self.cfg = cfg
        self.n = cfg.n
        kind = cfg.support
        if kind in ("bernoulli", "structured"):
            self._freq = torch.as_tensor(self._bernoulli_frequencies(), dtype=torch.float64)
        if kind == "structured":
            self._threshold = torch.as_tensor(ndtri(self._freq.numpy()), dtype=torch.float64)
            self._loadings = torch.as_tensor(copula_loadings(cfg), dtype=torch.float64)  # [P, r], rows sqrt(c) u_p
        if kind == "mixture":
            w = np.asarray(cfg.mixture_weights, dtype=np.float64)
            self._levels = torch.as_tensor(cfg.mixture_levels, dtype=torch.int64)
            self._level_cdf = torch.as_tensor(np.cumsum(w / w.sum()), dtype=torch.float64)
            self._level_weights = w / w.sum()
        if kind in ("hierarchy", "structured"):
            P = cfg.n_parents
            n_children = cfg.n - P
            # Parent p owns children P + p + P*m for m = 0 .. count_p - 1 (child P + j has parent j mod P).
            self._children_count = torch.as_tensor(
                [(n_children - p + P - 1) // P if p < n_children else 0 for p in range(P)], dtype=torch.int64)

    # -- predictions -------------------------------------------------------------------------------
    def _bernoulli_frequencies(self) -> np.ndarray:
        cfg = self.cfg
        if cfg.frequency_profile == "uniform":
            return np.full(cfg.n_profiled, cfg.base_frequency)
        if cfg.frequency_profile == "zipf":
            f_max, f_min = cfg.resolved_zipf()
            return zipf_frequencies(cfg.n_profiled, float(cfg.zipf_exponent), f_max, f_min)
        return np.asarray(cfg.frequencies, dtype=np.float64)

    def expected_frequencies(self) -> np.ndarray:
        """f_i = P(h_i > 0) for every feature, float64 [n]."""
        cfg, n = self.cfg, self.n
        kind = cfg.support
        if kind == "exact":
            return np.full(n, cfg.s / n)
        if kind == "bernoulli":
            return self._freq.numpy().copy()
        if kind == "mixture":
            mean_level = float(np.dot(self._level_weights, np.asarray(cfg.mixture_levels, dtype=np.float64)))
            return np.full(n, mean_level / n)
        if kind == "cooccur":
            return np.full(n, cfg.base_frequency)
        # hierarchy: parents fire with probability s/P, a child with (s/P) q / (children of its parent);
        # structured: parent p with its own f_p.
        P = cfg.n_parents
        f_parent = self._freq.numpy() if kind == "structured" else np.full(P, cfg.s / P)
        f = np.empty(n)
        f[:P] = f_parent
        counts = self._children_count.numpy()
        child_parent = np.arange(n - P) % P
        f[P:] = f_parent[child_parent] * cfg.child_probability / counts[child_parent]
        return f

    def expected_rho2(self) -> float:
        """max_{i != j} P(h_j > 0 | h_i > 0) under the model (0 when n = 1)."""
        cfg, n = self.cfg, self.n
        if n < 2:
            return 0.0
        kind = cfg.support
        if kind == "exact":
            return (cfg.s - 1) / (n - 1)
        if kind == "bernoulli":
            f = np.sort(self._freq.numpy())
            return float(f[-1])  # independent features: P(j | i) = f_j, largest over j != i
        if kind == "mixture":
            levels = np.asarray(cfg.mixture_levels, dtype=np.float64)
            w = self._level_weights
            return float(np.dot(w, levels * (levels - 1)) / ((n - 1) * np.dot(w, levels)))
        if kind == "cooccur":
            return float(max(cfg.rho2, cfg.base_frequency))
        # hierarchy: an active child implies its parent, so P(parent | child) = 1 whenever children fire.
        if cfg.child_probability > 0 and cfg.n > cfg.n_parents:
            return 1.0
        if kind == "structured":
            return structured_parent_rho2(self._freq.numpy(), self._loadings.numpy())
        return (cfg.s - 1) / (cfg.n_parents - 1) if cfg.n_parents > 1 else 0.0

    @property
    def max_active(self) -> int | None:
        """Fixed padding width K of the index lists, or None when it varies from batch to batch."""
        kind = self.cfg.support
        if kind == "exact":
            return self.cfg.s
        if kind == "mixture":
            return int(max(self.cfg.mixture_levels))
        if kind == "hierarchy":
            return 2 * self.cfg.s
        return None  # bernoulli, cooccur, structured: varies

    # -- sampling ----------------------------------------------------------------------------------
    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Active indices [B, K] int64, -1 = padding."""
        cfg, B = self.cfg, batch_size
        kind = cfg.support
        if kind == "exact":
            return floyd_subsets(torch.full((B,), cfg.s, dtype=torch.int64), self.n, cfg.s, generator)
        if kind == "mixture":
            u = torch.rand(B, generator=generator, dtype=torch.float64)
            which = torch.searchsorted(self._level_cdf, u, right=True).clamp(max=len(self._levels) - 1)
            sizes = self._levels[which]
            return floyd_subsets(sizes, self.n, int(self._levels.max()), generator)
        if kind == "bernoulli":
            # Thinning: Bernoulli(f_max) candidates, each kept with probability f_i / f_max, gives
            # independent Bernoulli(f_i) features exactly.
            f_top = float(self._freq.max())
            candidates = bernoulli_subsets(B, self.n, f_top, generator)
            if bool((self._freq == f_top).all()):
                return candidates
            keep_prob = (self._freq / f_top)[candidates.clamp(min=0)]
            u = torch.rand(candidates.shape, generator=generator, dtype=torch.float64)
            return drop_and_pack(candidates, (candidates < 0) | (u >= keep_prob))
        if kind == "cooccur":
            return self._sample_cooccur(B, generator)
        if kind == "structured":
            return self._sample_structured(B, generator)
        return self._sample_hierarchy(B, generator)

    def _sample_cooccur(self, B: int, generator: torch.Generator) -> torch.Tensor:
        # Pair k = features (2k, 2k+1). A pair is touched with probability q = f (2 - rho2), pairs
        # independently; a touched pair is "both" with probability rho2 / (2 - rho2), else "a only" or
        # "b only" equally. So P(a) = P(b) = f and P(b | a) = rho2. An odd last feature is Bernoulli(f).
        cfg, n = self.cfg, self.n
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

    def _sample_hierarchy(self, B: int, generator: torch.Generator) -> torch.Tensor:
        cfg = self.cfg
        P, s = cfg.n_parents, cfg.s
        parents = floyd_subsets(torch.full((B,), s, dtype=torch.int64), P, s, generator)
        u = torch.rand(B, s, 2, generator=generator, dtype=torch.float64)
        counts = self._children_count[parents]
        which = torch.floor(u[..., 0] * counts.to(torch.float64)).to(torch.int64)
        children = P + parents + P * which
        keep = (u[..., 1] < cfg.child_probability) & (counts > 0)
        children = torch.where(keep, children, torch.full_like(children, -1))
        return torch.cat([parents, children], dim=1)

    def _sample_structured(self, B: int, generator: torch.Generator) -> torch.Tensor:
        # Parents: Gaussian copula z = L g + sqrt(1 - c) eps with L = sqrt(c) U (rows of norm sqrt(c)),
        # so every z_p ~ N(0, 1) and P(z_p < Phi^-1(f_p)) = f_p exactly. Then one child per active parent.
        cfg = self.cfg
        P = cfg.n_parents
        r = self._loadings.shape[1]
        z_BP = torch.randn(B, P, generator=generator, dtype=torch.float64) * (1.0 - cfg.correlation_scale) ** 0.5
        if r > 0:
            z_BP += torch.randn(B, r, generator=generator, dtype=torch.float64) @ self._loadings.T
        parents = mask_to_indices(z_BP < self._threshold)
        K = parents.shape[1]
        u = torch.rand(B, K, 2, generator=generator, dtype=torch.float64)
        safe = parents.clamp(min=0)
        counts = self._children_count[safe]
        which = torch.floor(u[..., 0] * counts.to(torch.float64)).to(torch.int64)
        children = P + safe + P * which
        keep = (parents >= 0) & (u[..., 1] < cfg.child_probability) & (counts > 0)
        merged = torch.cat([parents, torch.where(keep, children, torch.full_like(children, -1))], dim=1)
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
