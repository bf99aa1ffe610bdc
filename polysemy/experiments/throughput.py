"""Measurements against the machine: the matmul roofline, SAE step throughput, stacking, data cost.

What is measured (all fp32, CPU, in one process, so ratios are comparable within a run):

* ``matmul_gflops``: the dense fp32 rate of this machine, best of a few trials of a square
  ``[N, N] @ [N, N]`` product (2·N³ FLOPs each). This is the roofline every step is compared with.
* A training step of an SAE at batch B, input dimension d and width M does six dense products of
  B·d·M multiply-adds each (our count, the same for every method; sparse tricks are counted as if
  dense, so a method that skips work can exceed what the count predicts):

    forward   encode  x_BD @ W_DM              2·B·d·M
              decode  acts_BM @ W_MD           2·B·d·M
    backward  dL/dW_dec = acts_BMᵀ @ g_BD      2·B·d·M
              dL/dacts  = g_BD @ W_decᵀ        2·B·d·M
              dL/dW_enc = x_BDᵀ @ g_BM         2·B·d·M
              (the tied GBA SAE reuses one W, but the five products above plus the
               pre-activation product for its buffer statistics are still six B·d·M products)

  so ``step_flops = 12·B·d·M`` and ``roofline_fraction = step_flops / step_seconds / matmul_rate``.
* ``matmul_only_fraction``: the share of the step spent in those six products when they run alone at
  the step's shapes (measured), used with the Python-overhead floor (a step at a tiny shape) to say
  what limits a shape: arithmetic, memory traffic (element-wise work on [B, M] tensors) or Python
  overhead. This classification is our choice of rule, stated in :func:`classify_limit`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..configs import Config
from ..errors import require, require_int_range

SIX_PRODUCTS = 6  # dense B·d·M products per training step, see the module docstring


def step_flops(batch: int, d: int, width: int) -> int:
    """FLOPs of one SAE training step: six B·d·M products of 2 FLOPs per multiply-add (our count)."""
    return 2 * SIX_PRODUCTS * batch * d * width


def seconds_per_call(fn: Callable[[], object], *, min_seconds: float = 0.2, trials: int = 3,
                     warmup: int = 2) -> float:
    """Median over ``trials`` of the mean seconds per call, each trial lasting ≥ ``min_seconds``.

    The median of a few trials damps the noise of a shared machine; every trial runs whole calls.
    """
    require(min_seconds > 0, f"min_seconds must be > 0, got {min_seconds!r}")
    require_int_range("trials", trials, 1)
    for _ in range(warmup):
        fn()
    results = []
    for _ in range(trials):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        results.append(elapsed / calls)
    return statistics.median(results)


def measure_matmul_gflops(size: int = 1024, *, min_seconds: float = 0.3, trials: int = 5) -> float:
    """Dense fp32 matmul rate in GFLOP/s: best trial of ``[size, size] @ [size, size]`` (2·size³ FLOPs).

    The best (not the median) trial is the roofline: it is what the machine can do when not disturbed.
    """
    require_int_range("size", size, 16, 8192)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    out = torch.empty(size, size)
    fn = lambda: torch.mm(a, b, out=out)  # noqa: E731
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(trials):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / calls)
    return 2.0 * size**3 / best / 1e9


def matmul_only_seconds(batch: int, d: int, width: int, *, min_seconds: float = 0.2) -> float:
    """Seconds of the six B·d·M products of a step, run alone at the step's own shapes."""
    gen = torch.Generator().manual_seed(0)
    x_BD = torch.randn(batch, d, generator=gen)
    W_DM = torch.randn(d, width, generator=gen)
    W_MD = torch.randn(width, d, generator=gen)
    acts_BM = torch.randn(batch, width, generator=gen)
    g_BD = torch.randn(batch, d, generator=gen)

    def six_products():
        torch.mm(x_BD, W_DM)          # encode
        torch.mm(acts_BM, W_MD)       # decode
        torch.mm(acts_BM.T, g_BD)     # dL/dW_dec
        torch.mm(g_BD, W_MD.T)        # dL/dacts
        torch.mm(x_BD.T, acts_BM)     # dL/dW_enc
        torch.mm(x_BD, W_DM)          # the sixth product (pre-activations / aux loss)

    return seconds_per_call(six_products, min_seconds=min_seconds)


