"""Empirical statistics of a sample, to compare with a world's predictions (``World.expected_*``).

- frequencies: f_i = (number of samples with h_i > 0) / B.
- L0: mean number of active features per sample.
- rho2: max over i != j of count(i and j) / count(i) (docs/paper.md section 2, H3: max_{i!=j} P(h_j>0 | h_i>0)),
  taken only over features i seen at least ``min_count`` times (default 20, our choice: below that a
  single co-occurrence moves the estimate by 5% or more, and the max over many rare features is
  dominated by noise). Returns nan when no feature is seen ``min_count`` times.
- coherence: max_{i != j} |cos(v_i, v_j)| of the rows of V (docs/paper.md section 2, V1).
"""

from __future__ import annotations

import numpy as np
import torch

from .dictionaries import coherence_of
from .world import Batch

RHO2_MIN_COUNT = 20


def _active_mask(batch: Batch, n: int) -> torch.Tensor:
    return batch.active_mask(n)


def empirical_frequencies(batch: Batch, n: int) -> np.ndarray:
    """Fraction of samples in which each feature is active, float64 [n]."""
    mask = _active_mask(batch, n)
    return mask.sum(dim=0).double().numpy() / max(mask.shape[0], 1)


def empirical_l0(batch: Batch) -> float:
    """Mean number of active features per sample."""
    B = batch.indices.shape[0]
    return float((batch.indices >= 0).sum()) / max(B, 1)


def empirical_rho2(batch: Batch, n: int, min_count: int = RHO2_MIN_COUNT) -> float:
    """max_{i != j} count(i, j) / count(i) over features i with count(i) >= min_count (nan if none)."""
    mask = _active_mask(batch, n).to(torch.float64)
    co_NN = mask.T @ mask                       # co-occurrence counts (diagonal = counts)
    counts = torch.diagonal(co_NN).clone()
    co_NN.fill_diagonal_(0.0)
    eligible = counts >= min_count
    if not bool(eligible.any()):
        return float("nan")
    ratios = co_NN[eligible] / counts[eligible, None]
    return float(ratios.max())


def coherence(V) -> float:
    """max_{i != j} |cos(v_i, v_j)| of the rows of V (numpy or torch, [n, d])."""
    if isinstance(V, torch.Tensor):
        V = V.detach().cpu().double().numpy()
    return coherence_of(np.asarray(V, dtype=np.float64))
