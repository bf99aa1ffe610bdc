"""The study behind GBA's 0.2 defaults (docs/recovery-study.md, section 0): named variants on named
worlds, each reported with recovery AND the state that would expose a degenerate solution (biases at a
bound, per-group target against achieved frequency, L0 against the truth, dead latents, samples to
recovery).

Variants are overrides of the ``gba`` defaults (method parameters and TrainConfig fields); worlds:
``tu`` (theorem-uniform, width 512, 5000 x 512), ``toy`` (the calibrated paper-toy, width 256,
5000 x 512), ``n512`` (n = 512, d = 128, s = 5, width 1024, 600 x 512, logged every 10 steps, for
samples to recovery) and ``easy`` (n = 32, d = 32, s = 2, width 64, 2000 x 256).

Run (one core; 10-80 s a run):
    .venv/bin/python benchmarks/gba_defaults_study.py --list
    .venv/bin/python benchmarks/gba_defaults_study.py --worlds tu,toy --variants defaults,tied,gamma=0.02
    .venv/bin/python benchmarks/gba_defaults_study.py --worlds toy --variants tied --set lowering=full
Appends to benchmarks/results/gba_defaults_study.jsonl (one JSON row per world, variant and seed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from polysemy.sae import TrainConfig, train
from polysemy.sae.diagnostics import adaptation_report, samples_to_recovery
from polysemy.sae.evaluate import evaluate_on_world
from polysemy.simulate import World, WorldConfig, get_preset

RESULTS = Path(__file__).resolve().parent / "results" / "gba_defaults_study.jsonl"

# world name -> (world config, TrainConfig fields)
WORLDS = {
    "tu": (get_preset("theorem-uniform"), dict(width=512, steps=5000, batch_size=512, log_every=50)),
    "toy": (get_preset("paper-toy"), dict(width=256, steps=5000, batch_size=512, log_every=100)),
    "n512": (WorldConfig(n=512, d=128, s=5), dict(width=1024, steps=600, batch_size=512, log_every=10)),
    "easy": (WorldConfig(n=32, d=32, s=2), dict(width=64, steps=2000, batch_size=256, log_every=100)),
}
# variant -> (method, overrides: TrainConfig fields where one has that name, else method parameters)
VARIANTS = {
    "defaults": ("gba", {}),
    "input-scale none": ("gba", {"input_scale": "none"}),
    "zero init": ("gba", {"bias_init": "zero"}),
    "tied": ("gba", {"decoder": "tied"}),
    "tied lr 3e-3": ("gba", {"decoder": "tied", "lr": 3e-3}),
    "lr 3e-3": ("gba", {"lr": 3e-3}),
    "lr 5e-3": ("gba", {"lr": 5e-3}),
    "lr 1e-3": ("gba", {"lr": 1e-3}),
    "constant lr": ("gba", {"lr_schedule": "constant"}),
    "decay from 0": ("gba", {"lr_decay_start": 0.0}),
    "gamma=0.02": ("gba", {"gamma_plus": 0.02, "gamma_minus": 0.02}),
    "gamma=0.01": ("gba", {"gamma_plus": 0.01, "gamma_minus": 0.01}),
    "htf 0.5": ("gba", {"htf": 0.5}),
    "htf 0.3": ("gba", {"htf": 0.3}),
    "pre_bias fixed": ("gba", {"pre_bias": "fixed"}),
    "full lowering": ("gba", {"lowering": "full"}),
    "proportional": ("gba", {"lowering": "proportional"}),
    "proportional gamma=0.3": ("gba", {"lowering": "proportional", "gamma_plus": 0.3, "gamma_minus": 0.3}),
    "gba-paper": ("gba-paper", {}),
    "gba-paper mean-norm": ("gba-paper", {"input_scale": "mean-norm"}),
}


def config_for(world: str, variant: str, seed: int, base: dict | None = None) -> TrainConfig:
    """The variant's config; ``base`` overrides come first (``--set``), the variant's own after them."""
    method, overrides = VARIANTS[variant]
    cfg = TrainConfig(method=method, seed=seed, **WORLDS[world][1])
    for name, value in {**(base or {}), **overrides}.items():
        cfg = cfg.with_param(name, value)
    return cfg


def parse_set(items: list[str]) -> dict:
    """``--set name=value`` pairs; values are read as JSON where they parse ("0.02", "true"), else text."""
    out = {}
    for item in items:
        name, _, text = item.partition("=")
        try:
            out[name] = json.loads(text)
        except json.JSONDecodeError:
            out[name] = text
    return out


def run(world_name: str, variant: str, seed: int, scale: float, base: dict | None = None) -> dict:
    world = World(WORLDS[world_name][0].replace(seed=seed, scale=scale))
    cfg = config_for(world_name, variant, seed, base)
    started = time.perf_counter()
    result = train(cfg, world.stream(cfg.batch_size, seed=seed), world.d, truth=world.V, progress=False)
    ev = evaluate_on_world(result.model, world, n_samples=16384)
    history = result.history
    row = {"world": world_name, "variant": variant, "seed": seed, "scale": scale, "frr": ev["frr"], "mcc": ev["mcc"],
           "l0": ev["l0"], "true_l0": world.expected_l0, "dead_fraction": ev["dead_fraction"],
           "bias_at_bound": float(history["bias_at_bound"].iloc[-1]) if "bias_at_bound" in history else None,
           "samples_to_recovery": samples_to_recovery(history), "adaptation": adaptation_report(history),
           "seconds": time.perf_counter() - started, "train_config": cfg.to_dict()}
    groups = " ".join(f"{g['target']:.3g}:{g['achieved']:.3g}" for g in row["adaptation"] or [])
    print(f"{world_name:5s} {variant:22s} seed {seed} scale {scale:g}: FRR(.9/.99) {ev['frr']['0.9']:.3f}/"
          f"{ev['frr']['0.99']:.3f} MCC {ev['mcc']:.3f} L0 {ev['l0']:.2f}/{world.expected_l0:.2f} dead "
          f"{ev['dead_fraction']:.3f} at bound {row['bias_at_bound']} s2r {row['samples_to_recovery']} "
          f"[{row['seconds']:.0f} s]\n      target:achieved {groups}", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", default="tu", help=f"comma-separated, of {list(WORLDS)}")
    parser.add_argument("--variants", default="defaults", help="comma-separated (see --list)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every sample by this")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an override under every variant (e.g. lowering=full), repeatable")
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (method, overrides) in VARIANTS.items():
            print(f"{name:22s} {method} {overrides}")
        return 0
    worlds, variants = args.worlds.split(","), args.variants.split(",")
    bad = [w for w in worlds if w not in WORLDS] + [v for v in variants if v not in VARIANTS]
    if bad or args.seeds < 1 or not args.scale > 0:
        print(f"error: unknown world/variant {bad}, or --seeds < 1, or --scale <= 0 (see --list)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for world in worlds:
        for variant in variants:
            for seed in range(args.seeds):
                row = run(world, variant, seed, args.scale, parse_set(args.set))
                with RESULTS.open("a") as out:      # one line per finished run: a kill loses only the current run
                    out.write(json.dumps(row, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