class ReferenceStep:
    """A minimal untied ReLU SAE step (Adam, MSE + L1), no bookkeeping: what bare torch reaches.

    It is the yardstick for the library's steps: a method step much slower than this one at the same
    shape spends its time outside the six products (bookkeeping, copies, Python).
    """

    def __init__(self, batch: int, d: int, width: int, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.W_enc_DM = torch.nn.Parameter(torch.randn(d, width, generator=gen) / d**0.5)
        self.W_dec_MD = torch.nn.Parameter(torch.randn(width, d, generator=gen) / d**0.5)
        self.b_enc_M = torch.nn.Parameter(torch.zeros(width))
        self.opt = torch.optim.Adam([self.W_enc_DM, self.W_dec_MD, self.b_enc_M], lr=1e-3)
        self.x_BD = torch.randn(batch, d, generator=gen)

    def __call__(self) -> None:
        acts_BM = torch.relu(self.x_BD @ self.W_enc_DM + self.b_enc_M)
        x_hat_BD = acts_BM @ self.W_dec_MD
        loss = (x_hat_BD - self.x_BD).pow(2).sum(-1).mean() + 1e-3 * acts_BM.sum(-1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def classify_limit(step_seconds: float, matmul_seconds: float, overhead_seconds: float) -> str:
    """Name what limits a step (our rule, stated so a reader can disagree with it).

    * ``python-overhead`` if a step at a tiny shape (pure dispatch cost) is ≥ 30% of this step;
    * ``arithmetic`` if the six products alone take ≥ 60% of the step;
    * ``memory-traffic`` otherwise: the remaining time goes to element-wise passes over [B, M]
      tensors (activation, masks, top-k, optimiser updates), which are bandwidth-bound.
    """
    if step_seconds <= 0:
        return "unknown"
    if overhead_seconds / step_seconds >= 0.3:
        return "python-overhead"
    if matmul_seconds / step_seconds >= 0.6:
        return "arithmetic"
    return "memory-traffic"


@dataclass(frozen=True)
class BenchConfig(Config):
    """What ``polysemy bench`` measures. Defaults are the issue's shapes (issue 6)."""

    shapes: tuple = ((64, 512), (256, 2048), (768, 4096))  # (d, width) pairs
    batch: int = 1024
    methods: tuple = ("gba", "ba", "topk", "batchtopk", "relu-l1", "jumprelu")
    stacked_models: int = 16
    stacked_d: int = 64
    stacked_width: int = 256
    world_s: int = 5            # sparsity of the world whose sampling cost is measured
    min_seconds: float = 0.3    # per timing trial
    matmul_size: int = 1024

    def validate(self) -> None:
        require(len(self.shapes) >= 1, "shapes must hold at least one (d, width) pair")
        for pair in self.shapes:
            require(len(pair) == 2, f"shapes entries must be (d, width) pairs, got {pair!r}")
            require_int_range("d", pair[0], 1, 65536)
            require_int_range("width", pair[1], 1, 1 << 20)
        require_int_range("batch", self.batch, 1, 1 << 20)
        require(len(self.methods) >= 1, "methods must name at least one method")
        require_int_range("stacked_models", self.stacked_models, 1, 4096)
        require_int_range("stacked_d", self.stacked_d, 1, 65536)
        require_int_range("stacked_width", self.stacked_width, 1, 1 << 20)
        require_int_range("world_s", self.world_s, 1)
        require(0 < self.min_seconds <= 60, f"min_seconds must be in (0, 60], got {self.min_seconds!r}")
        require_int_range("matmul_size", self.matmul_size, 16, 8192)

    @classmethod
    def quick(cls) -> "BenchConfig":
        """A CI-sized run: tiny shapes, short trials (seconds, not minutes)."""
        return cls(shapes=((16, 64),), batch=64, methods=("gba", "topk"), stacked_models=4,
                   stacked_d=16, stacked_width=32, min_seconds=0.05, matmul_size=256)
