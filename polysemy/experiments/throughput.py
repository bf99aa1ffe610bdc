"""Measurements against the machine: the encoder-product limit, SAE step throughput, sparsify, data cost.

What ``polysemy bench`` reports (all fp32, in one process, on the threads it is given):

* ``limit_samples_per_second`` per shape: the useful work of a training step is the dense encoder
  product u = x W (2·d·M FLOPs per sample: every projection is needed, to select the top k, to compare
  with a threshold, or for bias adaptation's statistics), plus O(L0·d) for the sparse decode and its
  gradients. The limit is B / (seconds of one [B, d] x [d, M] product), timed in the same run, on the
  same threads, alternating with the steps. ``limit_fraction = samples_per_second / limit``: 1.0 would
  mean the rest of the step is free.
* ``samples_per_second`` of each method's training step (the trainer's ``one_step``), the median of
  ``repeats`` trials that alternate with every other contender at that shape (A, B, C, A, B, C, ...), so
  the machine's load drifts over all of them alike. Each method is timed in its working state:
  gba and ba with each neuron's bias at its group's target frequency (their quantile bias
  initialisation, re-run untimed before each trial: the state bias adaptation maintains; L0 = about
  the sum of the targets, an upper bound of a trained run's, whose neurons settle at their features'
  frequencies), topk and batchtopk with ``dead_fraction`` of the latents forced dead before every step (so AuxK runs
  at every step, over that many dead latents). ``l0`` and ``path`` (sparse or dense decode) say what ran.
* ``sparsify_samples_per_second``: with the peers extra installed, EleutherAI sparsify's TopK
  ``SparseCoder`` step (k = the topk row's k, the same batches, the same dead latents passed as its
  ``dead_mask`` with AuxK weight 1/32, its default signum optimiser as in ``peer_adapters``), in the same
  alternation; ``vs_sparsify`` = ours / theirs.
* ``step_flops``: the matrix-product FLOPs of one step, counted (``FlopCounterMode``; the sparse path's
  embedding_bag kernels are not matrix products and are not counted).
* data generation as a fraction of the step it feeds, and optionally (``stacked_models`` > 0, the GPU
  bench) the stacked-vs-sequential speed-up.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..configs import Config
from ..errors import require, require_int_range
from ..io import write_json_atomic, write_text_atomic
from ..sae import TrainConfig, get_method, sparse
from ..sae.adam import StackedAdam
from ..sae.registry import bench_methods
from ..sae.trainer import one_step
from ..simulate import World, WorldConfig
from .peer_adapters.sparsify_peer import _import, default_lr
from .peers import machine_info
from .runner import run_units
from .spec import Unit

STANDARD_PRODUCTS = 5  # dense B·d·M products of a plain forward + backward step, see the docstring


def nominal_step_flops(batch: int, d: int, width: int) -> int:
    """FLOPs of a plain SAE step: five B·d·M products, 2 FLOPs per multiply-add (10·B·d·M)."""
    return 2 * STANDARD_PRODUCTS * batch * d * width


def count_matmul_flops(fn: Callable[[], object]) -> int:
    """FLOPs of every matrix product one call of ``fn`` runs (``FlopCounterMode``; 2 per multiply-add)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def seconds_per_call(fn: Callable[[], object], *, min_seconds: float = 0.2, trials: int = 3,
                     warmup: int = 2) -> float:
    """Best (smallest) over ``trials`` of the mean seconds per call, each trial ≥ ``min_seconds``.

    On a shared machine other jobs only ever slow a trial down, so the best trial is the closest to
    the undisturbed cost; the roofline is a best trial too, so their ratio compares like with like.
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
    return min(results)


def measure_matmul_gflops(size: int = 1024, *, min_seconds: float = 0.3, trials: int = 5) -> float:
    """Dense fp32 matmul rate in GFLOP/s: best trial of ``[size, size] @ [size, size]`` (2·size³ FLOPs).

    The best (not the median) trial is the roofline: it is what the machine can do when not disturbed.
    """
    require_int_range("size", size, 16, 8192)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    out = torch.empty(size, size)
    best = seconds_per_call(lambda: torch.mm(a, b, out=out), min_seconds=min_seconds, trials=trials)
    return 2.0 * size**3 / best / 1e9


def matmul_only_seconds(batch: int, d: int, width: int, *, min_seconds: float = 0.2) -> float:
    """Seconds of the five B·d·M products of a plain step, run alone at the step's own shapes."""
    gen = torch.Generator().manual_seed(0)
    x_BD = torch.randn(batch, d, generator=gen)
    W_DM = torch.randn(d, width, generator=gen)
    W_MD = torch.randn(width, d, generator=gen)
    acts_BM = torch.randn(batch, width, generator=gen)
    g_BD = torch.randn(batch, d, generator=gen)

    def five_products():
        torch.mm(x_BD, W_DM)          # encode
        torch.mm(acts_BM, W_MD)       # decode
        torch.mm(acts_BM.T, g_BD)     # dL/dW_dec
        torch.mm(g_BD, W_MD.T)        # dL/dacts
        torch.mm(x_BD.T, acts_BM)     # dL/dW_enc

    return seconds_per_call(five_products, min_seconds=min_seconds)


