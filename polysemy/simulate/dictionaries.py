"""True-feature dictionaries V [n, d] (rows = features), built deterministically from a WorldConfig.

Each dictionary kind is one :class:`Dictionary` subclass registered by name
(``@register_dictionary("gaussian")``) with its own params dataclass, its checks in the world's context
(``validate``), its construction (``build``) and the coherence it predicts (``predicted_coherence``).

- ``gaussian`` [default]: i.i.d. N(0, 1) entries, rows scaled to unit norm (the theorem's model,
  docs/paper.md section 1). Its coherence is about sqrt(2 log(n^2) / d) (docs/paper.md section 2, V1).
- ``orthogonal``: as incoherent as n and d allow (our choice of algorithm). n <= d: orthonormal rows
  (QR of a Gaussian matrix), coherence 0 up to float32 rounding. n > d: start from Gaussian rows and
  descend the frame potential sum_{i != j} (G_ij / max|G|)^(2p), p = 8, a smooth stand-in for the
  coherence max_{i != j} |G_ij|, projecting rows back onto the unit sphere after each step; keep the best
  frame seen. Promise (checked by the tests): coherence <= ``orthogonal_coherence_bound(n, d)``
  = min(1.6 * L + 0.02, 1), where L is the lower bound on coherence: Welch's sqrt((n-d)/(d(n-1))), or
  Levenstein's sqrt((3n - d^2 - 2d) / ((d+2)(n-d))) once n > d(d+1)/2, where Welch's is not reachable.
  Cost O(n^2 d) per step, at most ``MAX_STEPS`` steps (fewer once 60 steps bring no 0.1% gain): about
  1 s for n = 256, d = 64 and 5 s for n = 512 on one core; large n (4096) takes minutes.
- ``coherent``: coherence exactly mu (``coherence``). Disjoint pairs (2k, 2k+1) of rows are set at cosine
  exactly mu by a rotation inside the plane the pair spans; all other pairs are pushed below mu by the same
  potential descent (planted pairs held fixed). Every feature (but the last when n is odd) thus has one
  partner at cosine mu. The smallest mu accepted is ``coherent_minimum(n, d)`` (our choice).
- ``matrix``: the user's matrix ``matrix`` (a .npy path or a nested list [n][d]), rows used as given (not
  normalised).

Random numbers: numpy ``default_rng([seed, 1])``, so the dictionary depends only on (config, seed).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import ConfigError, require
from .bounds import coherence_lower_bound, coherent_minimum, gaussian_coherence, orthogonal_coherence_bound, welch_bound
from .registry import DICTIONARIES, DictionaryParams, is_number, param, register_dictionary

if TYPE_CHECKING:
    from .config import WorldConfig

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


class Dictionary:
    """Base of the dictionary kinds (module docstring). A kind sets ``Params`` (its own dataclass; none:
    an empty one), ``summary`` (a few words for ``--help``), ``validate`` (its params in the world's
    context) and either ``rows`` and ``predict`` (a kind that n, d and the generator fix) or ``build``
    and ``predicted_coherence``."""

    name: str | None = None       # set by register_dictionary
    Params = DictionaryParams
    summary = ""
    rows = None                   # (n, d, rng) -> V [n, d]
    predict = None                # (n, d) -> the predicted coherence
    prediction_source = ""        # how ``predict`` obtains it, in words

    @classmethod
    def validate(cls, cfg: WorldConfig) -> None:
        """Check the kind's own params (that params of other kinds are left alone is checked for it)."""

    @classmethod
    def build(cls, cfg: WorldConfig, rng: np.random.Generator) -> np.ndarray:
        """V [n, d] float64 from the world's dictionary generator ``rng``."""
        return cls.rows(cfg.n, cfg.d, rng)

    @classmethod
    def predicted_coherence(cls, cfg: WorldConfig) -> tuple[float, str]:
        """(mu, how it was obtained) before V is built (n >= 2)."""
        return cls.predict(cfg.n, cfg.d), cls.prediction_source


