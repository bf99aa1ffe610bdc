"""``polysemy train``: train one SAE on a simulated world and print a recovery report.

    polysemy train --preset theorem-uniform --method gba --steps 5000
    polysemy train --n 128 --d 32 --s 2 --method topk --k 2 --samples 1000000 --json
    polysemy train --preset paper-toy --method gba --htf 0.5 --ltf 0.01 --save runs/gba-toy
    polysemy train --preset theorem-uniform --checkpoint-every 1000 --save runs/gba   # resumable
    polysemy train --resume runs/gba                                                  # after a kill

World options are those of ``polysemy check``. The method knobs are generated from the method registry
(each method's Params, ``polysemy.sae.registry.param``) and apply only to the methods that have them
(``--k`` to topk/batchtopk, ``--htf`` to gba, ...); any other combination is a one-line error (exit 2).

Resuming: with ``--checkpoint-every N --save DIR`` the run is saved atomically to DIR every N steps
(a multiple of ``--log-every``, so the history carries no half interval), together with ``run.json``
(the world, the data seed, the evaluation size). ``--resume DIR`` loads the last checkpoint, skips the N
batches already used from the same data stream and continues: the result equals an uninterrupted run
bit for bit (``tests/sae/test_train_resume.py``). ``--save`` never destroys anything it did not write:
an existing file or a folder holding other files is refused, and an old checkpoint is replaced only
with ``--overwrite`` (or when it is the one being resumed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import torch

from ..cli import add_command
from ..errors import ConfigError, require, require_int_range
from ..io import to_jsonable
from ..jsonout import emit_json
from ..memory import require_memory, training_terms
from ..outputs import check_output_dir
from ..simulate import World, WorldConfig
from ..simulate.cli_options import add_world_arguments, world_config_from_args, world_option_dests
from . import diagnostics, trainer
from .callbacks import TensorBoardLogger
from .checkpoint import (check_save_target, is_checkpoint, load_checkpoint, recover_interrupted_save,
                         save_checkpoint)
from .config import TrainConfig
from .evaluate import evaluate_on_world
from .registry import get_method, list_methods, method_knobs
from .trainer import check_device, to_cpu

RUN_FILE = "run.json"       # beside the checkpoint: what --resume needs besides the TrainConfig
# Options --resume takes from the checkpoint (giving another value is an error, not silently ignored):
# every world option (simulate.cli_options.world_option_dests()) and these.
RESUME_FIXED = ("method", "width", "steps", "samples", "batch_size", "lr", "lr_schedule", "seed",
                "data_seed", "log_every", "stop_on_plateau", "eval_samples")
# Median sample norm above which a tied SAE without input scaling trains to chance (measured: norm ~170
# gives FRR 0 at n=64, d=32; the bias floor of -1 and a0 = 0.01 are made for inputs of norm O(1)).
TIED_NORM_LIMIT = 100.0

DEFAULT_STEPS = 5000
_METAVARS = {int: "N", float: "X", str: "WORD"}

class _HelpFormatter(argparse.HelpFormatter):
    """Wraps help lines between words only (method names such as ba-theory stay whole)."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def register(subparsers) -> None:
    parser = add_command(subparsers, "train", "train one SAE on a simulated world and report recovery", __doc__)
    parser.formatter_class = _HelpFormatter
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
    t.add_argument("--device", default="cpu",
                   help="where to train: cpu (default), cuda, cuda:1, ...; batches are composed there")
    t.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"],
                   help="fp32 (default), tf32 (CUDA matmuls) or bf16 (autocast of the step)")
    k = parser.add_argument_group("method knobs (generated from the method registry; each applies only to "
                                  "the methods in its brackets)")
    for flag, knob in method_knobs().items():
        k.add_argument(f"--{flag}", type=knob.parse, default=None, help=knob.help.replace("%", "%%"),
                       metavar=_METAVARS.get(knob.parse, "A,B,.." if "list" in knob.parse.__name__ else "WORD|X"))
    o = parser.add_argument_group("output and resuming")
    o.add_argument("--save", metavar="DIR", default=None,
                   help="save the trained model (and its optimizer state) to DIR at the end; a new or empty "
                        "folder, or an old checkpoint with --overwrite")
    o.add_argument("--overwrite", action="store_true", help="allow --save to replace an existing checkpoint")
    o.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="also save to DIR every N steps (a multiple of --log-every), so that a killed run "
                        "can continue with --resume DIR")
    o.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run checkpointed in DIR (world and training settings come from DIR)")
    o.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    o.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="also log the history to TensorBoard event files in DIR (needs polysemy[tensorboard])")
    parser.set_defaults(func=run_train, interrupt_hint=_interrupt_hint, train_parser=parser)


