"""Callbacks of the training loop: everything that runs beside the optimisation, one small object each.

The loop (:func:`polysemy.sae.trainer.train`, ``train_stacked``) only steps the models and checks that
the numbers stay finite. What a run reports or decides along the way is a callback over the loop's
:class:`~polysemy.sae.trainer.TrainState` (the design follows the callback hooks of Keras and PyTorch
Lightning, reduced to what this loop needs):

- ``on_train_start(state)``: once, after the models and the optimizer exist, before the first step
  (``state.step`` is 0, or the step a resumed run continues from).
- ``on_step_end(state)``: after every optimisation step; ``state.step`` counts the steps done,
  ``state.batch`` [G, B, d] and ``state.out`` (the method's ``StepOutput``) are that step's.
- ``on_log(state, step)``: at every log point (every ``log_every`` steps, and at the last step).
  ``state.rows`` maps each model still training to its new history row (``step``, ``samples``,
  ``seconds`` filled in); a callback adds its columns to those dicts, in callback order.
- ``on_train_end(state)``: once, at the end, also when training raised (``state.error`` is set then).

A callback stops training with ``state.stop(reason)`` (every model, after the current round of hooks;
``TrainResult.stop_reason`` becomes ``reason``) or ``state.stop_model(g, reason)`` (model g's result is
frozen now; the other models of a stack train on). Any object with some of these methods is a
callback; subclass :class:`Callback` for no-op defaults.

``train`` builds the default callbacks from each ``TrainConfig`` (:func:`default_callbacks`) and runs
the caller's after them: :class:`LogStats` (loss, mse, l0, alive/dead fraction, the method's extras and
``log_values``: GBA's ``g{k}_target``/``g{k}_freq``/``g{k}_at_bound`` and ``bias_at_bound``),
:class:`RecoveryLog` (FRR(0.9), FRR(0.99) and MMCS from :func:`polysemy.theory.metrics.feature_recovery`
when the truth is given), :class:`PlateauStop` (``stop_on_plateau``), then the caller's callbacks, then
:class:`ProgressBar` (tqdm) and :class:`OnLogHook` (the ``on_log`` argument). Also here:
:class:`Snapshots` (the models, or anything computed from the state, at chosen steps of one run) and
:class:`TensorBoardLogger` (history rows as TensorBoard scalars; needs the ``tensorboard`` extra).
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, require
from ..theory.metrics import feature_recovery

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig
    from .trainer import TrainState

HOOKS = ("on_train_start", "on_step_end", "on_log", "on_train_end")
RECOVERY_TAUS = (0.9, 0.99)     # the history's frr_0.9 and frr_0.99 columns


class Callback:
    """No-op base of a training callback (the protocol: module docstring)."""

    def on_train_start(self, state: "TrainState") -> None:
        pass

    def on_step_end(self, state: "TrainState") -> None:
        pass

    def on_log(self, state: "TrainState", step: int) -> None:
        pass

    def on_train_end(self, state: "TrainState") -> None:
        pass


def bound_hooks(callbacks: Iterable[Any], name: str) -> list[Callable]:
    """The ``name`` methods of ``callbacks`` in order, without :class:`Callback`'s no-ops (so a step
    pays only for the callbacks that act on it)."""
    base = getattr(Callback, name)
    out = []
    for cb in callbacks:
        if getattr(type(cb), name, None) is base:
            continue
        hook = getattr(cb, name, None)
        if callable(hook):
            out.append(hook)
    return out


def check_callbacks(callbacks) -> list:
    """``callbacks`` as a list; a ConfigError names an entry that has none of the hooks."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise ConfigError(f"callbacks must be a list of callback objects, got {type(callbacks).__name__}")
    for cb in callbacks:
        require(any(callable(getattr(cb, h, None)) for h in HOOKS),
                f"callbacks must have at least one of {', '.join(HOOKS)}, got {cb!r}")
    return list(callbacks)


# -- the default callbacks -----------------------------------------------------------------------------

