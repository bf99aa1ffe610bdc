"""``polysemy train``: train one SAE on a simulated world and print a recovery report.

    polysemy train --preset theorem-uniform --method gba --steps 5000
    polysemy train --n 128 --d 32 --s 2 --method topk --k 2 --samples 1000000 --json
    polysemy train --preset paper-toy --method gba --htf 0.5 --ltf 0.01 --save runs/gba-toy

World options are those of ``polysemy check``. Method knobs apply only to the methods that have them
(``--k`` to topk/batchtopk, ``--htf`` to gba, ...); any other combination is a one-line error (exit 2).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..errors import ConfigError, require_int_range
from . import diagnostics

DEFAULT_STEPS = 5000

# CLI flag -> (argparse type, method parameter names it sets, help)
def _word_or_number(text: str):
    """A knob that takes a word ("none", "mean-norm") or a positive number."""
    try:
        return float(text)
    except ValueError:
        return text


METHOD_KNOBS: dict[str, tuple[Any, tuple[str, ...], str]] = {
    "k": (int, ("k",), "active latents per sample (topk; the average for batchtopk)"),
    "aux-k": (int, ("aux_k",), "dead latents used by the AuxK loss (topk, batchtopk)"),
    "aux-coef": (float, ("aux_coef",), "AuxK loss weight (topk, batchtopk)"),
    "threshold-beta": (float, ("threshold_beta",), "decay of batchtopk's running inference threshold"),
    "groups": (int, ("groups",), "number of frequency groups K (gba)"),
    "htf": (float, ("htf",), "highest target frequency (gba)"),
    "ltf": (float, ("ltf",), "lowest target frequency (gba)"),
    "target": (float, ("target",), "target frequency (ba, ba-theory)"),
    "gamma": (float, ("gamma_plus", "gamma_minus"), "both bias step sizes (gba, ba)"),
    "gamma-plus": (float, ("gamma_plus",), "bias raise step for nearly dead neurons (gba, ba)"),
    "gamma-minus": (float, ("gamma_minus",), "bias lowering step for over-active neurons (gba, ba)"),
    "eps": (float, ("eps",), "frequency below which a neuron is nearly dead (gba, ba)"),
    "adapt-every": (int, ("adapt_every",), "steps between bias adaptations (gba, ba)"),
    "buffer": (int, ("buffer",), "samples the adaptation statistics cover (gba, ba)"),
    "a0": (float, ("a0",), "initial output scale (gba, ba, ba-theory)"),
    "activation": (str, ("activation",), "jumprelu, relu or smooth-relu (gba, ba)"),
    "smooth-width": (float, ("smooth_width",), "width of the smooth ReLU (gba, ba, ba-theory)"),
    "input-scale": (_word_or_number, ("input_scale",),
                    "none, mean-norm or a number c: train on x / c (gba, ba: default mean-norm; "
                    "gba-paper, ba-theory: default none)"),
    "decoder": (str, ("decoder",), "untied (default for gba, ba) or tied, the paper's (gba-paper)"),
    "bias-init": (str, ("bias_init",), "quantile (default for gba, ba: fire at the target from step 0) or zero"),
    "bias-floor": (float, ("bias_floor",), "lower clamp of the adapted biases, in units of x / c (default -1)"),
    "pre-bias": (str, ("pre_bias",), "train (default) or fixed at the first batch's mean (gba, ba, ba-theory)"),
    "l1": (float, ("l1",), "L1 coefficient (relu-l1)"),
    "l0-coef": (float, ("l0_coef",), "L0 penalty coefficient (jumprelu)"),
    "threshold": (float, ("threshold",), "initial threshold (jumprelu)"),
    "bandwidth": (float, ("bandwidth",), "straight-through kernel width (jumprelu)"),
}


def register(subparsers) -> None:
    from ..simulate.cli_options import add_world_arguments
    from .registry import list_methods

    parser = subparsers.add_parser("train", help="train one SAE on a simulated world and report recovery",
                                   description=__doc__.splitlines()[0])
    add_world_arguments(parser)
    t = parser.add_argument_group("training")
    t.add_argument("--method", default="gba", help=f"one of {', '.join(list_methods())} (default gba)")
    t.add_argument("--width", type=int, default=None, help="latents M (default 2n)")
    t.add_argument("--steps", type=int, default=None, help=f"optimiser steps (default {DEFAULT_STEPS})")
    t.add_argument("--samples", type=int, default=None, help="training samples instead of --steps")
    t.add_argument("--batch-size", type=int, default=512, help="samples per step (default 512)")
    t.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (default: the method's, 1e-2 for gba and ba, else 1e-3)")
    t.add_argument("--lr-schedule", default=None,
                   help="constant or linear-decay (default: the method's, linear-decay for gba and ba)")
    t.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")
    t.add_argument("--data-seed", type=int, default=0, help="seed of the training stream (default 0)")
    t.add_argument("--log-every", type=int, default=100, help="steps between history rows (default 100)")
    t.add_argument("--stop-on-plateau", action="store_true", help="stop once recovery has plateaued")
    t.add_argument("--eval-samples", type=int, default=8192, help="fresh samples for the report (default 8192)")
    k = parser.add_argument_group("method knobs (only those of the chosen method)")
    for flag, (typ, _, help_text) in METHOD_KNOBS.items():
        k.add_argument(f"--{flag}", type=typ, default=None, help=help_text)
    o = parser.add_argument_group("output")
    o.add_argument("--save", metavar="DIR", default=None, help="save a resumable checkpoint to DIR")
    o.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_train)


def method_params_from_args(method: str, args) -> dict[str, Any]:
    """The method parameters given on the command line; a knob the method lacks is a ConfigError."""
    from .registry import get_method

    allowed = set(get_method(method).Params.field_names())
    params: dict[str, Any] = {}
    for flag, (_, names, _) in METHOD_KNOBS.items():
        value = getattr(args, flag.replace("-", "_"), None)
        if value is None:
            continue
        if not set(names) <= allowed:
            users = _methods_with(names)
            raise ConfigError(f"--{flag} does not apply to method {method!r} (it applies to: {', '.join(users)})")
        for name in names:
            params[name] = value
    return params


def _methods_with(names) -> list[str]:
    from .registry import get_method, list_methods

    return [m for m in list_methods() if set(names) <= set(get_method(m).Params.field_names())]


def train_config_from_args(args, n: int):
    from .config import TrainConfig

    if args.steps is not None and args.samples is not None:
        raise ConfigError("give either --steps or --samples, not both")
    require_int_range("batch_size", args.batch_size, 1)
    if args.samples is not None:
        require_int_range("samples", args.samples, 1)
        steps = math.ceil(args.samples / args.batch_size)
    else:
        steps = DEFAULT_STEPS if args.steps is None else args.steps
    require_int_range("steps", steps, 1)
    return TrainConfig(method=args.method, width=args.width if args.width is not None else 2 * n, steps=steps,
                       batch_size=args.batch_size, lr=args.lr, seed=args.seed, log_every=args.log_every,
                       params=method_params_from_args(args.method, args), lr_schedule=args.lr_schedule,
                       stop_on_plateau=args.stop_on_plateau)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_train(args) -> int:
    from ..simulate import World
    from ..simulate.cli_options import world_config_from_args
    from .checkpoint import save_checkpoint
    from .evaluate import evaluate_on_world
    from .registry import get_method
    from .trainer import train

    get_method(args.method)  # unknown method: one line before anything else
    world_cfg = world_config_from_args(args)
    require_int_range("data_seed", args.data_seed, 0)
    require_int_range("eval_samples", args.eval_samples, 1)
    cfg = train_config_from_args(args, world_cfg.n)
    world = World(world_cfg)
    started = time.perf_counter()
    result = train(cfg, world.stream(cfg.batch_size, seed=args.data_seed), world.d, truth=world.V,
                   progress=not args.quiet)
    seconds = time.perf_counter() - started
    metrics = evaluate_on_world(result.model, world, n_samples=args.eval_samples)
    warning = diagnostics.bound_warning(result.history)
    if warning:
        print(warning, file=sys.stderr)
    report = {
        "method": cfg.method, "frr": metrics["frr"], "mcc": metrics["mcc"], "mmcs": metrics["mmcs"],
        "l0": metrics["l0"], "true_l0": float(world.expected_l0), "alive_fraction": metrics["alive_fraction"],
        "dead_fraction": metrics["dead_fraction"], "explained_variance": metrics["explained_variance"],
        "samples": result.samples, "steps": result.steps, "seconds": seconds, "stop_reason": result.stop_reason,
        "metrics": metrics, "train_config": cfg.to_dict(), "world_config": world_cfg.to_dict(),
        "data_seed": args.data_seed, "saved": None,
        "samples_to_recovery": diagnostics.samples_to_recovery(result.history),
        "adaptation": diagnostics.adaptation_report(result.history),
    }
    if args.save:
        path = save_checkpoint(result, args.save)
        write_json_atomic(Path(path) / "evaluation.json", _jsonable(report), indent=2)
        report["saved"] = str(path)
    if args.json:
        print(json.dumps(_jsonable(report), sort_keys=True))
    else:
        print(format_report(report, world_cfg))
    return 0


def format_report(r: dict, world_cfg) -> str:
    frr = r["frr"]
    cfg = r["train_config"]
    lines = [
        f"polysemy train: {r['method']} on a world n={world_cfg.n} d={world_cfg.d} s={world_cfg.s} "
        f"({world_cfg.support} support), width {cfg['width']}",
        f"  trained  {r['steps']} steps x {cfg['batch_size']} = {r['samples']:,} samples in {r['seconds']:.1f} s"
        + (f" (stopped: {r['stop_reason']})" if r["stop_reason"] != "steps" else ""),
        f"  recovery FRR(0.8) {100 * frr['0.8']:.1f}%   FRR(0.9) {100 * frr['0.9']:.1f}%   "
        f"FRR(0.99) {100 * frr['0.99']:.1f}%   MCC {r['mcc']:.3f}   MMCS {r['mmcs']:.3f}",
        f"  sparsity L0 {r['l0']:.2f} (true {r['true_l0']:.2f})   alive {100 * r['alive_fraction']:.1f}%   "
        f"dead {100 * r['dead_fraction']:.1f}%",
        f"  fit      explained variance {r['explained_variance']:.4f}",
    ]
    if r.get("saved"):
        lines.append(f"  saved    {r['saved']}")
    return "\n".join(lines)