def _interrupt_hint(args) -> str:
    """What Ctrl-C leaves behind: the last periodic checkpoint, or nothing."""
    target = args.save or args.resume
    if args.checkpoint_every and target:
        return f"the last checkpoint in {target} is kept; continue with: polysemy train --resume {target}"
    if args.resume:
        return f"the checkpoint in {args.resume} is as it was; continue with: polysemy train --resume {args.resume}"
    return "nothing was saved (use --checkpoint-every N --save DIR to make a run resumable)"


def method_params_from_args(method: str, args) -> dict[str, Any]:
    """The method parameters given on the command line (the registry's knobs); a knob the method
    lacks is a ConfigError naming the methods it applies to."""
    params: dict[str, Any] = {}
    for flag, knob in method_knobs().items():
        value = getattr(args, flag.replace("-", "_"), None)
        if value is None:
            continue
        if method not in knob.methods:
            raise ConfigError(f"--{flag} does not apply to method {method!r} (it applies to: "
                              f"{', '.join(knob.methods)})")
        for name in knob.names:
            params[name] = value
    return params


def train_config_from_args(args, n: int):
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


def _check_outputs(args) -> Path | None:
    """--save / --resume / --checkpoint-every, checked before any work; returns the folder to save to."""
    target = args.save or args.resume
    if args.checkpoint_every is not None:
        require(target is not None, "--checkpoint-every needs --save DIR (where the checkpoints go)")
    if args.overwrite:
        require(args.save is not None, "--overwrite applies only with --save DIR")
    if target is None:
        return None
    if args.save is not None:
        check_output_dir("--save", args.save)
        same = args.resume is not None and Path(args.save).resolve() == Path(args.resume).resolve()
        check_save_target(args.save, overwrite=args.overwrite or same, param="--save")
    else:
        check_output_dir("--resume", args.resume)
    return Path(target)


def _tensorboard_callbacks(args) -> list:
    """--tensorboard DIR: the history as TensorBoard scalars; checked before any work (the package too)."""
    if args.tensorboard is None:
        return []

    return [TensorBoardLogger(check_output_dir("--tensorboard", args.tensorboard))]


def _resume_settings(args):
    """(world config, TrainConfig, TrainResult, run.json) of the run checkpointed in ``args.resume``."""
    path = Path(args.resume)
    recover_interrupted_save(path)
    require(path.is_dir() and is_checkpoint(path),
            f"--resume must be a checkpoint folder written by polysemy train, got {args.resume!r}")
    parser = args.train_parser
    fixed = world_option_dests() + RESUME_FIXED
    given = [name for name in fixed if getattr(args, name, None) != parser.get_default(name)]
    given += [f for f in method_knobs() if getattr(args, f.replace("-", "_"), None) is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"{flag} cannot be given with --resume: the world and training settings come from "
                          f"{args.resume}/{RUN_FILE}")
    try:
        run = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
        world_cfg = WorldConfig.from_dict(run["world_config"])
        data_seed, eval_samples = int(run["data_seed"]), int(run["eval_samples"])
    except FileNotFoundError:
        raise ConfigError(f"--resume {args.resume!r} lacks {RUN_FILE}: it was not saved by polysemy train "
                          "--checkpoint-every") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--resume: {path / RUN_FILE} is unreadable ({exc})") from None
    resumed = load_checkpoint(path)
    require(resumed.config is not None and resumed.optimizer_state is not None,
            f"--resume {args.resume!r} holds a model without its training state")
    return world_cfg, resumed.config, resumed, {"data_seed": data_seed, "eval_samples": eval_samples,
                                                  "checkpoint_every": run.get("checkpoint_every")}


