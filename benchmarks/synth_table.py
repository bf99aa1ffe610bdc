"""A SynthSAEBench-style table: every registered method on ``realistic-1k``, scored by SAELens's metrics.

World: the ``realistic-1k`` preset (n = 1024 features in d = 128, orthogonalised dictionary, 256 Zipf
parents with 3 mutually exclusive children each, rank-8 correlated firing; true L0 about 8.9), or any
world given with the usual world options (``--preset``, ``--n``, ...). Every method in
``polysemy.sae.list_methods()`` is trained at width ``--width`` (1024), batch ``--batch-size`` (1024,
SAELens's default) for ``--steps`` (5000) steps, over ``--seeds`` (3) seeds; a seed fixes the data
stream and the initialisation (the world stays the same, as in SynthSAEBench).

Matched sparsity (our choices): every method with a knob ``k`` (``topk``, ``batchtopk``, ``topk-tied``,
``matryoshka-batchtopk``) gets k = round(true L0); ``ba-theory`` gets
the target frequency p = true L0 / width, so its neurons fire at the true L0 in total. ``relu-l1`` and
``jumprelu`` keep their default penalties and ``gba``, ``gba-paper`` and ``ba`` their default targets (none of these
knobs sets L0 directly); their L0 column shows where they land. TopK-family latents fire at most k per
sample, not exactly k: the ReLU after the top-k (Gao et al. 2024; SAELens does the same) zeroes
non-positive pre-activations, and the L0 column shows by how much.

Learning rate: per method, a short sweep (seed 0, ``--sweep-steps`` steps, over ``--lrs`` plus the
method's own default lr, e.g. 1e-2 for gba and ba) picks the lr with the highest MCC; the sweep rows and
the chosen lr are recorded in the results file. Each method keeps its default lr schedule (linear decay
for gba and ba, constant for the others).

Metrics: ``polysemy.theory.metrics.recovery_metrics`` on ``--eval-samples`` fresh samples (data seed
12345): MCC, F1, precision, recall, uniqueness, explained variance, L0 and the dead fraction, all with
SAELens's definitions (docs/theory.md), plus our FRR(0.9). An oracle row (the true dictionary with the
true codes) and a random-dictionary row frame the table.

Resumable: every finished run is appended as one JSON line to ``--out`` (default
benchmarks/results/synth_table.jsonl) and skipped when the script is run again with the same settings.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/synth_table.py            # the full table
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/synth_table.py --preset theorem-uniform --n 64 --d 16 \\
        --width 64 --steps 40 --sweep-steps 20 --lrs 1e-3 --seeds 1 --out /tmp/tiny.jsonl   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from polysemy.io import write_text_atomic
from polysemy.errors import ConfigError
from polysemy.sae import TrainConfig, get_method, list_methods, train
from polysemy.sae.evaluate import evaluate_on_world
from polysemy.simulate import World
from polysemy.simulate.cli_options import add_world_arguments, world_config_from_args
from polysemy.theory.metrics import recovery_metrics

ROOT = Path(__file__).resolve().parent
EVAL_SEED = 12345
COLUMNS = ("mcc", "f1", "precision", "recall", "uniqueness", "explained_variance", "l0", "dead_fraction")
HEADERS = ("MCC", "F1", "precision", "recall", "uniqueness", "EV", "L0", "dead")


def matched_params(method: str, world, width: int) -> dict:
    """The sparsity knob set to the world's true L0 where a method has one (module docstring)."""
    if get_method(method).has_param("k"):      # topk, batchtopk, topk-tied, matryoshka-batchtopk
        return {"k": max(1, int(round(world.expected_l0)))}
    if method == "ba-theory":
        return {"target": min(0.5, world.expected_l0 / width)}
    return {}


def run_key(row: dict) -> str:
    keys = ("phase", "method", "params", "lr", "seed", "steps", "width", "batch_size", "world", "eval_samples")
    return json.dumps({k: row[k] for k in keys}, sort_keys=True)


