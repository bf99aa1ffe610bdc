"""``polysemy bench`` (against the machine) and ``polysemy peers`` (against the other SAE libraries).

    polysemy bench [--quick] [--json] [--shapes 128x1024,768x4096] [--methods gba,topk] [--out DIR]
                   [--threads N] [--device cuda] [--repeats R] [--stacked-models G] [--no-sparsify]
    polysemy peers [--quick] [--json] [--out DIR] [--budget N] [--worlds uniform,paper-toy]
                   [--systems polysemy-gba,sparsify-topk,...] [--device cuda]

Both print a table (or one JSON object with ``--json``) and save their results (JSON, CSV, and for
``peers`` a figure) under ``--out``. Both run through the experiment runner into a result store under
``--out`` (``peers-store/``, ``bench-store/``: one file per finished system, or per timed shape), so an
interrupted run resumes when the same command is run again; ``bench`` without ``--out`` keeps nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..errors import require
from ..jsonout import emit_json
from ..memory import FLOAT32, require_memory
from ..outputs import check_output_dir
from ..sae import sparse
from .peers import SYSTEM_FAMILIES, PeersConfig, format_table, run_peers, save_outputs, system_families
from .store import check_store_dir
from .throughput import BenchConfig, format_bench, run_bench, save_bench

PEERS_STORE = "peers-store"   # the result store under --out
BENCH_STORE = "bench-store"
RESUME_HINT = "finished units are kept in the store under --out; run the same command again to resume"


def _csv_list(text: str) -> tuple:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _shapes(text: str) -> tuple:
    shapes = []
    for part in _csv_list(text):
        try:
            d, width = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be DxWIDTH pairs like 256x2048, got {part!r}") from None
        if not (1 <= d <= 65536 and 1 <= width <= 1 << 20):
            raise argparse.ArgumentTypeError(f"must be DxWIDTH pairs with D in [1, 65536] and WIDTH in "
                                             f"[1, 1048576], got {part!r}")
        shapes.append((d, width))
    if not shapes:
        raise argparse.ArgumentTypeError("must name at least one DxWIDTH pair")
    return tuple(shapes)


def register(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench", help="training throughput against the encoder-product limit and sparsify",
        description="Samples/s of each method's training step at a few shapes, against the limit set "
                    "by the dense encoder product (2 d M FLOPs per sample, timed in the same run) and, "
                    "when installed, against sparsify's TopK, all alternating; plus the cost of data "
                    "generation relative to the step it feeds.")
    bench.add_argument("--quick", action="store_true",
                       help="short timing trials and two methods (gba, topk); a minute or so")
    bench.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    bench.add_argument("--shapes", type=_shapes, default=None,
                       help="comma-separated DxWIDTH shapes (default 128x1024,256x2048,768x4096)")
    bench.add_argument("--methods", type=_csv_list, default=None,
                       help="comma-separated method names (default: gba and every baseline)")
    bench.add_argument("--batch", type=int, default=None, help="batch size (default 1024)")
    bench.add_argument("--threads", type=int, default=None,
                       help="torch threads for every measurement (default 1, or POLYSEMY_THREADS)")
    bench.add_argument("--out", default=None, help="also write bench.json and bench.csv under DIR")
    bench.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N")
    bench.add_argument("--repeats", type=int, default=None, help="alternating trials per contender (default 5)")
    bench.add_argument("--stacked-models", type=int, default=None,
                       help="also time this many stacked models against one after another (default 0: off)")
    bench.add_argument("--no-sparsify", action="store_true", help="skip sparsify's TopK even if installed")
    bench.add_argument("--decode", choices=["auto", "sparse", "dense"], default=None,
                       help="force the sparse or the dense decode path (default auto: per step, by L0)")
    bench.set_defaults(func=run_bench_command, interrupt_hint=lambda args: RESUME_HINT if args.out else None)

    peers = subparsers.add_parser(
        "peers", help="recovery and speed against SAELens, sparsify and scikit-learn on one stream",
        description="Train polysemy's gba and topk and each installed peer on the same world stream "
                    "with the same sample budget; report FRR(0.9), FRR(0.99), MCC, L0, dead "
                    "fraction, seconds and samples to reach FRR(0.9) >= 0.95.")
    peers.add_argument("--quick", action="store_true", help="a small budget (a few minutes in all)")
    peers.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    peers.add_argument("--out", default=None,
                       help="directory for peers.json, peers.csv and the figure (default runs/peers)")
    peers.add_argument("--budget", type=int, default=None, help="training samples per system")
    peers.add_argument("--worlds", type=_csv_list, default=None, help="subset of: uniform,paper-toy")

    peers.add_argument("--systems", type=_csv_list, default=None,
                       help=f"comma-separated systems (default {','.join(SYSTEM_FAMILIES)}); also "
                            f"{','.join(s for s in system_families() if s not in SYSTEM_FAMILIES)}")
    peers.add_argument("--seed", type=int, default=None, help="initialisation seed (default 0)")
    peers.add_argument("--device", default=None, help="where polysemy and sparsify train: cpu (default), cuda")
    peers.add_argument("--timing-rounds", type=int, default=None,
                       help="train the TopK-type systems given the same k this many times, alternating "
                            "their order, and report the median seconds (1-9, default 1)")
    peers.set_defaults(func=run_peers_command, interrupt_hint=RESUME_HINT)


def _given(args, *names: str) -> dict:
    """The options among ``names`` that the user gave (argparse leaves the others at None)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def run_bench_command(args) -> int:
    store = None
    if args.out:
        check_output_dir("--out", args.out)
        store = check_store_dir("--out", Path(args.out) / BENCH_STORE, "the result store of an earlier bench")
    cfg = BenchConfig.quick() if args.quick else BenchConfig()
    changes = _given(args, "shapes", "methods", "batch", "device", "repeats", "stacked_models")
    if args.no_sparsify:
        changes["sparsify"] = False
    cfg = cfg.replace(**changes) if changes else cfg
    _require_bench_memory(cfg)
    if args.threads is not None:
        require(1 <= args.threads <= 1024, f"--threads must be an integer in [1, 1024], got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.decode:
        sparse.set_decode_mode(args.decode)
    result = run_bench(cfg, progress=not args.json, store=store)
    if args.out:
        paths = save_bench(result, args.out)
        print(f"polysemy bench: wrote {', '.join(paths.values())}", file=sys.stderr)
    if args.json:
        emit_json(args, result, default=str)
    else:
        print(format_bench(result))
    return 0


def _require_bench_memory(cfg) -> None:
    """The largest shape's step (weights, Adam, [batch, width] activations) must fit in memory."""
    d, width = max(cfg.shapes, key=lambda p: p[1] * (p[0] + cfg.batch))
    require_memory({"--shapes (the SAE and its optimizer)": 6.0 * FLOAT32 * width * d,
                    "--batch x --shapes (one training step)": 6.0 * FLOAT32 * cfg.batch * (width + d)})


def run_peers_command(args) -> int:
    changes = _given(args, "budget", "worlds", "systems", "seed", "device", "timing_rounds")
    cfg = PeersConfig.quick(**changes) if args.quick else PeersConfig(**changes)
    out_dir = args.out or ("runs/peers-quick" if args.quick else "runs/peers")
    check_output_dir("--out", out_dir)
    store = check_store_dir("--out", Path(out_dir) / PEERS_STORE, "the result store of an earlier run")
    result = run_peers(cfg, progress=True, store=store)
    paths = save_outputs(result, out_dir)
    print(f"polysemy peers: wrote {', '.join(paths.values())}", file=sys.stderr)
    if args.json:
        emit_json(args, result, default=str)
    else:
        print(format_table(result["rows"]))
        for s in result["skipped"]:
            print(f"skipped {s['system']}: {s['reason']}")
    return 0
