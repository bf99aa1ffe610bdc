"""What every peer adapter shares: the trained-model wrapper, the recovery monitor, the shared stream.

An adapter trains one system on an iterator of our world's batches (the same samples, in the same
order, for every system) up to a sample budget, and returns a :class:`FittedSystem`: decoder rows
``W_dec`` [M, d], ``encode`` and ``decode``, the SAEBench-style interface our metrics read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ...sae.diagnostics import samples_to_recovery  # noqa: F401  (one rule for every curve; re-exported)
from ...theory import metrics


class PeerUnavailable(RuntimeError):
    """The peer's package is not installed (or cannot run here); the harness skips it with this text."""


def availability(import_peer: Callable[[], object], describe: Callable[[object], str]) -> tuple[bool, str]:
    """(True, ``describe(what import_peer returned)``: the library and its version) when the peer imports,
    else (False, the reason its ``PeerUnavailable`` gives). Every adapter's ``available()``."""
    try:
        imported = import_peer()
    except PeerUnavailable as exc:
        return False, str(exc)
    return True, describe(imported)


@dataclass
class FittedSystem:
    """A trained system seen through the SAE interface (``W_dec`` [M, d], ``encode``, ``decode``)."""

    W_dec: torch.Tensor                              # [M, d] decoder rows
    encode_fn: Callable[[torch.Tensor], torch.Tensor]  # x [B, d] -> acts [B, M]
    decode_fn: Callable[[torch.Tensor], torch.Tensor] | None = None  # acts [B, M] -> x_hat [B, d]
    samples: int = 0                                 # training samples actually consumed
    seconds: float = 0.0                             # training wall-clock, evaluations excluded
    curve: list[dict] = field(default_factory=list)  # checkpoints: samples, seconds, frr_0.9, frr_0.99
    params: dict = field(default_factory=dict)       # the settings used, for the record

    @property
    def width(self) -> int:
        return int(self.W_dec.shape[0])

    @property
    def d(self) -> int:
        return int(self.W_dec.shape[1])

    @torch.no_grad()
    def encode(self, x_BD: torch.Tensor) -> torch.Tensor:
        return self.encode_fn(x_BD).float()

    @torch.no_grad()
    def decode(self, acts_BM: torch.Tensor) -> torch.Tensor:
        if self.decode_fn is None:
            return acts_BM.float() @ self.W_dec.float()
        return self.decode_fn(acts_BM).float()


def rebatch(chunks: Iterator[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Regroup a stream of [b, d] chunks into [batch_size, d] batches, keeping the sample order.

    Every system reads the same underlying sample sequence whatever its own batch size.
    """
    buffer: list[torch.Tensor] = []
    held = 0
    for chunk in chunks:
        buffer.append(chunk)
        held += chunk.shape[0]
        while held >= batch_size:
            joined = torch.cat(buffer, dim=0)
            yield joined[:batch_size]
            rest = joined[batch_size:]
            buffer, held = ([rest] if rest.shape[0] else []), rest.shape[0]


class RecoveryMonitor:
    """Evaluates FRR at sample checkpoints along training; its clock leaves evaluation time out.

    ``checkpoints`` are sample counts; the adapter calls :meth:`after_step` with the samples seen so far
    and a function returning the current decoder rows [M, d]. FRR(τ) is the fraction of true features
    whose best decoder row has cosine ≥ τ (docs/paper.md section 6), via ``polysemy.theory.metrics.frr``.
    """

    def __init__(self, truth_ND: torch.Tensor, checkpoints: list[int]):
        self.truth_ND = truth_ND
        self.checkpoints = sorted(set(int(c) for c in checkpoints))
        self.curve: list[dict] = []
        self._next = 0
        self._start = None
        self._paused = 0.0

    def start(self) -> None:
        self._start = time.perf_counter()
        self._paused = 0.0

    @property
    def training_seconds(self) -> float:
        if self._start is None:
            return 0.0
        return time.perf_counter() - self._start - self._paused

    def due(self, samples: int) -> bool:
        return self._next < len(self.checkpoints) and samples >= self.checkpoints[self._next]

    def after_step(self, samples: int, rows_fn: Callable[[], torch.Tensor]) -> None:
        if not self.due(samples):
            return
        paused_at = time.perf_counter()
        seconds = paused_at - self._start - self._paused if self._start is not None else 0.0
        self.record(samples, seconds, rows_fn())
        while self.due(samples):
            self._next += 1
        self._paused += time.perf_counter() - paused_at

    def finish(self, samples: int, rows_fn: Callable[[], torch.Tensor]) -> None:
        """Record the final state (once), so every curve ends at the samples actually consumed."""
        if self.curve and self.curve[-1]["samples"] == samples:
            return
        paused_at = time.perf_counter()
        seconds = paused_at - self._start - self._paused if self._start is not None else 0.0
        self.record(samples, seconds, rows_fn())
        self._next = len(self.checkpoints)
        self._paused += time.perf_counter() - paused_at

    def record(self, samples: int, seconds: float, rows_MD) -> None:
        rows = rows_MD.detach().float().cpu().numpy() if torch.is_tensor(rows_MD) else np.asarray(rows_MD)
        frr = metrics.frr(rows, self.truth_ND.detach().float().cpu().numpy(), taus=(0.9, 0.99))
        self.curve.append({"samples": int(samples), "seconds": float(seconds),
                           "frr_0.9": float(frr["0.9"]), "frr_0.99": float(frr["0.99"])})