class ReferenceStep:
    """A minimal untied ReLU SAE step (torch Adam, MSE + L1, autograd), no bookkeeping: what bare torch
    reaches. Its backward runs exactly the five B·d·M products of a plain step (x needs no gradient).

    It is the yardstick for the library's steps: a method step much slower than this one at the same
    shape spends its time outside the five products (bookkeeping, copies, Python).
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


def classify_limit(step_seconds: float, matmul_seconds: float, overhead_seconds: float,
                   shape_rate: float, peak_rate: float) -> str:
    """Name what limits a step (our rule, stated so a reader can disagree with it).

    * ``python-overhead`` if a step at a tiny shape (pure dispatch cost) is ≥ 30% of this step;
    * else, if the products (at their own shapes' rate) take ≥ 60% of the step: ``arithmetic`` when
      those products run at ≥ 60% of the square-matmul rate, ``memory-traffic (products)`` when they
      run slower (small inner dimension: [B, M] outputs dominate);
    * else ``memory-traffic (element-wise)``: the time goes to passes over [B, M] tensors
      (activation, masks, top-k, optimiser updates), which are bandwidth-bound.
    """
    if step_seconds <= 0:
        return "unknown"
    if overhead_seconds / step_seconds >= 0.3:
        return "python-overhead"
    if matmul_seconds / step_seconds >= 0.6:
        return "arithmetic" if shape_rate >= 0.6 * peak_rate else "memory-traffic (products)"
    return "memory-traffic (element-wise)"


@dataclass(frozen=True)
class BenchConfig(Config):
    """What ``polysemy bench`` measures (see the module docstring). Defaults are issue 11's shapes."""

    shapes: tuple = ((128, 1024), (256, 2048), (768, 4096))  # (d, width) pairs
    batch: int = 1024
    methods: tuple = field(default_factory=bench_methods)   # the registry's default bench methods
    repeats: int = 5            # alternating trials per contender (median reported)
    min_seconds: float = 0.3    # per timing trial
    dead_fraction: float = 0.5  # latents forced dead before each topk / batchtopk step (AuxK runs)
    sparsify: bool = True       # time sparsify's TopK too, when it is installed
    stacked_models: int = 0     # > 0: also time that many stacked models (the GPU bench; 0 on the CPU)
    stacked_d: int = 64
    stacked_width: int = 256
    stacked_batches: tuple = (1024,)
    world_s: int = 5            # sparsity of the world whose samples feed the steps
    device: str = "cpu"
    matmul_size: int = 1024

    def validate(self) -> None:
        require(len(self.shapes) >= 1, "shapes must hold at least one (d, width) pair")
        for pair in self.shapes:
            require(len(pair) == 2, f"shapes entries must be (d, width) pairs, got {pair!r}")
            require_int_range("d", pair[0], 1, 65536)
            require_int_range("width", pair[1], 1, 1 << 20)
        require_int_range("batch", self.batch, 1, 1 << 20)
        require(len(self.methods) >= 1, "methods must name at least one method")
        require_int_range("repeats", self.repeats, 1, 1000)
        require(0 < self.min_seconds <= 60, f"min_seconds must be in (0, 60], got {self.min_seconds!r}")
        require(0.0 <= self.dead_fraction < 1.0, f"dead_fraction must be in [0, 1), got {self.dead_fraction!r}")
        require_int_range("stacked_models", self.stacked_models, 0, 4096)
        require_int_range("stacked_d", self.stacked_d, 1, 65536)
        require_int_range("stacked_width", self.stacked_width, 1, 1 << 20)
        for b in self.stacked_batches:
            require_int_range("stacked_batches", b, 1, 1 << 20)
        require_int_range("world_s", self.world_s, 1)
        require(isinstance(self.device, str) and self.device.split(":")[0] in ("cpu", "cuda", "mps"),
                f"device must be cpu, cuda[:i] or mps, got {self.device!r}")
        require_int_range("matmul_size", self.matmul_size, 16, 8192)

    @classmethod
    def quick(cls) -> "BenchConfig":
        """A CI-sized run: tiny shapes, short trials (seconds, not minutes)."""
        return cls(shapes=((16, 64),), batch=64, methods=("gba", "topk"), repeats=2, min_seconds=0.02,
                   stacked_d=16, stacked_width=64, stacked_batches=(64,), matmul_size=256)


# -- timing the library's steps -------------------------------------------------------------------------
def bench_world(d: int, width: int, s: int):
    """The world whose samples feed a timed step: n = width / 2 features (the paper's width 2n)."""
    n = max(s, width // 2)
    return World(WorldConfig(n=n, d=d, s=min(s, n)))


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def batch_pool(d: int, width: int, batch: int, s: int = 5, seed: int = 0, device: str = "cpu", count: int = 4):
    """``count`` world batches [B, d] that the timed steps cycle through (generation is not timed)."""
    world = bench_world(d, width, s)
    gen = torch.Generator().manual_seed(seed)
    return [world.sample(batch, gen, device=device) for _ in range(count)]


class LibraryStep:
    """A closure running one training step of ``method`` (``models`` stacked) on pooled world batches.

    It runs the trainer's own ``one_step`` on a freshly initialised stack, the code path of
    ``polysemy.sae.train``. Batches are drawn before timing and cycled (data generation is measured on
    its own by :func:`datagen_cost`). gba and ba start as they train, with biases at their quantile
    initialisation (each neuron fires at its target on the first batch: their default ``bias_init``).
    ``dead``: latent ids forced dead before every step (methods with AuxK). ``last`` is the last step's
    output (L0, AuxK loss)."""

    def __init__(self, method: str, d: int, width: int, batch: int, models: int = 1, seed: int = 0,
                 pool=None, dead: torch.Tensor | None = None, device: str = "cpu",
                 params: dict | None = None):
        pool = pool if pool is not None else batch_pool(d, width, batch, seed=seed, device=device)
        with warnings.catch_warnings():  # e.g. gba's "buffer covers few samples" at tiny batches
            warnings.simplefilter("ignore", UserWarning)
            cfgs = [TrainConfig(method=method, width=width, batch_size=batch, seed=seed + g, params=params or {})
                    for g in range(models)]
        self.method = get_method(method)
        xs = [x[None].expand(models, -1, -1).contiguous() for x in pool]
        self.model = self.method.init_model(cfgs, d, xs[0])
        self.cfgs, self.x0 = cfgs, xs[0]
        self.hyper = self.method.hyper(cfgs, d, xs[0].device)
        self.optimizer = StackedAdam(self.model.trainable(), torch.tensor([c.lr for c in cfgs], device=xs[0].device))
        self.dead = dead if (dead is not None and "dead_steps_G" in self.hyper) else None
        self.xs = itertools.cycle(xs)
        self.steps = itertools.count()
        self.last = None

    def between_trials(self) -> None:
        """Untimed, before each timing trial: gba/ba biases back at their targets (re-running their
        quantile initialisation on the current encoder), the state bias adaptation maintains every
        ``adapt_every`` steps; a few dozen timed steps at lr 1e-2 without an adaptation would otherwise
        let L0 drift far above it."""
        if hasattr(self.method, "init_biases") and hasattr(self.model, "target_GM"):
            with torch.no_grad():
                self.method.init_biases(self.model, self.cfgs, self.x0)

    def __call__(self):
        step = next(self.steps)
        if self.dead is not None:   # silent for dead_after_samples: AuxK takes them this step
            self.model.last_fired_GM[:, self.dead] = step - self.hyper["dead_steps_G"][:, None]
        self.last = one_step(self.method, self.model, self.optimizer, self.hyper, next(self.xs), step, 1.0)
        return self.last


def library_step(method: str, d: int, width: int, batch: int, models: int = 1, seed: int = 0, **kw):
    """A :class:`LibraryStep` (kept as a function for the callers of earlier versions)."""
    return LibraryStep(method, d, width, batch, models=models, seed=seed, **kw)


class SparsifyStep:
    """One training step of EleutherAI sparsify's TopK ``SparseCoder``, the recipe of
    ``peer_adapters.sparsify_peer`` (its defaults: unit-norm decoder, FVU loss, the gradient parallel
    to decoder rows removed, schedule-free signum), on the same pooled batches; ``dead`` latent ids are
    passed as its ``dead_mask`` and its AuxK loss added with weight ``aux_coef`` (1/32, as ours)."""

    def __init__(self, d: int, width: int, k: int, pool, dead: torch.Tensor | None = None,
                 aux_coef: float = 1.0 / 32.0, seed: int = 0, device: str = "cpu"):
        SparseCoder, SparseCoderConfig, SignSGD, ScheduleFreeWrapper = _import()
        torch.manual_seed(seed)
        self.coder = SparseCoder(d, SparseCoderConfig(num_latents=width, k=int(k)), device=device,
                                 dtype=torch.float32)
        self.coder.b_dec.data = pool[0].mean(0)
        self.optimizer = ScheduleFreeWrapper(SignSGD([{"params": self.coder.parameters(), "lr": default_lr(width)}]),
                                             momentum=0.95)
        self.optimizer.train()
        self.dead_mask = None
        if dead is not None:
            self.dead_mask = torch.zeros(width, dtype=torch.bool, device=device)
            self.dead_mask[dead] = True
        self.aux_coef = aux_coef
        self.xs = itertools.cycle(pool)

    def __call__(self):
        x = next(self.xs)
        self.coder.set_decoder_norm_to_unit_norm()
        out = self.coder(x=x, y=x, dead_mask=self.dead_mask)
        loss = out.fvu + self.aux_coef * out.auxk_loss if self.dead_mask is not None else out.fvu
        loss.backward()
        self.coder.remove_gradient_parallel_to_decoder_directions()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return out


def sparsify_available() -> bool:
    try:
        _import()
    except Exception:
        return False
    return True


def encoder_product(d: int, width: int, batch: int, device: str = "cpu"):
    """The limit's yardstick: one dense [B, d] x [d, M] product (2·B·d·M FLOPs), into a reused output."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, d, generator=gen).to(device)
    W = torch.randn(d, width, generator=gen).to(device)
    out = torch.empty(batch, width, device=device)
    return lambda: torch.mm(x, W, out=out)


def _trial(fn, min_seconds: float, device: str) -> float:
    """Mean seconds per call over at least ``min_seconds`` (at least one call). On a GPU the calls are
    queued without waiting and the device is synchronised once at each end."""
    _sync(device)
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        if time.perf_counter() - start >= min_seconds:
            _sync(device)
            return (time.perf_counter() - start) / calls


def alternate(contenders: dict, repeats: int, min_seconds: float, device: str = "cpu",
              warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each contender, over ``repeats`` rounds that time every contender
    once in turn (A, B, C, A, B, C, ...), after ``warmup`` untimed calls each."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            if hasattr(fn, "between_trials"):      # untimed state reset (LibraryStep)
                fn.between_trials()
            times[name].append(_trial(fn, min_seconds, device))
    return {name: statistics.median(v) for name, v in times.items()}


def stacked_speedup(method: str, models: int, d: int, width: int, batch: int, min_seconds: float,
                    device: str = "cpu", repeats: int = 3) -> dict:
    """Seconds per step of ``models`` stacked models against ``models`` single-model steps."""
    pool = batch_pool(d, width, batch, device=device)
    secs = alternate({"stacked": LibraryStep(method, d, width, batch, models=models, pool=pool, device=device),
                      "single": LibraryStep(method, d, width, batch, models=1, pool=pool, device=device)},
                     repeats, min_seconds, device)
    return {"method": method, "models": models, "d": d, "width": width, "batch": batch,
            "stacked_step_seconds": secs["stacked"], "sequential_step_seconds": models * secs["single"],
            "speedup": models * secs["single"] / secs["stacked"]}


def datagen_cost(d: int, width: int, batch: int, s: int, step_seconds: float, min_seconds: float,
                 device: str = "cpu") -> dict:
    """Seconds to sample one batch of the world that feeds a step, as a fraction of that step."""
    world = bench_world(d, width, s)
    gen = torch.Generator().manual_seed(1)

    def sample():
        world.sample(batch, gen, device=device)
        _sync(device)

    seconds = seconds_per_call(sample, min_seconds=min_seconds)
    return {"d": d, "width": width, "batch": batch, "n": world.n, "s": s,
            "sample_seconds": seconds, "step_seconds": step_seconds, "fraction": seconds / step_seconds}


def _path(step: "LibraryStep", l0: float, width: int, device: str) -> str:
    """Which decode path the step took (the rule of ``polysemy.sae.sparse``)."""
    method = step.method
    if not getattr(method, "sparse_codes", True) or method.name == "relu-l1":
        return "dense"
    if sparse.decode_mode() != "auto":
        return sparse.decode_mode()
    ks = step.hyper.get("ks")
    if ks is not None:                     # topk, batchtopk: decided by k, without looking at the data
        return "sparse" if all(method.static_choice(step.hyper, width, device)) else "dense"
    if torch.device(device).type != "cpu":  # gba, ba, jumprelu off the CPU: dense (no host sync)
        return "dense"
    return "sparse" if l0 <= sparse.SPARSE_MAX_L0_FRACTION * width else "dense"


def bench_shape(cfg: BenchConfig, d: int, width: int, use_sparsify: bool) -> tuple[dict, list[dict]]:
    """Every contender at one shape, alternating: (the limit entry, one row per method)."""
    B, device = cfg.batch, cfg.device
    pool = batch_pool(d, width, B, s=cfg.world_s, device=device)
    n_dead = int(round(cfg.dead_fraction * width))
    dead = torch.randperm(width, generator=torch.Generator().manual_seed(2))[:n_dead].to(device) if n_dead else None
    steps = {m: LibraryStep(m, d, width, B, pool=pool, dead=dead, device=device) for m in cfg.methods}
    contenders = {"limit": encoder_product(d, width, B, device), **steps}
    k = None
    if use_sparsify:
        k = TrainConfig(method="topk", width=width).method_params.k
        contenders["sparsify-topk"] = SparsifyStep(d, width, k, pool, dead=dead, device=device)
    seconds = alternate(contenders, cfg.repeats, cfg.min_seconds, device)
    limit = B / seconds["limit"]
    theirs = B / seconds["sparsify-topk"] if "sparsify-topk" in seconds else None
    rows = []
    for m, step in steps.items():
        step.between_trials()
        out = step()                          # one more step: what it does (L0, AuxK), and its FLOPs
        l0 = float(out.fired_GM.sum()) / B
        aux = out.extras.get("aux_loss")
        flops = count_matmul_flops(step)
        sps = B / seconds[m]
        rows.append({
            "d": d, "width": width, "batch": B, "method": m, "step_seconds": seconds[m], "samples_per_second": sps,
            "limit_samples_per_second": limit, "limit_fraction": sps / limit, "l0": l0,
            "path": _path(step, l0, width, device), "dead_latents": n_dead if step.dead is not None else 0,
            "aux_loss": float(aux.sum()) if aux is not None else None,
            "step_flops": flops, "flops_per_BdM": flops / (B * d * width),
            "sparsify_samples_per_second": theirs, "sparsify_k": k,
            "vs_sparsify": sps / theirs if theirs else None,
        })
    entry = {"d": d, "width": width, "batch": B, "encoder_product_seconds": seconds["limit"],
             "limit_samples_per_second": limit, "encoder_gflops": 2.0 * B * d * width / seconds["limit"] / 1e9,
             "sparsify_samples_per_second": theirs}
    return entry, rows


# -- the experiment spec: one unit per alternated round ----------------------------------------------
SHAPE_UNIT = "bench-shape"      # every contender at one (d, width), alternating; then that shape's data cost
STACKED_UNIT = "bench-stacked"  # stacked against sequential models at one batch size, alternating


def head_method(cfg: BenchConfig) -> str:
    """The method whose step prices data generation and the stacked speed-up: gba, else the first."""
    return "gba" if "gba" in cfg.methods else cfg.methods[0]


@dataclass(frozen=True)
class BenchSpec:
    """``polysemy bench`` as an experiment spec for the runner (``runner`` module docstring).

    A unit of work is one alternated timing round, so every ratio the bench reports (of the limit, vs
    sparsify, stacked vs sequential) comes from contenders timed in the same round: one unit per shape
    (every method, the encoder-product limit and sparsify's TopK alternating; then the data cost at that
    shape, priced against the head method's step), and one per stacked batch size. Units run in this
    process, one after another. A unit's key holds what its timings depend on (the config's fields, the
    torch threads, the decode mode, whether sparsify runs), so a store resumes an interrupted bench and
    a change of any of them measures anew. ``frame(rows)``: one row per (shape, method).
    """

    config: BenchConfig
    sparsify: bool = False      # time sparsify's TopK (installed and asked for)
    name = "bench"
    in_process = True

    def expand(self) -> list:
        cfg = self.config
        common = {"batch": cfg.batch, "min_seconds": cfg.min_seconds, "repeats": cfg.repeats,
                  "device": cfg.device, "threads": torch.get_num_threads(), "decode_mode": sparse.decode_mode(),
                  "torch": torch.__version__}
        units = [Unit.make(SHAPE_UNIT, {"d": d, "width": w, "methods": cfg.methods, "dead_fraction": cfg.dead_fraction,
                                        "world_s": cfg.world_s, "sparsify": self.sparsify, "head": head_method(cfg),
                                        **common})
                 for d, w in cfg.shapes]
        if cfg.stacked_models > 0:
            units += [Unit.make(STACKED_UNIT, {"stacked_batch": b, "models": cfg.stacked_models, "d": cfg.stacked_d,
                                               "width": cfg.stacked_width, "head": head_method(cfg), **common})
                      for b in cfg.stacked_batches]
        return units

    def default_evaluator(self, device: str = "cpu", precision: str = "fp32"):
        return functools.partial(evaluate_units, self.config, self.sparsify)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps({"experiment": self.name, "config": self.config.to_dict(), "sparsify": self.sparsify},
                          indent=indent, sort_keys=True)

    def frame(self, rows: list[dict]):
        """One row per (shape, method): the columns of ``bench.csv`` and the rest of each method's row."""
        return pd.DataFrame([r for row in rows if row["kind"] == SHAPE_UNIT for r in row["methods"]])


def evaluate_units(cfg: BenchConfig, use_sparsify: bool, units: list) -> list[dict]:
    """The runner's evaluator: time each unit (:func:`bench_shape` and :func:`datagen_cost`, or
    :func:`stacked_speedup`)."""
    out = []
    head = head_method(cfg)
    for unit in units:
        key = unit.key
        if unit.kind == SHAPE_UNIT:
            d, w = key["d"], key["width"]
            entry, rows = bench_shape(cfg, d, w, use_sparsify)
            step_s = next(r["step_seconds"] for r in rows if r["method"] == head)
            datagen = datagen_cost(d, w, cfg.batch, cfg.world_s, step_s, cfg.min_seconds, cfg.device)
            out.append({"limit": entry, "methods": rows, "datagen": datagen})
        else:
            out.append({"stacked": stacked_speedup(head, cfg.stacked_models, cfg.stacked_d, cfg.stacked_width,
                                                   key["stacked_batch"], cfg.min_seconds, cfg.device)})
    return out


def run_bench(cfg: BenchConfig, *, progress: bool = True, store=None, log=None) -> dict:
    """Every measurement of ``polysemy bench``; returns the JSON-able result.

    The timing rounds go through the runner into the result store at ``store`` (:class:`BenchSpec`):
    rerunning with the same store and settings keeps the rounds already timed (an interrupted bench
    resumes; said on ``log``, default ``sys.stderr``); ``store=None`` uses a temporary one (all measured
    now). The DataFrame of the same rows: ``runner.run_experiment(BenchSpec(cfg, sparsify), store)``."""
    spec = BenchSpec(cfg, bool(cfg.sparsify and sparsify_available()))
    units, stored, _ = run_units(spec, store, progress=progress, log=log if log is not None else sys.stderr,
                                 what="timing rounds")
    results = [stored[u.cell_id] for u in units]
    use_sparsify = spec.sparsify
    limits = [r["limit"] for r in results if r["kind"] == SHAPE_UNIT]
    rows = [m for r in results if r["kind"] == SHAPE_UNIT for m in r["methods"]]
    datagen = [r["datagen"] for r in results if r["kind"] == SHAPE_UNIT]
    stacked = [r["stacked"] for r in results if r["kind"] == STACKED_UNIT]

    def row(method, d, w):
        return next((r for r in rows if (r["method"], r["d"], r["width"]) == (method, d, w)), None)

    def ratio(method, d, w):
        r = row(method, d, w)
        return r["vs_sparsify"] if r else None

    goals = {
        "topk_vs_sparsify_128x1024": ratio("topk", 128, 1024), "topk_vs_sparsify_768x4096": ratio("topk", 768, 4096),
        "gba_vs_sparsify_128x1024": ratio("gba", 128, 1024),
        "gba_limit_fraction_768x4096": (row("gba", 768, 4096) or {}).get("limit_fraction"),
        "goal_topk_vs_sparsify": 1.0, "goal_gba_vs_sparsify": 1.5, "goal_gba_limit_fraction": 0.5,
    }
    return {
        "shapes": rows, "limits": limits, "sparsify": use_sparsify,
        "datagen_fraction": max(g["fraction"] for g in datagen), "datagen": datagen,
        "stacked": stacked, "stacked_speedup": stacked[0]["speedup"] if stacked else None,
        "goals": goals, "decode_mode": sparse.decode_mode(), "config": cfg.to_dict(), "machine": machine_info(),
        "load_average": _load_average(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _load_average():
    try:
        return list(os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return None


def _num(v, fmt):
    return "-" if v is None else format(v, fmt)


def format_bench(result: dict) -> str:
    """The bench result as readable tables."""
    lines = [f"device {result['config']['device']}, {result['machine']['torch_threads']} thread(s), "
             f"load average {result.get('load_average')}; medians of {result['config']['repeats']} alternating trials", ""]
    head = (f"{'d':>5} {'width':>6} {'method':<10} {'samples/s':>10} {'limit':>10} {'of limit':>8} "
            f"{'sparsify':>10} {'vs spars.':>9} {'L0':>7} {'path':<6} {'dead':>5}")
    lines += [head, "-" * len(head)]
    for r in result["shapes"]:
        lines.append(f"{r['d']:>5} {r['width']:>6} {r['method']:<10} {r['samples_per_second']:>10.0f} "
                     f"{r['limit_samples_per_second']:>10.0f} {r['limit_fraction']:>8.3f} "
                     f"{_num(r['sparsify_samples_per_second'], '10.0f'):>10} {_num(r['vs_sparsify'], '9.2f'):>9} "
                     f"{r['l0']:>7.1f} {r['path']:<6} {r['dead_latents']:>5}")
    lines.append("")
    g = result["goals"]
    lines.append(f"goals: topk vs sparsify {_num(g['topk_vs_sparsify_128x1024'], '.2f')} (128x1024), "
                 f"{_num(g['topk_vs_sparsify_768x4096'], '.2f')} (768x4096), goal >= 1.0; gba vs sparsify TopK "
                 f"{_num(g['gba_vs_sparsify_128x1024'], '.2f')} (128x1024), goal >= 1.5; gba of the limit "
                 f"{_num(g['gba_limit_fraction_768x4096'], '.2f')} (768x4096), goal >= 0.5")
    if not result["sparsify"]:
        lines.append("sparsify is not installed (pip install -e '.[peers]'): no sparsify column")
    for s in result["stacked"]:
        lines.append(f"stacked {s['models']} x {s['method']} (d={s['d']}, width={s['width']}, batch={s['batch']}): "
                     f"{s['stacked_step_seconds'] * 1e3:.2f} ms/step stacked vs {s['sequential_step_seconds'] * 1e3:.2f} "
                     f"ms sequential -> speed-up {s['speedup']:.2f}x")
    for g in result["datagen"]:
        lines.append(f"data generation d={g['d']} n={g['n']} s={g['s']}: {g['sample_seconds'] * 1e3:.2f} ms per batch "
                     f"= {g['fraction']:.3f} of the step it feeds")
    return "\n".join(lines)


BENCH_CSV_COLUMNS = ["d", "width", "batch", "method", "samples_per_second", "limit_samples_per_second",
                     "limit_fraction", "sparsify_samples_per_second", "vs_sparsify", "l0", "path", "dead_latents",
                     "aux_loss", "step_seconds", "step_flops", "flops_per_BdM"]


def save_bench(result: dict, out_dir: str) -> dict:
    """Write bench.json and bench.csv (one row per shape and method) under ``out_dir``, atomically."""
    paths = {"json": os.path.join(out_dir, "bench.json"), "csv": os.path.join(out_dir, "bench.csv")}
    write_json_atomic(paths["json"], result, default=str)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=BENCH_CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(result["shapes"])
    write_text_atomic(paths["csv"], buf.getvalue())
    return paths
