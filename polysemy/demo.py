"""``polysemy demo``: the main job of ``make demo`` (under a minute on one quiet core; see the README).

1. Sample a named world (default ``theorem-uniform``; ``--preset`` to change) and print its
   identifiability conditions, the predicted resonance band and the regime (``polysemy check``'s report).
2. Train GBA (default settings: it is told nothing about s or f) and a TopK baseline given the world's
   true L0 as k (the baseline's best case), on the same data stream.
3. Print a recovery table: the oracle (the true dictionary, with the true codes as activations), a
   random initialisation (the untrained SAE), TopK and GBA, each with FRR at tau = 0.8 / 0.9 / 0.99,
   MCC, L0, dead fraction and training seconds (metrics: ``polysemy.theory.metrics``).
4. Write one figure (``--out``, default ``runs/demo/demo.png``): each true feature's best cosine for GBA
   and TopK (sorted, on an axis from 0.5 to 1 with the 0.9 and 0.99 thresholds labelled), and FRR(0.9)
   over training for both; the title gives n, d, s, the width and says that TopK was given the true k.

``--json`` prints one JSON object instead of the tables (``benchmarks/readme_numbers.py`` reads it to
check the README's demo table). Every input and the output folder are checked before any work.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .cli import add_command
from .errors import require_int_range
from .io import save_figure_atomic
from .jsonout import emit_json
from .memory import require_memory, training_terms
from .outputs import check_output_dir
from .sae import TrainConfig, train
from .sae.evaluate import evaluate_on_world
from .simulate import World, get_preset
from .theory.cli import check_world, format_report
from .theory.metrics import cosine_matrix, recovery_metrics

DEFAULT_PRESET = "theorem-uniform"
DEFAULT_STEPS = 5000
EVAL_SAMPLES = 8192
EVAL_SEED = 12345


def register(subparsers) -> None:
    p = add_command(subparsers, "demo", "train GBA and a TopK baseline on a named world; print a recovery table "
                    "and a figure", __doc__)
    p.add_argument("--preset", default=DEFAULT_PRESET, help=f"named world (default {DEFAULT_PRESET})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"training steps (default {DEFAULT_STEPS})")
    p.add_argument("--batch-size", type=int, default=512, help="samples per step (default 512)")
    p.add_argument("--width", type=int, default=None, help="SAE width (default 2 n)")
    p.add_argument("--seed", type=int, default=0, help="initialisation and data seed (default 0)")
    p.add_argument("--out", default=str(Path("runs") / "demo"), help="figure directory (default runs/demo)")
    p.add_argument("--no-progress", action="store_true", help="hide the training progress bars")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (world checks and each model's metrics) instead of the tables")
    p.set_defaults(func=run_demo)


def _row(name: str, m: dict, seconds: float | None) -> str:
    frr = m["frr"]

    def num(key, fmt):
        v = m.get(key)
        return format(v, fmt) if v is not None else "-"

    secs = f"{seconds:.1f}" if seconds is not None else "-"
    return (f"{name:22s} {100 * frr['0.8']:7.1f}% {100 * frr['0.9']:7.1f}% {100 * frr['0.99']:7.1f}% "
            f"{m['mcc']:7.3f} {num('l0', '7.2f'):>7s} {num('dead_fraction', '6.3f'):>6s} {secs:>8s}")


def format_table(report: dict) -> str:
    """The recovery table of a ``demo --json`` report, exactly as ``polysemy demo`` prints it (the README
    quotes it, and ``benchmarks/readme_numbers.py`` rewrites it from a fresh report)."""
    header = (f"{'model':22s} {'FRR.8':>8s} {'FRR.9':>8s} {'FRR.99':>8s} {'MCC':>7s} {'L0':>7s} "
              f"{'dead':>6s} {'seconds':>8s}")
    lines = [f"== Recovery on {report['eval_samples']} fresh samples (true L0 = {report['true_l0']:.3g}, "
             f"width {report['width']}, {report['steps']} steps) ==", header, "-" * len(header)]
    lines += [_row(name, m, m.get("seconds")) for name, m in report["models"].items()]
    return "\n".join(lines)


def run_demo(args) -> int:
    require_int_range("--steps", args.steps, 1, 10_000_000)
    require_int_range("--batch-size", args.batch_size, 1, 1_000_000)
    require_int_range("--seed", args.seed, 0)
    cfg = get_preset(args.preset)
    if args.width is not None:
        require_int_range("--width", args.width, 1, 1_000_000)
    width = args.width or 2 * int(cfg.n)
    check_output_dir("--out", args.out)
    require_memory(training_terms(cfg.n, cfg.d, width, args.batch_size, EVAL_SAMPLES))
    started = time.perf_counter()

    check = check_world(cfg, samples=20_000, data_seed=args.seed)
    if not args.json:
        print(f"== World: preset {args.preset!r} ==")
        print(format_report(check))
    world = World(cfg)

    batch = world.sample_with_truth(EVAL_SAMPLES, torch.Generator().manual_seed(EVAL_SEED))
    codes = batch.dense_codes(world.n)
    oracle = recovery_metrics(world.V, world.V, acts=codes, x=batch.x, x_hat=codes @ world.V, truth_codes=codes)
    results = _train_and_score(cfg, world, width, args)
    path = _figure(results, Path(args.out), args.preset, cfg, width, args.steps) if results else None
    report = _json_report(args, cfg, width, float(world.expected_l0), check, oracle, results, path,
                          time.perf_counter() - started)
    if args.json:
        emit_json(args, report, sort_keys=False, default=_plain)
        return 0
    print()
    print(format_table(report))
    if path is not None:
        print(f"\nFigure: {path}")
    print(f"Done in {time.perf_counter() - started:.1f} s. Next: `polysemy figures --quick` draws the paper's "
          "figures; `polysemy sweep NAME` runs one sweep.")
    return 0


TABLE_KEYS = ("frr", "mcc", "l0", "dead_fraction")


def _plain(value):
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _json_report(args, cfg, width, true_l0, check, oracle, results, path, seconds) -> dict:
    """What ``demo --json`` prints: the settings, the world check, and each row of the recovery table."""
    def row(m: dict, secs) -> dict:
        out = {k: m.get(k) for k in TABLE_KEYS}
        out = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
        out["seconds"] = secs
        return out

    models = {"oracle (true V)": row(oracle, None)}
    models.update({name: row(r["metrics"], r["seconds"]) for name, r in results.items()})
    return {"preset": args.preset, "n": cfg.n, "d": cfg.d, "s": cfg.s, "true_l0": true_l0, "width": width,
            "steps": args.steps,
            "batch_size": args.batch_size, "seed": args.seed, "eval_samples": EVAL_SAMPLES,
            "check": check, "models": models, "figure": str(path) if path else None, "seconds": seconds}


def _train_and_score(cfg, world, width: int, args) -> dict:
    """Random init, TopK (k = true L0) and GBA: trained on the same stream, scored on fresh samples."""
    k = max(1, int(round(world.expected_l0)))
    configs = {
        "random init (GBA)": TrainConfig(method="gba", width=width, steps=0, batch_size=args.batch_size,
                                         seed=args.seed),
        f"TopK (k = {k})": TrainConfig(method="topk", width=width, steps=args.steps, batch_size=args.batch_size,
                                       seed=args.seed, params={"k": k}, log_every=max(1, args.steps // 25)),
        "GBA (defaults)": TrainConfig(method="gba", width=width, steps=args.steps, batch_size=args.batch_size,
                                      seed=args.seed, log_every=max(1, args.steps // 25)),
    }
    out = {}
    for name, tcfg in configs.items():
        if tcfg.steps > 0:
            print(f"training {name} ...", file=sys.stderr)
        t0 = time.perf_counter()
        result = train(tcfg, world.stream(args.batch_size, seed=args.seed), world.d, truth=world.V,
                       progress=not args.no_progress and tcfg.steps > 0)
        seconds = time.perf_counter() - t0
        metrics = evaluate_on_world(result.model, world, n_samples=EVAL_SAMPLES, seed=EVAL_SEED)
        best = abs(cosine_matrix(result.model.W_dec.detach().cpu().numpy(), world.V.cpu().numpy())).max(axis=1)
        out[name] = {"metrics": metrics, "seconds": seconds if tcfg.steps else None,
                     "history": result.history, "best_cos": best}
    return out


def _figure(results: dict, out: Path, preset: str, cfg=None, width: int | None = None,
            steps: int | None = None) -> Path:
    """The demo figure. Left: each true feature's best cosine (sorted), y from 0.5 to 1 so the 0.9-1.0
    band where methods differ is readable (values below 0.5 are drawn at the floor and counted in the
    legend), with the 0.9 and 0.99 thresholds labelled. Right: FRR(0.9) over training."""
    import matplotlib  # lazy: CLI start-up (pyplot costs ~0.5 s)

    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: CLI start-up

    floor = 0.5
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    # One colour per model, the same in both panels.
    colours = dict(zip(results, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for name, r in results.items():
        if r.get("best_cos") is not None:
            best = np.sort(r["best_cos"])[::-1]
            below = int((best < floor).sum())
            label = name + (f" ({below} below {floor})" if below else "")
            a.plot(np.maximum(best, floor), label=label, color=colours[name])
        h = r.get("history")
        if h is not None and len(h) and "frr_0.9" in h:
            b.plot(h["step"], h["frr_0.9"], marker=".", label=name, color=colours[name])
    for tau, above in ((0.9, True), (0.99, False)):
        a.axhline(tau, color="grey", ls=":", lw=1)
        # at the left, where every trained curve is near 1, so the labels stay clear of the curves
        a.annotate(f"cos = {tau}", xy=(0.0, tau), xycoords=("axes fraction", "data"),
                   xytext=(4, 2 if above else -2), textcoords="offset points", ha="left",
                   va="bottom" if above else "top", fontsize=8, color="dimgrey")
    a.set_ylim(floor, 1.01)
    a.set_xlabel("true features, sorted")
    a.set_ylabel("best cosine with any learned neuron")
    a.set_title("each true feature's best cosine")
    a.legend(fontsize=8, loc="lower left")
    b.set_xlabel("training step")
    b.set_ylabel("FRR(0.9)")
    b.set_ylim(-0.02, 1.02)
    b.set_title("recovery over training")
    b.legend(fontsize=8)
    title = f"polysemy demo on {preset}"
    if cfg is not None:
        title += f": n = {cfg.n}, d = {cfg.d}, s = {cfg.s}, width {width}, {steps} steps"
    fig.suptitle(title + "\nGBA is told nothing about s; TopK is given the true k")
    return save_figure_atomic(fig, out / "demo.png", format="png", dpi=130)
