"""Timing helpers for benchmarks (``polysemy bench`` calls these; timed tests do not).

``time_steps`` runs the trainer's own step (``trainer.one_step``) on random data and reports seconds
per step and the rate of the step's matrix products; ``dense_matmul_rate`` measures the machine's fp32
matmul rate at the same shape, so ``step_gflops / matmul_gflops`` is the efficiency the issue asks for.
"""

from __future__ import annotations

import time

import torch

from .adam import StackedAdam
from .config import TrainConfig
from .registry import get_method
from .trainer import lr_scale, one_step


def step_matmul_flops(batch_size: int, d: int, width: int, stack: int = 1) -> float:
    """FLOPs of the five [B x d x M] products of one step (forward: encode, decode; backward: the
    gradient into the latents, decoder and encoder weights), 2 B d M each, times the stack size."""
    return 5 * 2.0 * batch_size * d * width * stack


def time_steps(method: str = "gba", d: int = 256, width: int = 2048, batch_size: int = 1024, steps: int = 20,
               stack: int = 1, warmup: int = 3, params: dict | None = None, seed: int = 0,
               device: str = "cpu") -> dict:
    """Time ``steps`` training steps of ``method`` (``stack`` models at once) after ``warmup`` steps.

    Returns seconds_per_step, samples_per_second (all models), step_gflops (matmul FLOPs / time)."""
    cfg = TrainConfig(method=method, width=width, steps=steps + warmup, batch_size=batch_size, seed=seed,
                      params=params or {})
    cfgs = [cfg.replace(seed=seed + g) for g in range(stack)]
    m = get_method(method)
    gen = torch.Generator().manual_seed(seed)
    # sparse non-negative mixtures of random directions, O(1) norm, like a world's samples
    V = torch.randn(4 * d, d, generator=gen)
    V /= V.norm(dim=1, keepdim=True)
    data = []
    for _ in range(4):
        codes = (torch.rand(stack * batch_size, 4 * d, generator=gen) < 3.0 / (4 * d)).float()
        data.append((codes @ V).view(stack, batch_size, d).to(device))
    model = m.init_model(cfgs, d, data[0])
    hyper = m.hyper(cfgs, d, torch.device(device))
    opt = StackedAdam(model.trainable(), torch.tensor([c.lr for c in cfgs], device=device))
    for i in range(warmup):
        one_step(m, model, opt, hyper, data[i % 4], i, lr_scale(cfg, i))
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        one_step(m, model, opt, hyper, data[i % 4], i, lr_scale(cfg, i))
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return {"method": method, "d": d, "width": width, "batch_size": batch_size, "stack": stack,
            "seconds_per_step": seconds, "samples_per_second": stack * batch_size / seconds,
            "step_gflops": step_matmul_flops(batch_size, d, width, stack) / seconds / 1e9}


def dense_matmul_rate(batch_size: int = 1024, d: int = 256, width: int = 2048, repeats: int = 20,
                      device: str = "cpu") -> float:
    """GFLOP/s of a dense fp32 [B, d] x [d, M] product on this machine (best of ``repeats``)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(batch_size, d, generator=gen).to(device)
    b = torch.randn(d, width, generator=gen).to(device)
    out = torch.empty(batch_size, width, device=device)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2.0 * batch_size * d * width / best / 1e9