def load_rows(path: Path) -> list[dict]:
    """Finished rows; a torn last line (a killed run) is ignored."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def append_row(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def train_one(world, method: str, params: dict, lr: float, seed: int, steps: int, args) -> dict:
    cfg = TrainConfig(method=method, width=args.width, steps=steps, batch_size=args.batch_size, lr=lr,
                      seed=seed, params=params)
    start = time.perf_counter()
    result = train(cfg, world.stream(args.batch_size, seed=seed), d=world.d, progress=False)
    seconds = time.perf_counter() - start
    m = evaluate_on_world(result.model, world, n_samples=args.eval_samples, seed=EVAL_SEED)
    return {"params": params, "seconds": round(seconds, 1), "frr_0.9": m["frr"]["0.9"],
            **{key: m[key] for key in COLUMNS}, "f1_alive_matched": m.get("f1_alive_matched"),
            "uniqueness_over_features": m["uniqueness_over_features"]}


def reference_rows(world, args) -> list[dict]:
    """Oracle (true dictionary, true codes) and random-dictionary rows on the evaluation samples."""
    batch = world.sample_with_truth(args.eval_samples, torch.Generator().manual_seed(EVAL_SEED))
    codes = batch.dense_codes(world.n)
    oracle = recovery_metrics(world.V, world.V, acts=codes, x=batch.x, x_hat=codes @ world.V, truth_codes=codes)
    rows = [{"name": "oracle (true V, true codes)", **{k: oracle[k] for k in COLUMNS}}]
    rand = torch.randn(args.width, world.d, generator=torch.Generator().manual_seed(0))
    rnd = recovery_metrics(rand, world.V)
    rows.append({"name": "random dictionary", "mcc": rnd["mcc"], "uniqueness": rnd["uniqueness"]})
    return rows


def summarise(rows: list[dict], methods: list[str], chosen: dict[str, float], seeds: int) -> list[dict]:
    """Mean and sd per method over its main runs of seeds 0 .. seeds - 1 (a file may hold more seeds)."""
    table = []
    for method in methods:
        runs = [r for r in rows if r["phase"] == "main" and r["method"] == method and r["seed"] < seeds]
        if not runs:
            continue
        entry = {"method": method, "lr": chosen[method], "params": runs[0]["params"], "seeds": len(runs)}
        for key in COLUMNS + ("frr_0.9", "seconds"):
            vals = np.array([r[key] for r in runs], dtype=np.float64)
            entry[key] = float(vals.mean())
            entry[key + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        table.append(entry)
    return table


def markdown(table: list[dict], refs: list[dict], world, args) -> str:
    def cell(e, key, digits):
        if key not in e or e[key] is None or (isinstance(e[key], float) and math.isnan(e[key])):
            return "-"
        std = e.get(key + "_std")
        return f"{e[key]:.{digits}f}" + (f" ± {std:.{digits}f}" if std else "")

    lines = [f"| method | knob | lr | {' | '.join(HEADERS)} |", "|---|---|---|" + "---:|" * len(HEADERS)]
    for e in table:
        knob = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in e["params"].items()) or "defaults"
        digits = {"l0": 2}
        lines.append(f"| {e['method']} | {knob} | {e['lr']:g} | "
                     + " | ".join(cell(e, k, digits.get(k, 3)) for k in COLUMNS) + " |")
    for r in refs:
        lines.append(f"| {r['name']} | - | - | " + " | ".join(cell(r, k, 2 if k == "l0" else 3) for k in COLUMNS) + " |")
    lines.append("")
    lines.append(f"World {world!r}; true L0 {world.expected_l0:.2f}; width {args.width}, {args.steps} steps at "
                 f"batch {args.batch_size}, {args.seeds} seeds (mean ± sd); metrics on {args.eval_samples} fresh "
                 "samples with SAELens's definitions.")
    return "\n".join(lines) + "\n"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_world_arguments(p)
    p.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--lrs", default="1e-4,3e-4,1e-3,3e-3", help="the lr sweep (comma-separated)")
    p.add_argument("--sweep-steps", type=int, default=1000)
    p.add_argument("--eval-samples", type=int, default=20_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "synth_table.jsonl")
    args = p.parse_args(argv)
    if args.preset is None and all(getattr(args, k, None) is None for k in ("n", "d", "s", "support")):
        args.preset = "realistic-1k"
    return args


def main(argv=None) -> int:
    args = parse(argv)
    try:
        cfg = world_config_from_args(args)
        methods = args.methods.split(",") if args.methods else list_methods()
        unknown = sorted(set(methods) - set(list_methods()))
        if unknown:
            raise ConfigError(f"methods must be among {list_methods()}, got {unknown}")
        lrs = [float(v) for v in args.lrs.split(",")]
        for name in ("width", "steps", "batch_size", "seeds", "sweep_steps", "eval_samples"):
            if getattr(args, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(args, name)}")
    except (ConfigError, ValueError) as exc:
        print(f"synth_table: error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    world = World(cfg)
    world_id = cfg.config_hash()
    done = {run_key(r): r for r in load_rows(args.out)}
    common = {"width": args.width, "batch_size": args.batch_size, "world": world_id, "eval_samples": args.eval_samples}

    def run(phase: str, method: str, lr: float, seed: int, steps: int) -> dict:
        row = {"phase": phase, "method": method, "params": matched_params(method, world, args.width), "lr": lr,
               "seed": seed, "steps": steps, **common}
        key = run_key(row)
        if key in done:
            return done[key]
        row.update(train_one(world, method, row["params"], lr, seed, steps, args))
        append_row(args.out, row)
        done[key] = row
        print(f"{phase:5s} {method:10s} lr={lr:g} seed={seed} mcc={row['mcc']:.3f} l0={row['l0']:.2f} "
              f"({row['seconds']} s)", flush=True)
        return row

    chosen = {}
    for method in methods:
        grid = sorted(set(lrs) | {float(get_method(method).default_lr)})
        sweep = [run("sweep", method, lr, 0, args.sweep_steps) for lr in grid]
        chosen[method] = max(sweep, key=lambda r: (r["mcc"], -r["lr"]))["lr"]
    for method in methods:
        for seed in range(args.seeds):
            run("main", method, chosen[method], seed, args.steps)
    rows = list(done.values())
    table = summarise(rows, methods, chosen, args.seeds)
    refs = reference_rows(world, args)
    text = markdown(table, refs, world, args)
    print(text)
    stem = args.out.with_suffix("")
    write_text_atomic(f"{stem}.md", text)
    write_text_atomic(f"{stem}.json", json.dumps({"table": table, "references": refs, "chosen_lr": chosen,
                                                  "world": cfg.to_dict()}, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
