"""``polysemy demo``: the main job of ``make demo`` (about two minutes on 2 cores).

1. Sample a named world (default ``theorem-uniform``; ``--preset`` to change) and print its
   identifiability conditions, the predicted resonance band and the regime (``polysemy check``'s report).
2. Train GBA (default settings: it is told nothing about s or f) and a TopK baseline given the world's
   true L0 as k (the baseline's best case), on the same data stream.
3. Print a recovery table: the oracle (the true dictionary, with the true codes as activations), a
   random initialisation (the untrained SAE), TopK and GBA, each with FRR at tau = 0.8 / 0.9 / 0.99,
   MCC, L0, dead fraction and training seconds (metrics: ``polysemy.theory.metrics``).
4. Write one figure (``--out``, default ``runs/demo/demo.png``): each true feature's best cosine for GBA
   and TopK (sorted), and FRR(0.9) over training for both.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

DEFAULT_PRESET = "theorem-uniform"
DEFAULT_STEPS = 5000
EVAL_SAMPLES = 8192
EVAL_SEED = 12345


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="train GBA and a TopK baseline on a named world; print a recovery table and a figure",
        description=__doc__.splitlines()[0])
    p.add_argument("--preset", default=DEFAULT_PRESET, help=f"named world (default {DEFAULT_PRESET})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"training steps (default {DEFAULT_STEPS})")
    p.add_argument("--batch-size", type=int, default=512, help="samples per step (default 512)")
    p.add_argument("--width", type=int, default=None, help="SAE width (default 2 n)")
    p.add_argument("--seed", type=int, default=0, help="initialisation and data seed (default 0)")
    p.add_argument("--out", default=str(Path("runs") / "demo"), help="figure directory (default runs/demo)")
    p.add_argument("--no-progress", action="store_true", help="hide the training progress bars")
    p.set_defaults(func=run_demo)


def _row(name: str, m: dict, seconds: float | None) -> str:
    frr = m["frr"]

    def num(key, fmt):
        v = m.get(key)
        return format(v, fmt) if v is not None else "-"

    secs = f"{seconds:.1f}" if seconds is not None else "-"
    return (f"{name:22s} {100 * frr['0.8']:7.1f}% {100 * frr['0.9']:7.1f}% {100 * frr['0.99']:7.1f}% "
            f"{m['mcc']:7.3f} {num('l0', '7.2f'):>7s} {num('dead_fraction', '6.3f'):>6s} {secs:>8s}")


def run_demo(args) -> int:
    import torch

    from .errors import require_int_range
    from .simulate import World, get_preset
    from .theory.cli import check_world, format_report

    require_int_range("--steps", args.steps, 0, 10_000_000)
    require_int_range("--batch-size", args.batch_size, 1, 1_000_000)
    require_int_range("--seed", args.seed, 0)
    cfg = get_preset(args.preset)
    if args.width is not None:
        require_int_range("--width", args.width, 1, 1_000_000)
    width = args.width or 2 * int(cfg.n)
    started = time.perf_counter()

    print(f"== World: preset {args.preset!r} ==")
    print(format_report(check_world(cfg, samples=20_000, data_seed=args.seed)))
    world = World(cfg)

    from .theory.metrics import recovery_metrics

    batch = world.sample_with_truth(EVAL_SAMPLES, torch.Generator().manual_seed(EVAL_SEED))
    codes = batch.dense_codes(world.n)
    oracle = recovery_metrics(world.V, world.V, acts=codes, x=batch.x, x_hat=codes @ world.V, truth_codes=codes)
    results = _train_and_score(cfg, world, width, args)
    header = (f"{'model':22s} {'FRR.8':>8s} {'FRR.9':>8s} {'FRR.99':>8s} {'MCC':>7s} {'L0':>7s} "
              f"{'dead':>6s} {'seconds':>8s}")
    print(f"\n== Recovery on {EVAL_SAMPLES} fresh samples (true L0 = {world.expected_l0:.3g}, width {width}, "
          f"{args.steps} steps) ==")
    print(header)
    print("-" * len(header))
    print(_row("oracle (true V)", oracle, None))
    for name, r in results.items():
        print(_row(name, r["metrics"], r["seconds"]))
    if results:
        path = _figure(results, Path(args.out), args.preset)
        print(f"\nFigure: {path}")
    print(f"Done in {time.perf_counter() - started:.1f} s. Next: `polysemy figures --quick` draws the paper's "
          "figures; `polysemy sweep NAME` runs one sweep.")
    return 0


def _train_and_score(cfg, world, width: int, args) -> dict:
    """Random init, TopK (k = true L0) and GBA: trained on the same stream, scored on fresh samples."""
    try:
        from .sae import TrainConfig, train
        from .sae.evaluate import evaluate_on_world
    except ImportError:  # the trainer is not installed: score a random dictionary instead
        import numpy as np

        from .theory.metrics import recovery_metrics

        rows = np.random.default_rng(args.seed).standard_normal((width, world.d))
        return {"random dictionary": {"metrics": recovery_metrics(rows, world.V), "seconds": None,
                                      "history": None, "best_cos": None}}
    from .theory.metrics import cosine_matrix

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


def _figure(results: dict, out: Path, preset: str) -> Path:
    import os

    import matplotlib

    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    # One colour per model, the same in both panels.
    colours = dict(zip(results, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for name, r in results.items():
        if r.get("best_cos") is not None:
            a.plot(np.sort(r["best_cos"])[::-1], label=name, color=colours[name])
        h = r.get("history")
        if h is not None and len(h) and "frr_0.9" in h:
            b.plot(h["step"], h["frr_0.9"], marker=".", label=name, color=colours[name])
    for tau in (0.9, 0.99):
        a.axhline(tau, color="grey", ls=":", lw=1)
    a.set_xlabel("true features, sorted")
    a.set_ylabel("best |cos| with any learned neuron")
    a.set_title("each true feature's best cosine")
    a.legend(fontsize=8)
    b.set_xlabel("training step")
    b.set_ylabel("FRR(0.9)")
    b.set_ylim(-0.02, 1.02)
    b.set_title("recovery over training")
    b.legend(fontsize=8)
    fig.suptitle(f"polysemy demo on {preset}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "demo.png"
    tmp = out / f".demo.png.tmp-{os.getpid()}"
    fig.savefig(tmp, format="png", dpi=130)
    plt.close(fig)
    os.replace(tmp, path)
    return path
