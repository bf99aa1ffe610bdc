"""Coherence bounds for n unit vectors in R^d, the coherences our dictionaries promise, and the
coherence predicted for Gaussian rows.

Coherence mu(V) = max_{i != j} |<v_i, v_j>| / (|v_i| |v_j|) (docs/paper.md section 2, condition V1).
"""

from __future__ import annotations

import math

from scipy.special import betaincinv


def welch_bound(n: int, d: int) -> float:
    """Welch (1974): mu >= sqrt((n - d) / (d (n - 1))) for n > d; 0 when n <= d."""
    if n <= d or n < 2:
        return 0.0
    return math.sqrt((n - d) / (d * (n - 1)))


def coherence_lower_bound(n: int, d: int) -> float:
    """max(Welch, Levenstein) where Levenstein's bound sqrt((3n - d^2 - 2d) / ((d+2)(n-d))) applies
    (real vectors, n > d(d+1)/2, where Welch's bound cannot be reached)."""
    bound = welch_bound(n, d)
    if n > d and n > d * (d + 1) / 2:
        bound = max(bound, math.sqrt(max(0.0, (3 * n - d * d - 2 * d) / ((d + 2) * (n - d)))))
    return bound


def orthogonal_coherence_bound(n: int, d: int) -> float:
    """What ``dictionary="orthogonal"`` promises: 0 when n <= d, else min(1.6 L + 0.02, 1) with
    L = ``coherence_lower_bound(n, d)`` (our choice; potential descent reaches about 1.2-1.5 L at the
    sizes we measured, and the tests check the promise)."""
    if n <= d:
        return 0.0
    return min(1.6 * coherence_lower_bound(n, d) + 0.02, 1.0)


def coherent_minimum(n: int, d: int) -> float:
    """Smallest coherence accepted by ``dictionary="coherent"``: any mu > 0 when n <= d, else the
    orthogonal promise (our choice: below it we cannot guarantee a build)."""
    return orthogonal_coherence_bound(n, d)


def gaussian_coherence(n: int, d: int) -> float:
    """Median coherence of n random unit vectors in R^d (our choice of predictor).

    The cosine t of two independent random unit vectors has density proportional to (1-t^2)^((d-3)/2),
    so P(|t| > mu) = I_{1-mu^2}((d-1)/2, 1/2) (regularised incomplete beta). Treating the K = n(n-1)/2
    pairs as independent, the median of the max solves (1 - P(|t| > mu))^K = 1/2. Its large-d limit is
    the sqrt(2 ln(n^2) / d) of docs/paper.md section 2, which overestimates at our sizes (0.68 against a realised
    0.52-0.56 for n = 128, d = 42; this predictor gives 0.56)."""
    if n < 2:
        return 0.0
    if d < 2:
        return 1.0
    pairs = n * (n - 1) / 2.0
    tail = -math.expm1(math.log(0.5) / pairs)
    return float(math.sqrt(max(0.0, 1.0 - betaincinv((d - 1) / 2.0, 0.5, tail))))
