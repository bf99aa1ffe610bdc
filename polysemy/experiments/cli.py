"""``polysemy sweep`` and ``polysemy figures``: run a named sweep; draw the paper's figures.

- ``polysemy sweep NAME [--quick] [--out DIR] [--jobs N] [--dask ADDRESS] [--json]``
  runs (or resumes) the named sweep into ``DIR`` (default ``runs/sweeps/NAME[-quick]``).
- ``polysemy figures [NAME ...] [--quick] [--out DIR] [--store DIR] [--jobs N] [--dask ADDRESS]``
  runs or reuses the sweeps behind each figure (stores under ``--store``, default ``runs/sweeps``) and
  writes ``NAME.png``, ``NAME.pdf`` and ``NAME.csv`` into ``--out`` (default ``runs/figures[-quick]``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import ConfigError, require_int_range
from ..jsonout import emit_json
from ..outputs import check_output_dir
from ..sae.trainer import check_device
from . import figures, sweeps  # registries: read FIGURES / SWEEPS when used
from .dask_address import check_dask_address
from .runner import run_sweep
from .store import check_store_dir
from .sweeps import DEFAULT_SWEEP_ROOT, get_sweep, method_variants, store_dir_for

RESUME_HINT = "finished cells are kept; run the same command again to resume"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="run (or resume) a named sweep into a result store",
        description="Run a named sweep. Finished cells are kept; rerun the same command to resume. "
                    f"Sweeps: {', '.join(sweeps.SWEEPS)}. The sweep 'methods' runs every registered method: "
                    f"{', '.join(v['train.method'] for v in method_variants())}.")
    p.add_argument("name", metavar="NAME", help=f"one of: {', '.join(sweeps.SWEEPS)}")
    _add_common(p)
    p.add_argument("--out", default=None, help="result store directory (default runs/sweeps/NAME[-quick])")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.add_argument("--device", default="cpu", help="where cells train: cpu (default), cuda, cuda:N")
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"],
                   help="fp32 (default), tf32 (CUDA matmuls) or bf16 (autocast of the step)")
    p.set_defaults(func=_cmd_sweep, interrupt_hint=RESUME_HINT)

    f = subparsers.add_parser(
        "figures", help="draw the paper's figures (PNG, PDF and the CSV behind each)",
        description=f"Draw figures (default: all). Figures: {', '.join(figures.FIGURES)}.")
    f.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(figures.FIGURES)}")
    _add_common(f)
    f.add_argument("--out", default=None, help="figure directory (default runs/figures[-quick])")
    f.add_argument("--store", default=str(DEFAULT_SWEEP_ROOT),
                   help="where the sweeps behind the figures keep their results (default runs/sweeps)")
    f.set_defaults(func=_cmd_figures, interrupt_hint=RESUME_HINT)


def _add_common(p) -> None:
    p.add_argument("--quick", action="store_true", help="small grids (minutes on 2 cores)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (joblib), default 1")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://host:8786)")


def _check_dask(args) -> None:
    if args.dask is not None:
        check_dask_address(args.dask)


def _cmd_sweep(args) -> int:
    require_int_range("--jobs", args.jobs, 1, 256)
    spec = get_sweep(args.name, quick=args.quick)
    out = Path(args.out) if args.out else store_dir_for(args.name, args.quick)
    check_store_dir("--out", out)
    _check_dask(args)
    if not args.json:
        print(f"sweep {spec.name}: {spec.size()} cells -> {out}", file=sys.stderr)
    check_device(args.device)
    summary = run_sweep(spec, out, jobs=args.jobs, dask_address=args.dask, device=args.device,
                        precision=args.precision)
    if args.json:
        emit_json(args, summary.to_dict(), sort_keys=True)
    else:
        print(f"sweep {summary.name}: {summary.cells_done}/{summary.cells_total} cells done "
              f"({summary.cells_computed} computed now) in {summary.seconds:.1f} s; results in {summary.store}")
        print(f"  read them with: python -c \"from polysemy.experiments import load_results; "
              f"print(load_results('{summary.store}'))\"")
    return 0


def _cmd_figures(args) -> int:
    require_int_range("--jobs", args.jobs, 1, 256)
    names = args.names or list(figures.FIGURES)
    unknown = [n for n in names if n not in figures.FIGURES]
    if unknown:
        raise ConfigError(f"figure name must be one of {', '.join(figures.FIGURES)}; got {', '.join(unknown)}")
    out = Path(args.out) if args.out else Path("runs") / ("figures-quick" if args.quick else "figures")
    check_output_dir("--out", out)
    check_output_dir("--store", args.store)
    _check_dask(args)
    start = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        paths = figures.make_figure(name, out=out, quick=args.quick, store_root=args.store, jobs=args.jobs,
                                    dask_address=args.dask)
        print(f"figure {name}: {', '.join(str(p) for p in paths)} ({time.perf_counter() - t0:.1f} s)")
    print(f"{len(names)} figure(s) in {time.perf_counter() - start:.1f} s -> {out}")
    return 0
