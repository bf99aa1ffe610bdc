"""Coherence bounds for n unit vectors in R^d, and the coherences our dictionaries promise.

Coherence mu(V) = max_{i != j} |<v_i, v_j>| / (|v_i| |v_j|) (docs/paper.md section 2, condition V1).
"""

from __future__ import annotations

import math


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
