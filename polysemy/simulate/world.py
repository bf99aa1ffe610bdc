"""``World``: a WorldConfig made concrete (dictionary V, magnitudes) and its fast sample streams.

One sample is x = sum_{k} values[k] * V[indices[k]] + sigma * N(0, I_d) (docs/paper.md section 1: X = H V + noise),
built from its active rows only (``embedding_bag``: a fused gather and weighted sum), O(K d) per sample,
never a dense [B, n] @ [n, d] product. Values are h_i = magnitude_i * U[spread], non-negative
(``magnitudes.py``); the active indices come from the support kind (``supports.py``).

Determinism: the dictionary and magnitudes depend only on the config (numpy generators seeded from
``cfg.seed``); a batch depends only on the ``torch.Generator`` state, drawn in a fixed order (support,
spread, noise), so ``stream(batch_size, seed)`` repeats exactly in any process.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

import torch

from ..errors import require_int_range
from .config import WorldConfig
from .dictionaries import build_dictionary, coherence_of
from .supports import Support


@dataclass(frozen=True, eq=False)
class Batch:
    """A batch with its ground truth.

    x [B, d] float32 samples; indices [B, K] int64 active features (-1 = padding);
    values [B, K] float32 their coefficients (0 at padding, > 0 elsewhere).
    """

    x: torch.Tensor
    indices: torch.Tensor
    values: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        B, K = self.indices.shape
        return f"Batch(B={B}, d={self.x.shape[1]}, K={K}, mean L0={float((self.indices >= 0).sum()) / max(B, 1):.3g})"

    def dense_codes(self, n: int) -> torch.Tensor:
        """The coefficient matrix H [B, n] (float32) with H[b, indices[b, k]] = values[b, k]."""
        B = self.indices.shape[0]
        H_BN = torch.zeros(B, n + 1, dtype=torch.float32)  # column n swallows the padding
        idx = torch.where(self.indices < 0, torch.full_like(self.indices, n), self.indices)
        H_BN.scatter_(1, idx, self.values)
        return H_BN[:, :n].contiguous()

    def active_mask(self, n: int) -> torch.Tensor:
        """Boolean [B, n]: which features are active in each sample."""
        B = self.indices.shape[0]
        mask = torch.zeros(B, n + 1, dtype=torch.bool)
        idx = torch.where(self.indices < 0, torch.full_like(self.indices, n), self.indices)
        mask.scatter_(1, idx, True)
        return mask[:, :n]


class Sampling:
    """``sample`` and ``stream`` for any world class that defines ``sample_with_truth(B, generator)``.

    ``device`` (e.g. "cuda"): batches for training there. A class whose ``sample_with_truth`` takes a
    ``device`` (``composes_on_device = True``: :class:`World`) composes the [B, d] batch on the device;
    any other samples on the CPU and moves x there. The random numbers are drawn on the CPU either way,
    so a data seed gives the same batches on every device."""

    composes_on_device = False

    def _draw(self, batch_size: int, generator: torch.Generator, device=None) -> Batch:
        if device is None or torch.device(device).type == "cpu":
            return self.sample_with_truth(batch_size, generator)
        if self.composes_on_device:
            return self.sample_with_truth(batch_size, generator, device)
        batch = self.sample_with_truth(batch_size, generator)
        return dataclasses.replace(batch, x=batch.x.to(device))

    def sample(self, batch_size: int, generator: torch.Generator, device=None) -> torch.Tensor:
        """B samples x [B, d] float32 (same numbers as ``sample_with_truth(...).x``)."""
        return self._draw(batch_size, generator, device).x

    def stream(self, batch_size: int, seed: int = 0, with_truth: bool = False, device=None) -> Iterator:
        """Endless batches from a generator seeded with the data seed ``seed``: Tensor [B, d] or Batch.
        The arguments are checked here, before the first batch is asked for."""
        require_int_range("batch_size", batch_size, 1)
        require_int_range("seed", seed, 0)
        generator = torch.Generator().manual_seed(seed)
        return self._stream(batch_size, generator, with_truth, device)

    def _stream(self, batch_size: int, generator: torch.Generator, with_truth: bool, device=None) -> Iterator:
        while True:
            batch = self._draw(batch_size, generator, device)
            yield batch if with_truth else batch.x


class World(Sampling):
    """A world of superposed features. ``World(cfg)`` is deterministic in ``cfg``.

    Attributes: config, n, d, V [n, d] float32 (built on first use), magnitudes [n] float32,
    expected_frequencies [n] float64, f (mean frequency = expected L0 / n), expected_l0, expected_rho2.
    """

    composes_on_device = True

    def __init__(self, cfg: WorldConfig):
        if not isinstance(cfg, WorldConfig):
            raise TypeError(f"World needs a WorldConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.n = cfg.n
        self.d = cfg.d
        self._support = Support(cfg)
        self.magnitudes = torch.as_tensor(cfg.magnitude_params.build(cfg.n, cfg.seed), dtype=torch.float32)
        self.expected_frequencies = self._support.expected_frequencies()
        self.expected_l0 = float(self.expected_frequencies.sum())
        self.f = self.expected_l0 / self.n
        self.expected_rho2 = self._support.expected_rho2()
        self._spread_lo = float(cfg.spread[0])
        self._spread_width = float(cfg.spread[1]) - float(cfg.spread[0])

    @cached_property
    def V(self) -> torch.Tensor:
        """True features as rows, float32 [n, d] (unit norm unless a matrix was given)."""
        return torch.as_tensor(build_dictionary(self.config), dtype=torch.float32).contiguous()

    @cached_property
    def dictionary_coherence(self) -> float:
        """mu(V) = max_{i != j} |cos(v_i, v_j)| of this world's dictionary."""
        return coherence_of(self.V.double().numpy())

    def __repr__(self) -> str:
        c = self.config
        return (f"World(n={c.n}, d={c.d}, dictionary={c.dictionary}, support={c.support}, "
                f"f={self.f:.4g}, L0={self.expected_l0:.4g}, hash={c.config_hash()})")

    # -- sampling ----------------------------------------------------------------------------------
    def sample_with_truth(self, batch_size: int, generator: torch.Generator, device=None) -> Batch:
        """B samples with their active indices and values (see :class:`Batch`).

        ``device`` (e.g. "cuda"): the supports and coefficients are still drawn on the CPU from
        ``generator`` (so a data seed gives the same batches on every device; they are O(B s)), and the
        samples x = sum_k values[b, k] V[indices[b, k]] are composed on the device, from a copy of V kept
        there: the [B, d] batch is born where it is trained on. ``Batch.x`` is on the device."""
        require_int_range("batch_size", batch_size, 1)
        indices_BK = self._support.sample(batch_size, generator)
        padded = self._support.padded  # e.g. exact-s index lists have no padding
        safe_BK = indices_BK.clamp(min=0) if padded else indices_BK
        spread_BK = self._spread_lo + self._spread_width * torch.rand(
            indices_BK.shape, generator=generator, dtype=torch.float32)
        values_BK = self.magnitudes[safe_BK] * spread_BK
        if self.config.scale != 1.0:
            values_BK *= float(self.config.scale)
        if padded:
            values_BK.masked_fill_(indices_BK < 0, 0.0)
        on_device = device is not None and torch.device(device).type != "cpu"
        V = self._V_on(device) if on_device else self.V
        if indices_BK.shape[1] == 0:
            x_BD = torch.zeros(batch_size, self.d, dtype=torch.float32, device=V.device)
        else:  # sum_k values[b, k] * V[indices[b, k]]: a fused gather + weighted sum, O(K d) per sample
            x_BD = torch.nn.functional.embedding_bag(safe_BK.to(V.device), V, mode="sum",
                                                     per_sample_weights=values_BK.to(V.device))
        if self.config.noise > 0:
            noise = torch.randn((batch_size, self.d), generator=generator, dtype=torch.float32)
            x_BD += float(self.config.noise * self.config.scale) * noise.to(V.device)
        return Batch(x=x_BD, indices=indices_BK, values=values_BK)

    def _V_on(self, device) -> torch.Tensor:
        cache = self.__dict__.setdefault("_V_by_device", {})
        key = str(torch.device(device))
        if key not in cache:
            cache[key] = self.V.to(device)
        return cache[key]