class LogStats(Callback):
    """The history's training columns, averaged over each log interval: ``loss``, ``mse``, ``l0``
    (active latents per sample), ``alive_fraction`` and ``dead_fraction`` (latents that fired or not in
    the interval), the method's per-step ``extras``, then its ``log_values`` at the log point (GBA: each
    group's ``g{k}_target``, ``g{k}_freq``, ``g{k}_at_bound`` and the overall ``bias_at_bound``, see
    ``bias_adaptation.group_report``). Sums stay on the device: one read-back per log point."""

    def on_train_start(self, state) -> None:
        G, width = state.G, int(state.cfgs[0].width)
        self.fired = torch.zeros(G, width, device=state.device)
        self.loss = torch.zeros(G, device=state.device)
        self.mse = torch.zeros(G, device=state.device)
        self.extras: dict = {}
        self.steps = self.samples = 0

    def on_step_end(self, state) -> None:
        out = state.out
        self.fired += out.fired_GM
        self.loss += out.loss_G
        self.mse += out.mse_G
        for k, v in out.extras.items():
            self.extras[k] = self.extras.get(k, 0.0) + v
        self.steps += 1
        self.samples += state.batch.shape[1]

    def on_log(self, state, step: int) -> None:
        stats = {
            "loss": (self.loss / self.steps).tolist(),
            "mse": (self.mse / self.steps).tolist(),
            "l0": (self.fired.sum(1) / self.samples).tolist(),
            "alive_fraction": (self.fired > 0).float().mean(1).tolist(),
        }
        stats["dead_fraction"] = [1.0 - a for a in stats["alive_fraction"]]
        for k, v in self.extras.items():
            stats[k] = (v / self.steps).tolist()
        for k, v in state.method.log_values(state.model, state.hyper).items():
            stats[k] = v.tolist()
        for g, row in state.rows.items():
            row.update({k: v[g] for k, v in stats.items()})
        self.fired.zero_(), self.loss.zero_(), self.mse.zero_()
        self.extras.clear()
        self.steps = self.samples = 0


class RecoveryLog(Callback):
    """``frr_0.9``, ``frr_0.99`` and ``mmcs`` of each model given a truth, by
    :func:`polysemy.theory.metrics.feature_recovery` on its decoder rows (the very numbers
    ``theory.metrics.recovery_metrics`` gives for that model: signed cosines, float64 up to its size
    limit). The rows are copied to the CPU once per log point."""

    def on_log(self, state, step: int) -> None:
        wanted = [g for g in state.rows if state.truths[g] is not None]
        if not wanted:
            return
        rows_GMD = state.model.decoder_rows().detach().float().cpu().numpy()
        for g in wanted:
            rec = feature_recovery(rows_GMD[g], state.truths[g], taus=RECOVERY_TAUS)
            state.rows[g].update({f"frr_{t:g}": rec["frr"][f"{t:g}"] for t in RECOVERY_TAUS})
            state.rows[g]["mmcs"] = rec["mmcs"]


def plateaued(rows: list[dict], cfg: "TrainConfig") -> bool:
    """Stop rule (our choice): FRR(0.99) = 1, or neither FRR(0.9) nor FRR(0.99) rose by more than
    plateau_tol over the last plateau_patience log points."""
    last = rows[-1]
    if last["frr_0.99"] >= 1.0:
        return True
    if len(rows) <= cfg.plateau_patience:
        return False
    before = rows[-1 - cfg.plateau_patience]
    return (last["frr_0.9"] - before["frr_0.9"] <= cfg.plateau_tol
            and last["frr_0.99"] - before["frr_0.99"] <= cfg.plateau_tol)


class PlateauStop(Callback):
    """``stop_on_plateau``: freezes each model given a truth whose recovery plateaued (:func:`plateaued`)
    with stop reason "plateau". Runs after :class:`RecoveryLog`, whose columns it reads."""

    def on_log(self, state, step: int) -> None:
        for g in list(state.rows):
            cfg = state.cfgs[g]
            if cfg.stop_on_plateau and state.truths[g] is not None and plateaued(state.history[g], cfg):
                state.stop_model(g, "plateau")


class ProgressBar(Callback):
    """A tqdm bar on stderr: steps, and at each log point the mean loss, L0 and alive fraction of the
    models still training (and the first one's FRR(0.9) when logged)."""

    def on_train_start(self, state) -> None:
        cfg0 = state.cfgs[0]
        self.bar = tqdm(total=cfg0.steps, initial=state.step, file=sys.stderr, leave=False, dynamic_ncols=True,
                        desc=cfg0.method if state.G == 1 else f"{cfg0.method} x{state.G}")

    def on_step_end(self, state) -> None:
        self.bar.update(1)

    def on_log(self, state, step: int) -> None:
        live = [g for g in state.live if g in state.rows] or list(state.rows)
        if not live:
            return
        post = {"loss": f"{np.mean([state.rows[g]['loss'] for g in live]):.4g}",
                "L0": f"{np.mean([state.rows[g]['l0'] for g in live]):.3g}",
                "alive": f"{np.mean([state.rows[g]['alive_fraction'] for g in live]):.3f}"}
        if "frr_0.9" in state.rows[live[0]]:
            post["frr.9"] = f"{state.rows[live[0]]['frr_0.9']:.3f}"
        self.bar.set_postfix(post, refresh=False)

    def on_train_end(self, state) -> None:
        bar = getattr(self, "bar", None)
        if bar is not None:
            bar.close()


