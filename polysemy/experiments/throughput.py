"""Measurements against the machine: the matmul roofline, SAE step throughput, stacking, data cost.

What is measured (all fp32, CPU, in one process, so ratios are comparable within a run):

* ``matmul_gflops``: the dense fp32 rate of this machine: the best trial of square
  ``[N, N] @ [N, N]`` products (2·N³ FLOPs each), measured at the start, between shapes and at the end
  of the run (the largest is kept: on a shared machine the best observation is the closest to the true
  limit). Step times are best trials too (:func:`seconds_per_call`), so ratios compare like with like.
* Each method's step FLOPs are *counted*, not assumed: ``torch.utils.flop_counter.FlopCounterMode``
  records every matrix product (mm, bmm, baddbmm, addmm) of one training step, 2 FLOPs per
  multiply-add. A standard step has five dense B·d·M products (forward: encode x_BD @ W_DM and decode
  acts_BM @ W_MD; backward: dL/dW_dec, dL/dacts, dL/dW_enc), i.e. 10·B·d·M; the JSON reports each
  method's count as ``flops_per_BdM``. Element-wise work (activation, masks, top-k, Adam) is not counted.
* ``roofline_fraction = counted FLOPs / step seconds / matmul_gflops``.
* ``shape_matmul_gflops``: the rate of those five products run alone at the step's own shapes. Products
  with a small inner dimension (d = 64) write a [B, M] output per 2·d FLOPs and run far below the
  square-matmul rate: they are memory-bound even though they are "matmuls".
* ``matmul_only_fraction``: the counted FLOPs at ``shape_matmul_gflops``, as a share of the step.
  With the Python-overhead floor (a step at a tiny shape) it names what limits a shape, by the rule in
  :func:`classify_limit` (our choice of rule).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..configs import Config
from ..errors import require, require_int_range

STANDARD_PRODUCTS = 5  # dense B·d·M products of a plain forward + backward step, see the docstring


def nominal_step_flops(batch: int, d: int, width: int) -> int:
    """FLOPs of a plain SAE step: five B·d·M products, 2 FLOPs per multiply-add (10·B·d·M)."""
    return 2 * STANDARD_PRODUCTS * batch * d * width


def count_matmul_flops(fn: Callable[[], object]) -> int:
    """FLOPs of every matrix product one call of ``fn`` runs (``FlopCounterMode``; 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

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
    """What ``polysemy bench`` measures. Defaults are the issue's shapes (issue 6)."""

    shapes: tuple = ((64, 512), (256, 2048), (768, 4096))  # (d, width) pairs
    batch: int = 1024
    methods: tuple = ("gba", "ba", "topk", "batchtopk", "relu-l1", "jumprelu")
    stacked_models: int = 16
    stacked_d: int = 64
    stacked_width: int = 256
    stacked_batches: tuple = (1024, 512, 64)  # the first is the headline stacked_speedup
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
        require(len(self.stacked_batches) >= 1, "stacked_batches must name at least one batch size")
        for b in self.stacked_batches:
            require_int_range("stacked_batches", b, 1, 1 << 20)
        require_int_range("world_s", self.world_s, 1)
        require(0 < self.min_seconds <= 60, f"min_seconds must be in (0, 60], got {self.min_seconds!r}")
        require_int_range("matmul_size", self.matmul_size, 16, 8192)

    @classmethod
    def quick(cls) -> "BenchConfig":
        """A CI-sized run: tiny shapes, short trials (seconds, not minutes)."""
        return cls(shapes=((16, 64),), batch=64, methods=("gba", "topk"), stacked_models=4,
                   stacked_d=16, stacked_width=64, stacked_batches=(64,), min_seconds=0.05, matmul_size=256)


# -- timing the library's steps -------------------------------------------------------------------------
def bench_world(d: int, width: int, s: int):
    """The world whose samples feed a timed step: n = width / 2 features (the paper's width 2n)."""
    from ..simulate import World, WorldConfig

    n = max(s, width // 2)
    return World(WorldConfig(n=n, d=d, s=min(s, n)))


def library_step(method: str, d: int, width: int, batch: int, models: int = 1, seed: int = 0):
    """A closure running one training step of ``method`` (``models`` stacked) on world data.

    It runs the trainer's own ``one_step`` on a freshly initialised stack, the code path of
    ``polysemy.sae.train`` (as ``polysemy.sae.timing.time_steps`` does; a closure is needed here to
    repeat trials and count FLOPs). Batches are drawn from a world before timing and cycled, so data
    generation is not timed here (it is measured on its own by :func:`datagen_cost`).
    """
    import itertools

    from ..sae import TrainConfig, get_method
    from ..sae.adam import StackedAdam
    from ..sae.trainer import one_step

    world = bench_world(d, width, 5)
    gen = torch.Generator().manual_seed(seed)
    pool = [world.sample(batch, gen) for _ in range(4)]
    with warnings.catch_warnings():  # e.g. gba's "buffer covers few samples" at tiny batches
        warnings.simplefilter("ignore", UserWarning)
        cfgs = [TrainConfig(method=method, width=width, batch_size=batch, seed=seed + g) for g in range(models)]
    m = get_method(method)

    def batch_GBD(x_BD):
        return x_BD[None].expand(models, -1, -1).contiguous()

    x0 = batch_GBD(pool[0])
    model = m.init_model(cfgs, d, x0)
    hyper = m.hyper(cfgs, d, x0.device)
    optimizer = StackedAdam(model.trainable(), torch.tensor([c.lr for c in cfgs]))
    xs = itertools.cycle([batch_GBD(x) for x in pool])
    counter = itertools.count()

    def step():
        one_step(m, model, optimizer, hyper, next(xs), next(counter), 1.0)

    return step


def time_step(step: Callable[[], object], label: str, d: int, width: int, batch: int,
              matmul_gflops: float, min_seconds: float, overhead_seconds: float) -> dict:
    """Samples/s of one step closure at one shape, its counted FLOPs and its fraction of the roofline."""
    seconds = seconds_per_call(step, min_seconds=min_seconds, warmup=3)
    flops = count_matmul_flops(step)
    products_s = matmul_only_seconds(batch, d, width, min_seconds=min_seconds / 2)
    shape_rate = nominal_step_flops(batch, d, width) / products_s / 1e9
    matmul_s = flops / (shape_rate * 1e9)
    return {
        "d": d, "width": width, "batch": batch, "method": label,
        "step_seconds": seconds, "samples_per_second": batch / seconds,
        "step_flops": flops, "flops_per_BdM": flops / (batch * d * width),
        "step_gflops": flops / seconds / 1e9,
        "roofline_fraction": flops / seconds / 1e9 / matmul_gflops,
        "shape_matmul_gflops": shape_rate,
        "matmul_only_fraction": matmul_s / seconds,
        "limit": classify_limit(seconds, matmul_s, overhead_seconds, shape_rate, matmul_gflops),
    }


def stacked_speedup(method: str, models: int, d: int, width: int, batch: int, min_seconds: float) -> dict:
    """Seconds per step of ``models`` stacked models against ``models`` single-model steps."""
    stacked = seconds_per_call(library_step(method, d, width, batch, models=models), min_seconds=min_seconds)
    single = seconds_per_call(library_step(method, d, width, batch, models=1), min_seconds=min_seconds)
    return {"method": method, "models": models, "d": d, "width": width, "batch": batch,
            "stacked_step_seconds": stacked, "sequential_step_seconds": models * single,
            "speedup": models * single / stacked}


def datagen_cost(d: int, width: int, batch: int, s: int, step_seconds: float, min_seconds: float) -> dict:
    """Seconds to sample one batch of the world that feeds a step, as a fraction of that step."""
    world = bench_world(d, width, s)
    gen = torch.Generator().manual_seed(1)
    seconds = seconds_per_call(lambda: world.sample(batch, gen), min_seconds=min_seconds)
    return {"d": d, "width": width, "batch": batch, "n": world.n, "s": s,
            "sample_seconds": seconds, "step_seconds": step_seconds, "fraction": seconds / step_seconds}


def overhead_floor(method: str, min_seconds: float) -> float:
    """Seconds of a step at a tiny shape (d = 8, width 64, batch 8): dispatch and Python cost only."""
    return seconds_per_call(library_step(method, 8, 64, 8), min_seconds=min_seconds)


def run_bench(cfg: BenchConfig, *, progress: bool = True) -> dict:
    """Every measurement of ``polysemy bench`` in one run; returns the JSON-able result."""
    from tqdm import tqdm

    from .peers import machine_info

    matmul_start = measure_matmul_gflops(cfg.matmul_size, min_seconds=cfg.min_seconds)
    floors = {m: overhead_floor(m, cfg.min_seconds / 2) for m in cfg.methods}
    floors["reference-relu"] = seconds_per_call(ReferenceStep(8, 8, 64), min_seconds=cfg.min_seconds / 2)
    timed = []
    jobs = [(d, w, m) for d, w in cfg.shapes for m in cfg.methods] + [(d, w, None) for d, w in cfg.shapes]
    roofline_samples = [matmul_start]
    for i, (d, w, m) in enumerate(tqdm(jobs, desc="bench", unit="step", file=sys.stderr, disable=not progress)):
        if i % len(cfg.methods) == 0 and i:  # re-measure the roofline now and then: keep the best
            roofline_samples.append(measure_matmul_gflops(cfg.matmul_size, min_seconds=cfg.min_seconds))
        if m is None:  # the bare-torch yardstick at the same shape
            step, label, floor = ReferenceStep(cfg.batch, d, w), "reference-relu", floors["reference-relu"]
        else:
            step, label, floor = library_step(m, d, w, cfg.batch), m, floors[m]
        timed.append(time_step(step, label, d, w, cfg.batch, matmul_start, cfg.min_seconds, floor))
    head_method = "gba" if "gba" in cfg.methods else cfg.methods[0]
    stacked = [stacked_speedup(head_method, cfg.stacked_models, cfg.stacked_d, cfg.stacked_width, b,
                               cfg.min_seconds) for b in cfg.stacked_batches]
    datagen = []
    for d, w in cfg.shapes:
        step_s = next(r["step_seconds"] for r in timed if (r["d"], r["width"], r["method"]) == (d, w, head_method))
        datagen.append(datagen_cost(d, w, cfg.batch, cfg.world_s, step_s, cfg.min_seconds))
    matmul_end = measure_matmul_gflops(cfg.matmul_size, min_seconds=cfg.min_seconds)
    roofline_samples.append(matmul_end)
    matmul = max(roofline_samples)
    for r in timed:  # rescale to the best roofline observed in the run
        r["roofline_fraction"] = r["step_gflops"] / matmul
        r["limit"] = classify_limit(r["step_seconds"], r["matmul_only_fraction"] * r["step_seconds"],
                                    floors.get(r["method"], 0.0), r["shape_matmul_gflops"], matmul)
    shapes = [r for r in timed if r["method"] != "reference-relu"]
    reference = [r for r in timed if r["method"] == "reference-relu"]
    target = next((g for g in datagen if (g["d"], g["width"]) == (256, 2048)), datagen[0])
    goal_row = next((r for r in shapes if (r["d"], r["width"], r["method"]) == (256, 2048, head_method)), None)
    return {
        "matmul_gflops": matmul, "matmul_gflops_start": matmul_start, "matmul_gflops_end": matmul_end,
        "matmul_gflops_samples": roofline_samples,
        "matmul_size": cfg.matmul_size,
        "flop_count": "matrix-product FLOPs of one step, counted with torch FlopCounterMode "
                      "(2 per multiply-add); a plain step is 10*B*d*M; see flops_per_BdM per method",
        "shapes": shapes, "reference": reference,
        "overhead_floor_seconds": floors,
        "stacked_speedup": stacked[0]["speedup"], "stacked": stacked,
        "datagen_fraction": target["fraction"], "datagen": datagen,
        "goals": {
            "roofline_fraction_gba_256x2048": goal_row["roofline_fraction"] if goal_row else None,
            "roofline_goal": 0.5, "stacked_goal": 4.0, "datagen_goal": 0.2,
        },
        "config": cfg.to_dict(), "machine": machine_info(), "load_average": _load_average(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _load_average():
    try:
        return list(os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return None


def format_bench(result: dict) -> str:
    """The bench result as readable tables."""
    lines = [f"dense fp32 matmul ({result['matmul_size']}^3): {result['matmul_gflops']:.1f} GFLOP/s "
             f"(load average {result.get('load_average')})",
             f"FLOPs counted per step: {result['flop_count']}", ""]
    head = (f"{'d':>5} {'width':>6} {'method':<15} {'samples/s':>10} {'FLOPs/BdM':>9} {'GFLOP/s':>8} "
            f"{'roofline':>8} {'in matmul':>9}  limit")
    lines += [head, "-" * len(head)]
    for r in result["shapes"] + result["reference"]:
        lines.append(f"{r['d']:>5} {r['width']:>6} {r['method']:<15} {r['samples_per_second']:>10.0f} "
                     f"{r['flops_per_BdM']:>9.1f} {r['step_gflops']:>8.1f} {r['roofline_fraction']:>8.3f} "
                     f"{r['matmul_only_fraction']:>9.3f}  {r['limit']}")
    lines.append("")
    for s in result["stacked"]:
        lines.append(f"stacked {s['models']} x {s['method']} (d={s['d']}, width={s['width']}, batch={s['batch']}): "
                     f"{s['stacked_step_seconds'] * 1e3:.2f} ms/step stacked vs {s['sequential_step_seconds'] * 1e3:.2f} "
                     f"ms sequential -> speed-up {s['speedup']:.2f}x (goal >= 4)")
    for g in result["datagen"]:
        lines.append(f"data generation d={g['d']} n={g['n']} s={g['s']}: {g['sample_seconds'] * 1e3:.2f} ms per batch "
                     f"= {g['fraction']:.3f} of the step it feeds (goal < 0.2)")
    return "\n".join(lines)


def save_bench(result: dict, out_dir: str) -> dict:
    """Write bench.json and bench.csv (one row per shape and method) under ``out_dir``, atomically."""
    import csv
    import io
    import json

    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "bench.json"), "csv": os.path.join(out_dir, "bench.csv")}
    tmp = f"{paths['json']}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(result, fh, indent=1, default=str)
    os.replace(tmp, paths["json"])
    rows = result["shapes"] + result["reference"]
    cols = ["d", "width", "batch", "method", "samples_per_second", "step_seconds", "flops_per_BdM",
            "step_gflops", "roofline_fraction", "shape_matmul_gflops", "matmul_only_fraction", "limit"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    tmp = f"{paths['csv']}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(buf.getvalue())
    os.replace(tmp, paths["csv"])
    return paths
