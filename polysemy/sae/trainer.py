"""The one training loop: any iterator of [B, d] tensors in, a trained SAE out.

``train`` trains one model; ``train_stacked`` trains G models as stacked tensors (configs with the
same structure, see ``Method.structure_key``, share one stack; others are trained as separate stacks).
Both run :func:`_train_stack`, so a stack of G models gives the same result as G single runs.

Per step: fetch a batch -> ``method.loss_and_grads`` -> Adam -> ``after_update`` (unit-norm rows) ->
latent firing bookkeeping -> ``end_of_step`` (bias adaptation) -> the callbacks' ``on_step_end``; no
step reads a value back from the device, so a GPU runs ahead of Python. Inputs and losses are checked
for NaN/inf at log time. Every ``log_every`` steps (and at the end) the loop opens a history row per
model and the callbacks' ``on_log`` fill it (polysemy/sae/callbacks.py: the protocol, and the default
callbacks that write loss, mse, l0, alive/dead fraction, method extras and diagnostics, FRR(0.9),
FRR(0.99) and MMCS when the truth is given, stop on a plateau, and draw the progress bar).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError
from .adam import StackedAdam
from .callbacks import bound_hooks, check_callbacks, default_callbacks
from .config import TrainConfig
from .models import SAE
from .registry import get_method


class NonFiniteError(ConfigError):
    """Training produced NaN or infinity; the message names the step, the model and the quantity."""


@dataclasses.dataclass
class TrainResult:
    """One trained model. ``history`` has a row every ``log_every`` steps (and at the end).
    ``seconds`` (and the history's ``seconds``) count training only, not the log-point callbacks.
    ``optimizer_state`` and ``steps`` let :func:`train` resume exactly (see checkpoint.py)."""

    model: SAE
    history: pd.DataFrame
    seconds: float
    samples: int
    steps: int
    config: TrainConfig
    d: int
    optimizer_state: dict | None = None
    stop_reason: str = "steps"      # "steps", "plateau" or "data exhausted"


# -- public entry points -------------------------------------------------------------------------------

PRECISIONS = ("fp32", "tf32", "bf16")


def train(cfg: TrainConfig, data: Iterable, d: int, truth=None, progress: bool = True,
          resume: TrainResult | None = None, on_log=None, device=None, precision: str = "fp32",
          callbacks: list | None = None) -> TrainResult:
    """Train one SAE on ``data`` (any iterable of float tensors [B, d], or objects with ``.x``).

    truth:  optional [n, d] true features, used only for logging recovery and early stopping.
    resume: a TrainResult (e.g. from ``load_checkpoint``) to continue until ``cfg.steps`` in total;
            ``data`` must then yield the batches that come after the ones already used.
    on_log: optional hook ``on_log(step, results)``, called after each history row is logged (every
            ``log_every`` steps and at the end); ``results()`` returns the run so far as a TrainResult
            list, which :func:`~polysemy.sae.checkpoint.save_checkpoint` can save and ``resume`` continue
            exactly (``polysemy train --checkpoint-every`` uses it).
    device: where to train (None: where the batches are). CPU batches bound for a GPU are pinned and
            copied with ``non_blocking=True``; a world stream can also compose them there
            (``world.stream(..., device=...)``). The model stays on the device (``.cpu()`` it to evaluate
            on CPU data).
    precision: "fp32" (default), "tf32" (CUDA matmuls in TF32, ~10 mantissa bits) or "bf16" (the step
            under ``torch.autocast(bfloat16)``; parameters, Adam state and statistics stay fp32).
    callbacks: further callbacks (polysemy/sae/callbacks.py), run after the default ones that the
            config asks for (history, recovery, plateau stop) and before the progress bar and ``on_log``.
    """
    return _train_stack([cfg], [data], d, [truth], progress, [resume] if resume is not None else None,
                        on_log, device, precision, check_callbacks(callbacks))[0]


def train_stacked(cfgs: list[TrainConfig], datas, d: int, truth=None, progress: bool = True,
                  resume: list[TrainResult] | None = None, device=None, precision: str = "fp32",
                  callbacks: list | None = None) -> list[TrainResult]:
    """Train G configs as stacked tensors; returns results in the order of ``cfgs``.

    datas: a list with one iterable per config, or one shared iterable (then every model of a stack
           sees the same batches). truth: None, one [n, d] array for all, or a list with one per config.
    Configs whose ``structure_key`` differs are trained as separate stacks, one after another.
    device, precision: as for :func:`train`. callbacks: as for :func:`train`; with several stacks each
    callback runs once per stack (``state.members`` maps a stack's models to positions in ``cfgs``).
    """
    callbacks = check_callbacks(callbacks)
    cfgs = list(cfgs)
    if not cfgs:
        return []
    G = len(cfgs)
    shared = not isinstance(datas, (list, tuple))
    if not shared and len(datas) != G:
        raise ConfigError(f"datas must hold one iterable per config ({G}), got {len(datas)}")
    truths = list(truth) if isinstance(truth, (list, tuple)) else [truth] * G
    if len(truths) != G:
        raise ConfigError(f"truth must be one array or a list of {G}, got {len(truths)}")
    if resume is not None and len(resume) != G:
        raise ConfigError(f"resume must hold one TrainResult per config ({G}), got {len(resume)}")
    groups: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(get_method(cfg.method).structure_key(cfg), []).append(i)
    results: list[Any] = [None] * G
    shared_iter = iter(datas) if shared else None
    for members in groups.values():
        sub_data = shared_iter if shared else [datas[i] for i in members]
        sub_resume = [resume[i] for i in members] if resume is not None else None
        out = _train_stack([cfgs[i] for i in members], sub_data, d, [truths[i] for i in members],
                           progress, sub_resume, None, device, precision, callbacks, members)
        for i, r in zip(members, out):
            results[i] = r
    return results


def train_on_world(cfg: TrainConfig, world, data_seed: int = 0, progress: bool = True,
                   log_truth: bool = True) -> TrainResult:
    """Convenience: train on ``world.stream(cfg.batch_size, seed=data_seed)``, logging recovery
    against ``world.V`` (set ``log_truth=False`` to skip that)."""
    data = world.stream(cfg.batch_size, seed=data_seed)
    return train(cfg, data, world.d, truth=world.V if log_truth else None, progress=progress)


# -- the loop ------------------------------------------------------------------------------------------

class _Batches:
    """Draws the next [G, B, d] batch from one shared iterator or one iterator per model."""

    def __init__(self, data, G: int, d: int, device=None):
        self.G, self.d = G, d
        self.device = None if device is None else torch.device(device)
        if isinstance(data, list):
            self.iters, self.shared = [iter(x) for x in data], None
        else:
            self.iters, self.shared = None, iter(data)

    def _one(self, it) -> torch.Tensor:
        item = next(it)
        x = getattr(item, "x", item)
        x = torch.as_tensor(x)
        if x.dtype != torch.float32:
            x = x.to(torch.float32)
        if x.dim() != 2 or x.shape[1] != self.d or x.shape[0] < 1:
            raise ConfigError(f"data batches must be float tensors [B, d={self.d}], got shape {tuple(x.shape)}")
        if self.device is not None and x.device != self.device:
            if self.device.type == "cuda" and x.device.type == "cpu":
                return x.pin_memory().to(self.device, non_blocking=True)   # overlaps the running step
            return x.to(self.device)
        return x

    def next(self) -> torch.Tensor | None:
        try:
            if self.shared is not None:
                x = self._one(self.shared)
                return x[None] if self.G == 1 else x[None].expand(self.G, -1, -1)
            xs = [self._one(it) for it in self.iters]
        except StopIteration:
            return None
        if len({x.shape[0] for x in xs}) != 1:
            raise ConfigError(f"the models of a stack must get batches of one size, got {[x.shape[0] for x in xs]}")
        return xs[0][None] if self.G == 1 else torch.stack(xs)


def lr_scale(cfg: TrainConfig, step: int) -> float:
    """Multiplier of the lr at ``step`` (constant, or a linear decay to 0 over the last part)."""
    if cfg.lr_schedule == "constant":
        return 1.0
    start = cfg.lr_decay_start * cfg.steps
    if step < start:
        return 1.0
    return max(0.0, (cfg.steps - step) / max(1.0, cfg.steps - start))


def one_step(method, model, optimizer: StackedAdam, hyper: dict, x_GBD: torch.Tensor, step: int, scale: float,
             precision: str = "fp32"):
    """One optimisation step of the loop (shared by the trainer and the throughput bench).

    It never reads a value back from the device (no host sync on a GPU): the trainer checks the
    losses and inputs for NaN/inf at log time (:class:`_FiniteCheck`). ``precision`` applies to the
    forward/backward computation only; the update is fp32."""
    if precision == "fp32":
        out = method.loss_and_grads(model, x_GBD, hyper, step)
    else:
        with precision_context(precision, x_GBD.device.type):
            out = method.loss_and_grads(model, x_GBD, hyper, step)
    optimizer.step(out.grads, scale)
    method.after_update(model, hyper)
    with torch.no_grad():
        model.last_fired_GM.masked_fill_(out.fired_GM > 0, step)
    method.end_of_step(model, hyper, step)
    return out


# Inputs beyond this size make float32 sums of squares overflow (3.4e38) or lose all precision.
INPUT_LIMIT = 1e6


def _divergence_cause(x_BD: torch.Tensor) -> str:
    """Name the likely cause of a non-finite loss: inputs too large for float32, else the learning rate."""
    return _cause_from_peak(float(x_BD.abs().max()))


def _cause_from_peak(peak: float) -> str:
    if peak > INPUT_LIMIT:
        return (f"the input batch has entries up to {peak:.3g}, beyond {INPUT_LIMIT:.0e}, so float32 squares "
                "overflow: rescale the data to O(1) (e.g. input_scale='mean-norm')")
    return "try a lower lr"


class _FiniteCheck:
    """Finiteness of every step's input batch and loss, checked in one read-back at log time.

    Per step it keeps three small device tensors (no host sync); ``check`` raises the error of the first
    bad step, naming it (and the likely cause) as a per-step check would: training continues at most
    to the next log point on non-finite values, and nothing of that is kept (the error propagates)."""

    def __init__(self):
        self.pending: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def add(self, step: int, x_GBD: torch.Tensor, loss_G: torch.Tensor) -> None:
        peak_G = x_GBD.detach().abs().amax(dim=(1, 2))          # NaN propagates: also the finiteness flag
        self.pending.append((step, torch.isfinite(peak_G).all(), loss_G.detach(), peak_G))

    def check(self) -> None:
        if not self.pending:
            return
        inputs_ok = torch.stack([x_ok for _, x_ok, _, _ in self.pending])
        losses = torch.stack([loss for _, _, loss, _ in self.pending])
        if bool(inputs_ok.all() & torch.isfinite(losses).all()):    # the one read-back
            self.pending.clear()
            return
        for step, x_ok, loss, peak_G in self.pending:
            if not bool(x_ok):
                raise NonFiniteError(f"input batch at step {step} contains NaN or infinity")
            bad = ~torch.isfinite(loss)
            if bool(bad.any()):
                g = int(bad.nonzero()[0, 0])
                raise NonFiniteError(f"training diverged: loss of model {g} is {loss[g].item()} at step {step} "
                                     f"({_cause_from_peak(float(peak_G[g]))})")


def _check_finite_state(model, step: int) -> None:
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            g = int((~torch.isfinite(tensor)).reshape(tensor.shape[0], -1).any(1).nonzero()[0, 0])
            raise NonFiniteError(f"training diverged: {name} of model {g} became non-finite at step {step} "
                                 "(try a lower lr)")


def _truth_rows(t, d: int) -> np.ndarray | None:
    """A truth as a float32 [n, d] array (None stays None), or a ConfigError naming its shape."""
    if t is None:
        return None
    a = np.asarray(t.detach().cpu() if torch.is_tensor(t) else t, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] != d:
        raise ConfigError(f"truth must be [n, d={d}], got {tuple(a.shape)}")
    return a


def _stack_from(method, cfgs, d, resumes, device):
    """A stacked model and optimizer state assembled from G single-model results."""
    model = method.new_model(cfgs, d).to(device)
    singles = [r.model.stack.state_dict() for r in resumes]
    model.load_state_dict({k: torch.cat([s[k] for s in singles]).to(device) for k in singles[0]})
    if any(r.optimizer_state is None for r in resumes):
        raise ConfigError("resume needs the optimizer state (save the TrainResult, not only the model)")
    steps = {int(r.optimizer_state["t"]) for r in resumes}
    if len(steps) != 1:
        raise ConfigError(f"models resumed in one stack must be at the same step, got {sorted(steps)}")
    opt_state = {k: (torch.cat([r.optimizer_state[k] for r in resumes]).to(device) if k != "t"
                     else resumes[0].optimizer_state["t"]) for k in resumes[0].optimizer_state}
    return model, opt_state


@contextlib.contextmanager
def precision_context(precision: str, device_type: str):
    """The numeric mode of a training step (see :func:`train`)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "bf16":
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            yield
        return
    if precision == "tf32" and device_type == "cuda":
        before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
        return
    yield


class TrainState:
    """The loop's state, as the callbacks see it (polysemy/sae/callbacks.py). Read it freely; change the
    run only through :meth:`stop` and :meth:`stop_model` (or, at a log point, by adding columns to
    ``rows``).

    cfgs, d, method, model (the stacked models, G of them), hyper, optimizer, device, precision: the run.
    members: the positions of this stack's models in the caller's list of configs (``train_stacked``).
    truths: per model, the true features as a float32 [n, d] array, or None.
    step: optimisation steps done (the first step of the run is step 0; after it ``step`` is 1).
    samples: per model, the samples it has seen (a stopped model's count stops too).
    history: per model, its history rows so far (dicts; ``TrainResult.history`` is their DataFrame).
    rows: at a log point, {model: its new row}; empty otherwise.
    batch, out: the last step's batch [G, B, d] and the method's ``StepOutput``.
    finished: per model, its frozen TrainResult once :meth:`stop_model` froze it, else None.
    stop_requested: the reason given to :meth:`stop`, else None. error: the exception training raised.
    """

    def __init__(self, cfgs, d, method, model, hyper, optimizer, truths, step, samples, history, seconds0,
                 members, device, precision):
        self.cfgs, self.d, self.method, self.model, self.hyper = cfgs, d, method, model, hyper
        self.optimizer, self.truths, self.step, self.samples = optimizer, truths, step, samples
        self.history, self.seconds0, self.members = history, seconds0, members
        self.device, self.precision = device, precision
        self.started = time.perf_counter()
        self.log_seconds = 0.0      # time spent in log-point callbacks, left out of ``seconds``
        self.rows: dict[int, dict] = {}
        self.batch: torch.Tensor | None = None
        self.out = None
        self.finished: list[TrainResult | None] = [None] * len(cfgs)
        self.stop_requested: str | None = None
        self.error: BaseException | None = None

    @property
    def G(self) -> int:
        return len(self.cfgs)

    @property
    def live(self) -> list[int]:
        """The models still training (not frozen by :meth:`stop_model`)."""
        return [g for g in range(self.G) if self.finished[g] is None]

    def seconds(self, g: int) -> float:
        """Model g's training time so far (a resumed run adds its earlier time). The time spent in the
        log-point callbacks (history statistics, recovery against the truth, progress, user hooks) is
        not counted (``log_seconds``), so the clock measures training alone, as the peers' monitor
        clocks do (our choice; issue 11)."""
        return self.seconds0[g] + self._elapsed()

    def _elapsed(self) -> float:
        """This run's training time: wall time since the start, less the log-point callbacks."""
        return time.perf_counter() - self.started - self.log_seconds

    def sae(self, g: int) -> SAE:
        """A copy of model g as it is now (an ``SAE``, on the training device)."""
        return SAE(self.model.select(g), self.cfgs[g].method, self.cfgs[g])

    def result(self, g: int, reason: str = "steps") -> TrainResult:
        """Model g's TrainResult: its frozen one once stopped, else the run so far (a copy; ``resume``
        continues it exactly)."""
        if self.finished[g] is not None:
            return self.finished[g]
        return TrainResult(model=self.sae(g), history=pd.DataFrame(self.history[g]), seconds=self.seconds(g),
                           samples=self.samples[g], steps=self.step, config=self.cfgs[g], d=self.d,
                           optimizer_state=self.optimizer.select(g), stop_reason=reason)

    def results(self, reason: str = "steps") -> list[TrainResult]:
        return [self.result(g, reason) for g in range(self.G)]

    def stop(self, reason: str = "callback") -> None:
        """Stop every model after the current round of hooks, with stop reason ``reason``."""
        self.stop_requested = str(reason)

    def stop_model(self, g: int, reason: str) -> None:
        """Freeze model g's result now (stop reason ``reason``); the stack's other models train on."""
        if self.finished[g] is None:
            self.finished[g] = self.result(g, reason)

    def open_rows(self) -> None:
        """A log point: a new history row per live model, with step, samples and seconds."""
        elapsed = self._elapsed()       # one timestamp for every model's row
        self.rows = {}
        for g in self.live:
            row = {"step": self.step, "samples": self.samples[g], "seconds": self.seconds0[g] + elapsed}
            self.history[g].append(row)
            self.rows[g] = row


def _train_stack(cfgs, data, d, truths, progress, resumes, on_log=None, device=None,
                 precision="fp32", callbacks=(), members=None) -> list[TrainResult]:
    method = get_method(cfgs[0].method)
    G, cfg0 = len(cfgs), cfgs[0]
    if not isinstance(d, int) or d < 1:
        raise ConfigError(f"d must be a positive integer, got {d!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    batches = _Batches(data, G, d, device)
    started = time.perf_counter()
    x = batches.next()
    if x is None:
        raise ConfigError("data yielded no batch")
    device = x.device
    truth_rows = [_truth_rows(t, d) for t in truths]

    if resumes is not None:
        model, opt_state = _stack_from(method, cfgs, d, resumes, device)
        step = resumes[0].steps
        samples = [r.samples for r in resumes]
        rows = [r.history.to_dict("records") for r in resumes]
        seconds0 = [r.seconds for r in resumes]
    else:
        model, opt_state = method.init_model(cfgs, d, x), None
        step, samples, rows, seconds0 = 0, [0] * G, [[] for _ in range(G)], [0.0] * G
    hyper = method.hyper(cfgs, d, device)
    lr_G = torch.tensor([c.lr for c in cfgs], dtype=torch.float32, device=device)
    optimizer = StackedAdam(model.trainable(), lr_G)
    if opt_state is not None:
        optimizer.load_state_dict(opt_state)

    state = TrainState(cfgs, d, method, model, hyper, optimizer, truth_rows, step, samples, rows, seconds0,
                       list(members) if members is not None else list(range(G)), device, precision)
    state.started, state.batch = started, x
    cbs = default_callbacks(cfgs, truth_rows, progress, on_log, callbacks)
    on_start, on_step_end, on_log_hooks, on_end = (bound_hooks(cbs, name) for name in
                                                   ("on_train_start", "on_step_end", "on_log", "on_train_end"))
    finite = _FiniteCheck()
    stop_reason = "steps"
    try:
        for hook in on_start:
            hook(state)
        while state.step < cfg0.steps and state.stop_requested is None and state.live:
            if x is None:
                x = batches.next()
                if x is None:
                    stop_reason = "data exhausted"
                    break
            B = x.shape[1]
            out = one_step(method, model, optimizer, hyper, x, state.step, lr_scale(cfg0, state.step), precision)
            finite.add(state.step, x, out.loss_G)
            state.step += 1
            for g in state.live:
                state.samples[g] += B
            state.batch, state.out, x = x, out, None
            for hook in on_step_end:
                hook(state)
            if state.step % cfg0.log_every == 0 or state.step == cfg0.steps:
                finite.check()
                _check_finite_state(model, state.step)
                state.open_rows()
                log_started = time.perf_counter()
                for hook in on_log_hooks:
                    hook(state, state.step)
                state.log_seconds += time.perf_counter() - log_started
                state.rows = {}
        finite.check()      # steps after the last log point (data exhausted, stopped by a callback)
        reason = state.stop_requested or stop_reason
        results = [state.result(g, reason) for g in range(G)]
        for g in range(G):      # a result frozen at a log point gets the columns added there after it froze
            if state.finished[g] is not None:
                results[g].history = pd.DataFrame(state.history[g])
    except BaseException as exc:
        state.error = exc
        raise
    finally:
        for hook in on_end:
            hook(state)
    return results


def check_device(device) -> torch.device:
    """``device`` as a torch.device, or a ConfigError naming what is wrong (CUDA missing, bad name)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device must be available: {device!r} was asked for but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    return dev


def to_cpu(result: TrainResult) -> TrainResult:
    """The result with its model and optimizer state moved to the CPU (for evaluation and saving)."""
    result.model.cpu()
    if result.optimizer_state is not None:
        result.optimizer_state = {k: v.cpu() for k, v in result.optimizer_state.items()}
    return result