class OnLogHook(Callback):
    """``train``'s ``on_log(step, results)`` argument: called at each log point after every other
    callback; ``results()`` returns the run so far as TrainResults (``polysemy train --checkpoint-every``
    saves them)."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def on_log(self, state, step: int) -> None:
        self.fn(step, state.results)


def default_callbacks(cfgs: list["TrainConfig"], truths: list, progress: bool, on_log: Callable | None,
                      extra: list | None = None) -> list:
    """The callbacks ``train`` runs, in order: LogStats, RecoveryLog (a truth given), PlateauStop (some
    config has ``stop_on_plateau``), the caller's ``extra``, ProgressBar (``progress``), OnLogHook
    (``on_log``)."""
    out: list = [LogStats()]
    if any(t is not None for t in truths):
        out.append(RecoveryLog())
    if any(c.stop_on_plateau for c in cfgs):
        out.append(PlateauStop())
    out += list(extra or [])
    if progress:
        out.append(ProgressBar())
    if on_log is not None:
        out.append(OnLogHook(on_log))
    return out


# -- further callbacks -----------------------------------------------------------------------------

def model_copies(state) -> list:
    """Snapshots' default record: a copy of every model of the stack (an ``SAE``, on the training
    device)."""
    return [state.sae(g) for g in range(state.G)]


class Snapshots(Callback):
    """Record ``fn(state)`` at chosen steps of a run: ``records[step]``, in step order.

    Step 0 is the initialisation (recorded at ``on_train_start``), step k the state after k optimisation
    steps (recorded at ``on_step_end``). Training is not touched: the run, its lr schedule included, is
    the one it would be without the callback, so a snapshot at step k equals the state of a run of the
    same config stopped after k steps (tests/sae/test_callbacks.py checks that bit for bit). Steps past
    the end of the run are not recorded. ``fn`` defaults to :func:`model_copies`; pass a function of the
    state to keep derived numbers instead (experiments/dynamics.py keeps cosines and frequencies). Models
    of a stack that stopped early (``state.live``) keep stepping with the stack; ``fn`` sees them too.
    ``train_stacked`` over configs of several structures trains one stack after another: ``runs`` then
    holds one dict per stack (``state.members`` says whose models ``fn`` saw), ``records`` the last.
    """

    def __init__(self, steps: Iterable[int], fn: Callable | None = None):
        wanted = sorted({int(s) for s in steps})
        require(all(s >= 0 for s in wanted), f"snapshot steps must be >= 0, got {wanted}")
        self.steps = wanted
        self._wanted = set(wanted)
        self.fn = fn or model_copies
        self.runs: list[dict[int, Any]] = []

    @property
    def records(self) -> dict[int, Any]:
        return self.runs[-1] if self.runs else {}

    def _take(self, state) -> None:
        if state.step in self._wanted and state.step not in self.runs[-1]:
            self.runs[-1][state.step] = self.fn(state)

    def on_train_start(self, state) -> None:
        self.runs.append({})
        self._take(state)

    def on_step_end(self, state) -> None:
        self._take(state)


TENSORBOARD_MISSING = ("TensorBoard logging (--tensorboard, TensorBoardLogger) needs the tensorboard package: "
                       "pip install 'polysemy[tensorboard]'")


def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line ConfigError when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(TENSORBOARD_MISSING) from None
    return SummaryWriter


class TensorBoardLogger(Callback):
    """Every numeric history column as a TensorBoard scalar at its step (off by default;
    ``polysemy train --tensorboard DIR``). One tag per column; a stack of G > 1 models writes
    ``model{g}/{column}``. ``writer``: any object with ``add_scalar(tag, value, step)``, ``flush()`` and
    ``close()`` (default: ``torch.utils.tensorboard.SummaryWriter(log_dir)``, opened at the start of the
    run and closed at its end, which needs the ``tensorboard`` package: a ConfigError says so when it is
    missing; a writer passed in is flushed at the end, not closed)."""

    SKIP = ("step",)

    def __init__(self, log_dir: str | None = None, writer: Any = None):
        require(writer is not None or log_dir is not None, "TensorBoardLogger needs a log_dir or a writer")
        if writer is None:
            summary_writer_class()      # fail now, not at the first log point
        self.log_dir, self.writer, self._own = log_dir, writer, writer is None

    def on_train_start(self, state) -> None:
        if self.writer is None:         # ours: opened per run (train_stacked runs one per stack structure)
            self.writer = summary_writer_class()(log_dir=str(self.log_dir))

    def on_log(self, state, step: int) -> None:
        for g, row in state.rows.items():
            prefix = "" if state.G == 1 else f"model{g}/"
            for key, value in row.items():
                if key in self.SKIP or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                if math.isfinite(value):
                    self.writer.add_scalar(prefix + key, value, step)

    def on_train_end(self, state) -> None:
        if self.writer is None:
            return
        self.writer.flush()
        if self._own:
            self.writer.close()
            self.writer = None
