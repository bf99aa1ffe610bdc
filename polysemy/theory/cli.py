"""``polysemy check``: a world's identifiability conditions, predicted band and regime.

    polysemy check --preset paper-toy
    polysemy check --n 1024 --d 32 --s 4 --samples 50000 --json

Prints the conditions H1, H2, H3, V1 (predicted from the config, and measured on ``--samples`` samples
drawn with ``--data-seed``), the resonance band, Theorem 6.1's band, its width requirement and the
regime. ``--json`` prints one JSON object instead (keys: docs/theory.md).
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from ..cli import add_command
from ..errors import require_int_range
from ..io import to_jsonable
from ..jsonout import emit_json
from ..memory import FLOAT64, require_memory
from ..simulate import World
from ..simulate.cli_options import add_world_arguments, world_config_from_args
from . import bands, conditions

DEFAULT_SAMPLES = 20_000
MAX_SAMPLES = 10_000_000


def register(subparsers) -> None:
    parser = add_command(subparsers, "check", "check a world's identifiability conditions and print its "
                         "predicted band", __doc__)
    add_world_arguments(parser)
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                        help=f"samples for the measured conditions (0 = predicted only; default {DEFAULT_SAMPLES})")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the sample stream (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.set_defaults(func=run_check)


def check_world(cfg, samples: int = DEFAULT_SAMPLES, data_seed: int = 0) -> dict[str, Any]:
    """The whole ``check`` result for a ``WorldConfig`` as a JSON-able dict (what ``--json`` prints)."""
    require_int_range("samples", samples, 0, MAX_SAMPLES)
    require_int_range("data_seed", data_seed, 0)
    world = World(cfg)
    batch = None
    if samples > 0:
        generator = torch.Generator().manual_seed(data_seed)
        batch = world.sample_with_truth(samples, generator)
    result = bands.predict(world)
    reports = conditions.check_conditions(world, batch)
    by_name: dict[str, Any] = {}
    for name in conditions.CONDITION_NAMES:
        predicted = next(r for r in reports if r.name == name and r.source == "predicted")
        measured = next((r for r in reports if r.name == name and r.source == "measured"), None)
        main = measured or predicted
        by_name[name] = {"value": main.value, "threshold": main.threshold, "margin": main.margin,
                         "holds": main.holds, "source": main.source,
                         "predicted": predicted.to_dict(),
                         "measured": measured.to_dict() if measured else None}
    result.update({"config": cfg.to_dict(), "config_hash": cfg.config_hash(), "samples": samples,
                   "data_seed": data_seed, "conditions": by_name})
    return to_jsonable(result, strict=True)  # non-finite floats become None: strict JSON


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def format_report(result: dict[str, Any]) -> str:
    """The human-readable report of :func:`check_world`'s result."""
    cfg = result["config"]
    lines = [
        f"World  n={cfg['n']} d={cfg['d']} s={cfg['s']}  support={cfg['support']}  "
        f"dictionary={cfg['dictionary']}  (config {result['config_hash']})",
        f"Regime            {result['regime']} superposition (d={result['d']} "
        f"{'>' if result['regime'] == 'light' else '<='} sqrt(n)={result['sqrt_n']:.4g})",
        f"Frequency         f = {_fmt(result['f'])}  (expected L0 = {_fmt(result['expected_l0'])})",
        f"Co-occurrence     rho2 = {_fmt(result['rho2'])}  (1/sqrt(n) = {_fmt(result['rho2_threshold'])})",
        f"Coherence         mu = {_fmt(result['coherence'])}  ({result['coherence_source']})",
        f"Resonance band    f <= p <= min(sqrt f, f d):  [{_fmt(result['band'][0])}, {_fmt(result['band'][1])}]"
        f"  (f {'inside' if result['f_in_band'] else 'outside'})",
        f"Theorem 6.1 band  1/n <= p <= min(n^-(1+1/s)/2, n^-2(1+eps)^2/s, d^(1-vs)/n):  "
        f"[{_fmt(result['theorem_band'][0])}, {_fmt(result['theorem_band'][1])}]"
        f"{'  (empty)' if result['theorem_band_empty'] else ''}",
        f"Width needed      M >= n p^(-s/(1-eps)^2) at p = f:  "
        f"{_fmt(result['width_requirement']) if result['width_requirement'] is not None else 'overflow'}"
        f"  (log10 = {result['log10_width_requirement']:.3g}; s = {_fmt(result['s'])}, "
        f"eps = {result['constants']['eps']}, varsigma = {result['constants']['varsigma']})",
        f"Classical lines   sqrt(d)/(mu ln d) = {_fmt(result['classical_sparsity_limit'])};  "
        f"Donoho-Tanner l1 limit s <= {_fmt(result['donoho_tanner_sparsity'])}",
        "",
    ]
    measured_title = f"measured ({result['samples']} samples)" if result["samples"] else "measured (no sample)"
    header = f"{'':4} {'predicted':^40} | {measured_title:^40}"
    cols = f"{'':4} " + f"{'value':>10}{'threshold':>11}{'margin':>11}{'holds':>8}" * 1
    lines += ["Conditions", header, cols + " | " + cols[5:]]
    for name, entry in result["conditions"].items():
        row = f"{name:4} "
        for which in ("predicted", "measured"):
            rep = entry[which]
            if rep is None:
                cell = f"{'-':>10}{'-':>11}{'-':>11}{'-':>8}"
            else:
                cell = (f"{_fmt(rep['value']):>10}{_fmt(rep['threshold']):>11}{_fmt(rep['margin']):>11}"
                        f"{_fmt(rep['holds']):>8}")
            row += cell + (" | " if which == "predicted" else "")
        lines.append(row)
    lines.append("")
    for name, entry in result["conditions"].items():
        rep = entry["measured"] or entry["predicted"]
        lines.append(f"  {name}: {rep['note']}")
    return "\n".join(lines)


def run_check(args) -> int:
    cfg = world_config_from_args(args)
    samples = args.samples or 0
    require_memory({"--n x --d (the true dictionary)": 3.0 * FLOAT64 * cfg.n * cfg.d,
                    "--samples x --n (the measured conditions)": 4.0 * FLOAT64 * samples * (cfg.n + cfg.d)})
    result = check_world(cfg, samples=args.samples, data_seed=args.data_seed)
    if args.json:
        emit_json(args, result, allow_nan=False, sort_keys=True)
    else:
        print(format_report(result))
    sys.stdout.flush()
    return 0