def _check_input_scale(world, cfg, args) -> None:
    """A tied SAE with input_scale 'none' on inputs of norm >> 1 trains to chance: say so (exit 2)."""
    params = cfg.params
    if "input_scale" not in params or params["input_scale"] != "none" or args.input_scale is not None:
        return  # untied method, or the user chose the input scale explicitly
    x = world.sample(256, torch.Generator().manual_seed(0))
    norm = float(x.norm(dim=1).median())
    require(norm <= TIED_NORM_LIMIT,
            f"the world's inputs have median norm {norm:.3g} (> {TIED_NORM_LIMIT:g}; set by --spread or --matrix), "
            f"on which {cfg.method}'s tied SAE trains to chance: add --input-scale mean-norm (or --input-scale "
            "none to train anyway)")


def run_train(args) -> int:
    target = _check_outputs(args)
    callbacks = _tensorboard_callbacks(args)
    resumed = None
    if args.resume is not None:
        world_cfg, cfg, resumed, run = _resume_settings(args)
        data_seed, eval_samples = run["data_seed"], run["eval_samples"]
        every = args.checkpoint_every if args.checkpoint_every is not None else run["checkpoint_every"]
    else:
        get_method(args.method)  # unknown method: one line before anything else
        world_cfg = world_config_from_args(args)
        data_seed, eval_samples, every = args.data_seed, args.eval_samples, args.checkpoint_every
        require_int_range("data_seed", data_seed, 0)
        require_int_range("eval_samples", eval_samples, 1)
        cfg = train_config_from_args(args, world_cfg.n)
    if every is not None:
        require_int_range("--checkpoint-every", every, 1)
        require(every % cfg.log_every == 0,
                f"--checkpoint-every must be a multiple of --log-every={cfg.log_every}, got {every}")
    require_memory(training_terms(world_cfg.n, world_cfg.d, cfg.width, cfg.batch_size, eval_samples))
    world = World(world_cfg)
    if resumed is None:
        _check_input_scale(world, cfg, args)
    run_info = {"world_config": world_cfg.to_dict(), "data_seed": data_seed, "eval_samples": eval_samples,
                "checkpoint_every": every}
    on_log = None
    if every is not None:
        def on_log(step: int, results) -> None:
            if step % every == 0 and step < cfg.steps:
                save_checkpoint(results()[0], target, extra_json={RUN_FILE: run_info})

    device = check_device(args.device)
    data = world.stream(cfg.batch_size, seed=data_seed, device=device)
    if resumed is not None:
        data = itertools.islice(data, resumed.steps, None)   # the batches the killed run had not used
    started = time.perf_counter()
    # trainer.train, looked up when called (tests wrap it)
    result = trainer.train(cfg, data, world.d, truth=world.V, progress=not args.quiet, resume=resumed,
                           on_log=on_log, device=device, precision=args.precision, callbacks=callbacks)
    if device.type != "cpu":   # evaluation and checkpoints are on the CPU
        result = to_cpu(result)
    seconds = time.perf_counter() - started + (resumed.seconds if resumed is not None else 0.0)
    metrics = evaluate_on_world(result.model, world, n_samples=eval_samples)
    warning = diagnostics.bound_warning(result.history)
    if warning:
        print(warning, file=sys.stderr)
    report = {
        "method": cfg.method, "frr": metrics["frr"], "mcc": metrics["mcc"], "mmcs": metrics["mmcs"],
        "l0": metrics["l0"], "true_l0": float(world.expected_l0), "alive_fraction": metrics["alive_fraction"],
        "dead_fraction": metrics["dead_fraction"], "explained_variance": metrics["explained_variance"],
        "samples": result.samples, "steps": result.steps, "seconds": seconds, "stop_reason": result.stop_reason,
        "metrics": metrics, "train_config": cfg.to_dict(), "world_config": world_cfg.to_dict(),
        "data_seed": data_seed, "saved": None, "resumed_from_step": resumed.steps if resumed is not None else None,
        "samples_to_recovery": diagnostics.samples_to_recovery(result.history),
        "adaptation": diagnostics.adaptation_report(result.history),
    }
    if target is not None:
        path = save_checkpoint(result, target, extra_json={RUN_FILE: run_info,
                                                           "evaluation.json": to_jsonable(report, strict=True)})
        report["saved"] = str(path)
    if args.json:
        emit_json(args, to_jsonable(report, strict=True), sort_keys=True)
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


