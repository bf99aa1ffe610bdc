"""True-feature dictionaries V [n, d] (rows = features), built deterministically from a WorldConfig.

- ``gaussian``: i.i.d. N(0, 1) entries, rows scaled to unit norm (the theorem's model, docs/paper.md section 1).
  Its coherence is about sqrt(2 log(n^2) / d) (docs/paper.md section 2, V1).
- ``orthogonal``: as incoherent as n and d allow (our choice of algorithm). n <= d: orthonormal rows
  (QR of a Gaussian matrix), coherence 0 up to float32 rounding. n > d: start from Gaussian rows and
  descend the frame potential sum_{i != j} (G_ij / max|G|)^(2p), p = 8, a smooth stand-in for the
  coherence max_{i != j} |G_ij|, projecting rows back onto the unit sphere after each step; keep the best
  frame seen. Promise (checked by the tests): coherence <= ``orthogonal_coherence_bound(n, d)``
  = min(1.6 * L + 0.02, 1), where L is the lower bound on coherence: Welch's sqrt((n-d)/(d(n-1))), or
  Levenstein's sqrt((3n - d^2 - 2d) / ((d+2)(n-d))) once n > d(d+1)/2, where Welch's is not reachable.
  Cost O(n^2 d) per step, at most ``MAX_STEPS`` steps (fewer once 60 steps bring no 0.1% gain): about
  1 s for n = 256, d = 64 and 5 s for n = 512 on one core; large n (4096) takes minutes.
- ``coherent``: coherence exactly mu. Disjoint pairs (2k, 2k+1) of rows are set at cosine exactly mu
  by a rotation inside the plane the pair spans; all other pairs are pushed below mu by the same
  potential descent (planted pairs held fixed). Every feature (but the last when n is odd) thus has one
  partner at cosine mu. The smallest mu accepted is ``coherent_minimum(n, d)``.
- ``matrix``: the user's matrix, rows used as given (not normalised).

Random numbers: numpy ``default_rng([seed, 1])``, so the dictionary depends only on (config, seed).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from .bounds import coherence_lower_bound, orthogonal_coherence_bound  # noqa: F401 (re-exported)
from .config import WorldConfig, load_matrix

MAX_STEPS = 400
_POTENTIAL_POWER = 8
_STEP = 0.05
_PATIENCE = 60  # stop after this many steps without a 0.1% gain


def coherence_of(V: np.ndarray) -> float:
    """max_{i != j} |<v_i, v_j>| / (|v_i| |v_j|) of the rows of V (0 for a single row)."""
    V = np.asarray(V, dtype=np.float64)
    if V.shape[0] < 2:
        return 0.0
    U = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-300)
    G = np.abs(U @ U.T)
    np.fill_diagonal(G, 0.0)
    return float(G.max())


def _unit_rows(V: np.ndarray) -> np.ndarray:
    return V / np.linalg.norm(V, axis=1, keepdims=True)


def gaussian_dictionary(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    return _unit_rows(rng.standard_normal((n, d)))


def _orthonormal_rows(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """n <= d orthonormal rows: the Q factor of a Gaussian d x n matrix, transposed."""
    q, r = np.linalg.qr(rng.standard_normal((d, n)))
    q = q * np.sign(np.diag(r))  # make the factorisation unique, hence the result seed-determined
    return q.T.copy()


def _descend(V: np.ndarray, target: float, frozen: np.ndarray | None = None, fix=None) -> np.ndarray:
    """Lower the coherence of the unit rows of V by potential descent; return the best frame seen.

    ``frozen`` marks entries of the Gram matrix left out of the potential (planted pairs); ``fix``
    re-imposes them after every step. Stops once the (unfrozen) coherence is <= ``target``.
    """
    best, best_c, since_best = V, math.inf, 0
    for _ in range(MAX_STEPS):
        G = V @ V.T
        np.fill_diagonal(G, 0.0)
        if frozen is not None:
            G[frozen] = 0.0
        c = float(np.abs(G).max())
        if c < best_c * (1 - 1e-3):
            since_best = 0
        since_best += 1
        if c < best_c:
            best, best_c = V, c
        if c <= target or since_best > _PATIENCE:
            break
        R = G / c
        grad = (R ** (2 * _POTENTIAL_POWER - 1)) @ V
        grad -= np.sum(grad * V, axis=1, keepdims=True) * V  # tangent to the sphere
        scale = np.linalg.norm(grad, axis=1).max() + 1e-300
        V = _unit_rows(V - _STEP * c * grad / scale)
        if fix is not None:
            V = fix(V)
    return best


def orthogonal_dictionary(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    if n <= d:
        return _orthonormal_rows(n, d, rng)
    V = gaussian_dictionary(n, d, rng)
    # Stop a little above the lower bound: closer is rarely reachable and costs many more steps.
    return _descend(V, target=1.1 * coherence_lower_bound(n, d))


def _plant_pairs(V: np.ndarray, mu: float) -> np.ndarray:
    """Set rows (2k, 2k+1) at cosine exactly mu, rotating each pair inside the plane it spans."""
    V = V.copy()
    a, b = V[0:-1:2], V[1::2]
    sign = np.where(np.sum(a * b, axis=1, keepdims=True) < 0, -1.0, 1.0)
    b = b * sign
    mid = _unit_rows(a + b)
    off = a - b - np.sum((a - b) * mid, axis=1, keepdims=True) * mid
    norms = np.linalg.norm(off, axis=1, keepdims=True)
    if np.any(norms < 1e-12):  # identical rows: any direction orthogonal to mid will do
        raise ConfigError("matrix rows are degenerate; cannot plant coherent pairs")
    off = off / norms
    cos_half, sin_half = math.sqrt((1 + mu) / 2), math.sqrt((1 - mu) / 2)
    V[0:-1:2] = cos_half * mid + sin_half * off
    V[1::2] = cos_half * mid - sin_half * off
    return V


def coherent_dictionary(n: int, d: int, mu: float, rng: np.random.Generator) -> np.ndarray:
    if n <= d:
        return _plant_pairs(_orthonormal_rows(n, d, rng), mu)  # other pairs stay exactly orthogonal
    frozen = np.zeros((n, n), dtype=bool)
    k = np.arange(0, n - 1, 2)
    frozen[k, k + 1] = frozen[k + 1, k] = True
    V = _plant_pairs(gaussian_dictionary(n, d, rng), mu)
    margin = 1e-4  # keep other pairs clearly below mu, so float32 rounding cannot make them the max
    V = _descend(V, target=mu - margin, frozen=frozen, fix=lambda W: _plant_pairs(W, mu))
    G = np.abs(V @ V.T)
    G[frozen] = 0.0
    np.fill_diagonal(G, 0.0)
    if G.max() > mu - margin / 2:
        raise ConfigError(f"coherence={mu:.4g} is too low to build for n={n}, d={d} "
                          f"(reached {G.max():.4g} off the planted pairs); use a larger coherence")
    return V


def build_dictionary(cfg: WorldConfig) -> np.ndarray:
    """V [n, d] float64 for ``cfg`` (cast to float32 by the World)."""
    rng = np.random.default_rng([cfg.seed, 1])
    if cfg.dictionary == "gaussian":
        return gaussian_dictionary(cfg.n, cfg.d, rng)
    if cfg.dictionary == "orthogonal":
        return orthogonal_dictionary(cfg.n, cfg.d, rng)
    if cfg.dictionary == "coherent":
        return coherent_dictionary(cfg.n, cfg.d, float(cfg.coherence), rng)
    if cfg.dictionary == "matrix":
        return load_matrix(cfg.matrix)
    raise ConfigError(f"dictionary must be one of gaussian, orthogonal, coherent, matrix; got {cfg.dictionary!r}")
