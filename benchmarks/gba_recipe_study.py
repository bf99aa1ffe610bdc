"""GBA recipe study on the theorem's uniform world (issue 3, "What it must show", first point).

Question: with no knowledge of the world's sparsity s (or its frequency f = s/n), which GBA recipe
recovers the true features most precisely? The default recipe must reach FRR(0.9) >= 95% on
``theorem-uniform`` (n = 256, d = 64, s = 3); we also push FRR(0.99) up by varying one knob at a time:
learning rate (and a linear decay), gamma_plus / gamma_minus, the output-scale initialisation a0, the
adaptation interval / buffer, the target range HTF..LTF, the number of groups and the number of steps.

Every variant is a set of overrides of the default ``TrainConfig(method="gba")``; none of them may use
s or f (they must stay "tuning-free"). For each seed, all variants train together through
``train_stacked`` (variants of one shape share a stack, others run as further stacks), model g with
init seed = data seed = the run's seed, so the variants of one seed see exactly the same samples.
Recovery is measured with ``evaluate_on_world`` on 65536 fresh samples; its FRR counts only latents
that fire on them (a latent of the lowest GBA group fires on ~1e-3 of samples, so 8192 samples can
miss it). ``frr_*_all_rows`` also counts latents that did not fire (the trainer's logged FRR).

Run (about 35 s of one core per model and 5000 steps at width 512; keep each call to a few minutes):
    .venv/bin/python benchmarks/gba_recipe_study.py --list
    .venv/bin/python benchmarks/gba_recipe_study.py --variants default,lr=3e-4,gamma=0.05+a0=0.01 --seeds 2 --merge
Results: benchmarks/results/recovery_gba_study.{json,csv} (one row per variant and seed; --merge keeps
the rows of variants not re-run), and a table of means over seeds on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from polysemy.io import write_text_atomic
from polysemy.errors import ConfigError
from polysemy.sae import TrainConfig, get_method, train_stacked
from polysemy.sae.evaluate import evaluate_on_world
from polysemy.simulate import World, get_preset
from polysemy.theory import metrics

RESULTS = Path(__file__).resolve().parent / "results"

# name (knobs joined by "+") -> overrides of TrainConfig(method="gba", width, steps, batch_size) (fields or gba params).
# None of them depends on the world's s or f.
VARIANTS: dict[str, dict] = {
    "default": {},
    # learning rate
    "lr=3e-4": {"lr": 3e-4},
    "lr=3e-3": {"lr": 3e-3},
    "lr-decay": {"lr_schedule": "linear-decay", "lr_decay_start": 0.5},
    "lr=3e-3+lr-decay": {"lr": 3e-3, "lr_schedule": "linear-decay", "lr_decay_start": 0.5},
    # bias step sizes
    "gamma=0.003": {"gamma_plus": 0.003, "gamma_minus": 0.003},
    "gamma=0.05": {"gamma_plus": 0.05, "gamma_minus": 0.05},
    "gamma-=0.05": {"gamma_minus": 0.05},
    # output-scale initialisation
    "a0=0.01": {"a0": 0.01},
    "a0=0.3": {"a0": 0.3},
    "a0=1": {"a0": 1.0},
    # adaptation interval and buffer (default: every 50 steps over the last 50 x 512 samples)
    "adapt_every=10": {"adapt_every": 10},
    "adapt_every=10+buffer=25600": {"adapt_every": 10, "buffer": 25600},
    "adapt_every=200": {"adapt_every": 200},
    # target range (default 0.1 ... 0.001, arXiv v1)
    "htf=0.5": {"htf": 0.5},
    "htf=0.05": {"htf": 0.05},
    "ltf=1e-4": {"ltf": 1e-4, "eps": 1e-5},
    "htf=0.5+ltf=1e-4": {"htf": 0.5, "ltf": 1e-4, "eps": 1e-5},
    "groups=20": {"groups": 20},
    # combinations (round 2)
    "gamma=0.05+a0=0.01": {"gamma_plus": 0.05, "gamma_minus": 0.05, "a0": 0.01},
    "gamma=0.05+a0=0.03": {"gamma_plus": 0.05, "gamma_minus": 0.05, "a0": 0.03},
    "gamma=0.1+a0=0.01": {"gamma_plus": 0.1, "gamma_minus": 0.1, "a0": 0.01},
    "gamma=0.05+a0=0.01+lr=3e-4": {"gamma_plus": 0.05, "gamma_minus": 0.05, "a0": 0.01, "lr": 3e-4},
    "gamma=0.05+lr-decay": {"gamma_plus": 0.05, "gamma_minus": 0.05, "lr_schedule": "linear-decay",
                            "lr_decay_start": 0.5},
    "gamma=0.05+a0=0.01+lr-decay": {"gamma_plus": 0.05, "gamma_minus": 0.05, "a0": 0.01,
                                    "lr_schedule": "linear-decay", "lr_decay_start": 0.5},
    "gamma=0.05+a0=0.01+lr=3e-3+lr-decay": {"gamma_plus": 0.05, "gamma_minus": 0.05, "a0": 0.01, "lr": 3e-3,
                                            "lr_schedule": "linear-decay", "lr_decay_start": 0.5},
    "gamma=0.05+a0=0.01+adapt_every=10": {"gamma_plus": 0.05, "gamma_minus": 0.05, "a0": 0.01, "adapt_every": 10},
    "gamma=0.1": {"gamma_plus": 0.1, "gamma_minus": 0.1},
    "gamma=0.2+a0=0.01": {"gamma_plus": 0.2, "gamma_minus": 0.2, "a0": 0.01},
    "gamma=0.1+a0=0.01+lr-decay": {"gamma_plus": 0.1, "gamma_minus": 0.1, "a0": 0.01,
                                   "lr_schedule": "linear-decay", "lr_decay_start": 0.5},
    # the number of steps
    "steps=10000": {"steps": 10000},
    "steps=10000+lr-decay": {"steps": 10000, "lr_schedule": "linear-decay", "lr_decay_start": 0.5},
    "gamma=0.1+a0=0.01+steps=10000": {"gamma_plus": 0.1, "gamma_minus": 0.1, "a0": 0.01, "steps": 10000},
}


def build_config(name: str, overrides: dict, width: int, steps: int, batch_size: int, seed: int) -> TrainConfig:
    """The variant's TrainConfig; overrides are applied together (e.g. ltf and eps must change at once)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    train_overrides = {k: v for k, v in overrides.items() if k in fields}
    method_overrides = {k: v for k, v in overrides.items() if k not in fields}
    steps = train_overrides.pop("steps", steps)
    return TrainConfig(method="gba", width=width, steps=steps, batch_size=batch_size, seed=seed,
                       log_every=max(1, steps // 10), params=method_overrides, **train_overrides)


def parse_variant_list(text: str) -> list[str]:
    names = list(VARIANTS) if text == "all" else [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"--variants must name entries of {list(VARIANTS)} (or 'all'), got {unknown}")
    return names


def run_seed(names: list[str], world: World, seed: int, width: int, steps: int, batch_size: int,
             n_eval: int) -> list[dict]:
    """Train every variant with this seed (stacked where shapes allow) and evaluate it."""
    cfgs = [build_config(v, VARIANTS[v], width, steps, batch_size, seed) for v in names]
    stack_size: dict[tuple, int] = {}
    for cfg in cfgs:
        key = get_method(cfg.method).structure_key(cfg)
        stack_size[key] = stack_size.get(key, 0) + 1
    datas = [world.stream(batch_size, seed=seed) for _ in cfgs]
    results = train_stacked(cfgs, datas, world.d, truth=world.V, progress=True)
    rows = []
    for name, cfg, result in zip(names, cfgs, results):
        ev = evaluate_on_world(result.model, world, n_samples=n_eval)
        all_rows = metrics.frr(result.model.W_dec, world.V)
        hist = result.history
        half = hist.iloc[(len(hist) - 1) // 2] if len(hist) else None
        G = stack_size[get_method(cfg.method).structure_key(cfg)]
        bias = result.model.stack.bias_GM[0]
        rows.append({
            "variant": name, "seed": seed, "steps": cfg.steps, "width": cfg.width,
            "frr_0.8": ev["frr"]["0.8"], "frr_0.9": ev["frr"]["0.9"], "frr_0.99": ev["frr"]["0.99"],
            "frr_0.9_all_rows": all_rows["0.9"], "frr_0.99_all_rows": all_rows["0.99"],
            "frr_0.99_halfway": float(half["frr_0.99"]) if half is not None else float("nan"),
            "mcc": ev["mcc"], "mmcs": ev["mmcs"], "l0": ev["l0"], "alive_fraction": ev["alive_fraction"],
            "explained_variance": ev["explained_variance"],
            "bias_min": float(bias.min()), "bias_max": float(bias.max()),
            # the stack's wall clock shared by its G models: seconds of one model, amortised
            "seconds_per_model": result.seconds / G, "stack_size": G,
            "overrides": json.dumps(VARIANTS[name], sort_keys=True),
        })
    return rows


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    order = {v: i for i, v in enumerate(VARIANTS)}
    g = df.groupby("variant")
    table = pd.DataFrame({
        "seeds": g["seed"].count(),
        "frr_0.9": g["frr_0.9"].mean(), "frr_0.99": g["frr_0.99"].mean(),
        "frr_0.99_min": g["frr_0.99"].min(), "frr_0.9_all": g["frr_0.9_all_rows"].mean(),
        "frr_0.99_all": g["frr_0.99_all_rows"].mean(), "frr_0.99_halfway": g["frr_0.99_halfway"].mean(),
        "l0": g["l0"].mean(), "alive": g["alive_fraction"].mean(),
        "seconds": g["seconds_per_model"].mean(),
    })
    return table.sort_index(key=lambda idx: idx.map(lambda v: order.get(v, len(order))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="default", help="comma-separated names, or 'all' (see --list)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 (init seed = data seed)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=5000, help="steps unless the variant sets its own")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--preset", default="theorem-uniform")
    parser.add_argument("--eval-samples", type=int, default=65536)
    parser.add_argument("--out", default=str(RESULTS / "recovery_gba_study"), help="path prefix for .json/.csv")
    parser.add_argument("--merge", action="store_true", help="keep existing rows of other variants/seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for name, overrides in VARIANTS.items():
                print(f"{name:32s} {overrides}")
            return 0
        names = parse_variant_list(args.variants)
        if args.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
        torch.set_num_threads(args.threads)
        world = World(get_preset(args.preset))
        rows = []
        started = time.perf_counter()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows += run_seed(names, world, seed, args.width, args.steps, args.batch_size, args.eval_samples)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    df = pd.DataFrame(rows)
    df["preset"] = args.preset
    out = Path(args.out)
    json_path = out.with_name(out.name + ".json")
    if args.merge and json_path.exists():
        old = pd.DataFrame(json.loads(json_path.read_text())["rows"])
        fresh = set(zip(df["variant"], df["seed"], df["preset"]))
        keep = [(v, s, p) not in fresh for v, s, p in zip(old["variant"], old["seed"], old["preset"])]
        df = pd.concat([old[keep], df], ignore_index=True)
    meta = {"benchmark": "gba_recipe_study", "command": " ".join(sys.argv),
            "world": world.config.to_dict(), "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "threads": args.threads, "wall_seconds_last_call": time.perf_counter() - started}
    write_text_atomic(json_path, json.dumps({"meta": meta, "rows": df.to_dict("records")}, indent=1))
    write_text_atomic(out.with_name(out.name + ".csv"), df.to_csv(index=False))
    table = summarise(df[df["preset"] == args.preset])
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {json_path} and .csv ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