@register_dictionary("gaussian")
class Gaussian(Dictionary):
    """i.i.d. N(0, 1) entries, rows scaled to unit norm (the theorem's model, docs/paper.md section 1).
    Predicted coherence: the median max |cos| of n(n-1)/2 independent random pairs
    (``bounds.gaussian_coherence``; our choice of predictor)."""

    summary = "unit Gaussian rows, default"
    rows = staticmethod(gaussian_dictionary)
    predict = staticmethod(gaussian_coherence)
    prediction_source = "gaussian: median max |cos| of n(n-1)/2 random pairs"


@register_dictionary("orthogonal")
class Orthogonal(Dictionary):
    """As incoherent as n and d allow: orthonormal rows when n <= d, else frame-potential descent toward
    the Welch/Levenstein bound (module docstring; our choice of algorithm). Predicted coherence: what it
    promises, ``orthogonal_coherence_bound(n, d)``."""

    rows = staticmethod(orthogonal_dictionary)
    predict = staticmethod(orthogonal_coherence_bound)  # the promise, as the tests check it
    prediction_source = "orthogonal: promised bound"
    summary = "as incoherent as n, d allow"


@register_dictionary("coherent")
class Coherent(Dictionary):
    """Coherence exactly mu: planted pairs at cosine mu, all others below (module docstring)."""

    @dataclass(frozen=True)
    class Params(DictionaryParams):
        coherence: float | None = param(None, "coherence mu of a coherent dictionary, in [bound(n, d), 1)",
                                        cli_type=float, metavar="MU")

    summary = "coherence exactly --coherence"

    @classmethod
    def validate(cls, cfg: WorldConfig) -> None:
        n, d, mu = cfg.n, cfg.d, cfg.coherence
        require(mu is not None, "coherence must be given (a number in (0, 1)) for dictionary='coherent'")
        lo = coherent_minimum(n, d)
        require(n >= 2, f"n must be at least 2 for dictionary='coherent', got {n}")
        ok = is_number(mu) and lo <= float(mu) < 1 and float(mu) > 0
        if lo == 0:
            require(ok, f"coherence must be in (0, 1) for n={n} <= d={d}, got {mu!r}")
        require(ok, f"coherence must be in [{lo:.4g}, 1) for n={n}, d={d} (Welch bound "
                f"{welch_bound(n, d):.4g}; below {lo:.4g} use dictionary='orthogonal'), got {mu!r}")

    @classmethod
    def build(cls, cfg: WorldConfig, rng: np.random.Generator) -> np.ndarray:
        return coherent_dictionary(cfg.n, cfg.d, float(cfg.coherence), rng)

    @classmethod
    def predicted_coherence(cls, cfg: WorldConfig) -> tuple[float, str]:
        return float(cfg.coherence), "coherent: configured"


@register_dictionary("matrix")
class Matrix(Dictionary):
    """The user's matrix, rows used as given."""

    @dataclass(frozen=True)
    class Params(DictionaryParams):
        matrix: str | tuple | None = param(None, "a .npy file [n, d] of true features", metavar="PATH")

    summary = "the rows of --matrix"

    @classmethod
    def validate(cls, cfg: WorldConfig) -> None:
        require(cfg.matrix is not None, "matrix must be a .npy path or a nested list [n][d] for dictionary='matrix'")
        shape = load_matrix(cfg.matrix).shape
        require(shape == (cfg.n, cfg.d), f"matrix must have shape (n, d) = ({cfg.n}, {cfg.d}), got {shape}")

    @classmethod
    def build(cls, cfg: WorldConfig, rng: np.random.Generator) -> np.ndarray:
        return load_matrix(cfg.matrix)

    @classmethod
    def predicted_coherence(cls, cfg: WorldConfig) -> tuple[float, str]:
        V = torch.as_tensor(load_matrix(cfg.matrix), dtype=torch.float32)  # as the World stores it
        return coherence_of(V.double().numpy()), "matrix: exact"


def build_dictionary(cfg: WorldConfig) -> np.ndarray:
    """V [n, d] float64 for ``cfg`` (cast to float32 by the World)."""
    rng = np.random.default_rng([cfg.seed, 1])
    return DICTIONARIES.get(cfg.dictionary).build(cfg, rng)
