"""``gba`` (Group Bias Adaptation) and ``ba`` (Bias Adaptation, one group), docs/paper.md section 4.

The tied SAE (tied.py) trained by Adam on w, a, b_pre, with biases moved only by the adaptation rule
(bias_adaptation.py), run as a hook every ``adapt_every`` steps. The rule's state (groups, targets,
window statistics) lives in this method's own model class, :class:`AdaptiveTiedSAE`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch

from ...errors import require, require_float_range, require_int_range
from .. import bias_adaptation as adaptation
from ..activations import ACTIVATIONS
from ..models import DECODERS, TiedSAE
from ..registry import param, register_method
from .base import per_model
from .tied import TiedMethod, TiedParams

BIAS_INITS = ("quantile", "zero")
LOWERINGS = ("full", "proportional")


@dataclasses.dataclass(frozen=True)
class AdaptationParams(TiedParams):
    """Knobs shared by ba and gba (plus those of every tied SAE: a0, smooth_width, input_scale,
    pre_bias; see TiedParams).

    input_scale: "mean-norm" here (our choice): the SAE trains on x / c with c the first batch's mean
                 centred norm, so multiplying the data by any constant changes nothing (c scales with
                 it) and the bias floor sees O(1) projections. Encode, decode and exports stay in the
                 units of x (models.TiedSAE). "none" is the paper's setting (gba-paper).

    gamma_plus, gamma_minus: bias step sizes (0.1; our choice from docs/recovery-study.md: the paper's
                 0.01, meant for long LLM runs, leaves the biases far from their targets after 5000
                 steps on the theorem's uniform world, FRR(0.9) 0.83 vs 1.00 at 0.1).
    eps:         frequency below which a neuron counts as nearly dead (1e-4; [unknown], our choice:
                 an order of magnitude below the lowest default target).
    adapt_every: optimiser steps between adaptations (50 [paper], at batch 512).
    buffer:      samples the statistics cover; None = adapt_every x batch_size (the paper's setting).
                 The rule needs >= ~10 / (lowest target) samples to see rare neurons fire (warned).
    activation:  "jumprelu" (default [paper]), "relu" or "smooth-relu" (see activations.py).
    bias_init:   "quantile" (default; our choice): each bias starts where its neuron fires at its target
                 frequency on the first batch (bias_adaptation.quantile_biases), so training does not
                 spend its first ~10^5 samples lowering every bias from 0; "zero": the paper's start.
    bias_floor:  lower clamp of the biases, in units of the SAE's input x / c (-1 [paper]). A bias that
                 ends at a bound is reported in the history (``bias_at_bound``, per group) and warned
                 about by ``polysemy train``.
    lowering:    "proportional" (default; our choice): the paper's step gamma_minus * r_m times the relative
                 excess 1 - target / p_m, so a neuron just above its target moves a little and one far
                 above it a full step. The full step overshoots where the window's peak r_m is large
                 against the projections near the threshold (samples of many active features), and the
                 rule never raises a bias back unless its neuron is nearly dead (docs/recovery-study.md,
                 section 0). "full": the paper's step.
    decoder:     "tied" (the paper's SAE: x_hat = sum z_m a_m w_m + b_pre) or "untied": the decoder has
                 unit rows v_m of its own, trained by the same loss, while the encoder keeps w_m, the
                 biases and their adaptation (our choice; see docs/recovery-study.md).
    """

    input_scale: str | float = "mean-norm"
    gamma_plus: float = param(0.1, "bias raise step for nearly dead neurons")
    gamma_minus: float = param(0.1, "bias lowering step for over-active neurons")
    eps: float = param(1e-4, "frequency below which a neuron is nearly dead")
    adapt_every: int = param(50, "steps between bias adaptations")
    buffer: int | None = param(None, "samples the adaptation statistics cover", shown="adapt_every x batch")
    activation: str = param("jumprelu", "jumprelu, relu or smooth-relu", structural=True)
    bias_init: str = param("quantile", "quantile (fire at the target from step 0) or zero")
    bias_floor: float = param(-1.0, "lower clamp of the adapted biases, in units of x / c")
    decoder: str = param("untied", "untied or tied (the paper's)", structural=True)
    lowering: str = param("proportional", "proportional or full (the paper's) bias-lowering step")

    cli_aliases = {"gamma": (("gamma_plus", "gamma_minus"), "both bias step sizes")}

    def validate(self) -> None:
        super().validate()
        require_float_range("gamma_plus", self.gamma_plus, 0.0, 1.0)
        require_float_range("gamma_minus", self.gamma_minus, 0.0, 1.0)
        require_float_range("eps", self.eps, 0.0, 1.0)
        require_int_range("adapt_every", self.adapt_every, 1)
        if self.buffer is not None:
            require_int_range("buffer", self.buffer, 1)
        require(self.activation in ACTIVATIONS,
                f"activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}")
        require(self.bias_init in BIAS_INITS, f"bias_init must be one of {list(BIAS_INITS)}, got {self.bias_init!r}")
        require_float_range("bias_floor", self.bias_floor, -1e6, 0.0, high_open=True)
        require(self.lowering in LOWERINGS, f"lowering must be one of {list(LOWERINGS)}, got {self.lowering!r}")
        require(self.decoder in DECODERS, f"decoder must be one of {list(DECODERS)}, got {self.decoder!r}")

    def lowest_target(self) -> float:
        raise NotImplementedError

    def buffer_samples(self, batch_size: int) -> int:
        return self.buffer if self.buffer is not None else self.adapt_every * batch_size

    def validate_for(self, train_cfg) -> None:
        require(self.eps < self.lowest_target(),
                f"eps must be below the lowest target frequency {self.lowest_target():g}, got {self.eps!r}")
        needed = 10.0 / self.lowest_target()
        have = self.buffer_samples(train_cfg.batch_size)
        if have < needed:
            warnings.warn(f"buffer covers {have} samples, fewer than 10 / lowest target = {needed:.0f}: "
                          "rare neurons may look dead; raise buffer or adapt_every", stacklevel=2)


@dataclasses.dataclass(frozen=True)
class GBAParams(AdaptationParams):
    """GBA: ``groups`` groups (10 [paper]) with targets spaced geometrically from ``htf`` down to ``ltf``
    (0.1 ... 0.001, arXiv v1 [paper]); neurons assigned to groups by a seeded random permutation
    ([inferred]), so the groups have equal sizes (up to one)."""

    groups: int = param(10, "number of frequency groups K")
    htf: float = param(0.1, "highest target frequency")
    ltf: float = param(0.001, "lowest target frequency")

    def validate(self) -> None:
        super().validate()
        require_int_range("groups", self.groups, 1)
        require_float_range("htf", self.htf, 0.0, 1.0, low_open=True)
        require_float_range("ltf", self.ltf, 0.0, self.htf, low_open=True)

    def lowest_target(self) -> float:
        return self.ltf

    def validate_for(self, train_cfg) -> None:
        require_int_range("groups", self.groups, 1, train_cfg.width)
        super().validate_for(train_cfg)

    def targets(self) -> list[float]:
        """p_k = htf * (ltf / htf)^(k / (K - 1)), k = 0..K-1 (geometric spacing [paper])."""
        K = self.groups
        if K == 1:
            return [self.htf]
        return [self.htf * (self.ltf / self.htf) ** (k / (K - 1)) for k in range(K)]


@dataclasses.dataclass(frozen=True)
class BAParams(AdaptationParams):
    """BA: one group with one target frequency ``target`` (0.01; [unknown], our choice, near the
    frequency f = s/n of the default toy worlds)."""

    target: float = param(0.01, "target firing frequency p")

    def validate(self) -> None:
        super().validate()
        require_float_range("target", self.target, 0.0, 1.0, low_open=True)

    def lowest_target(self) -> float:
        return self.target


class AdaptiveTiedSAE(TiedSAE):
    """The tied SAE with the bias-adaptation state as buffers (bias_adaptation.py), so a checkpoint
    resumes adaptation exactly: group id and target frequency per neuron, and the statistics of the
    current window (``act_count_GM``, ``peak_GM``, ``stat_samples_G``) and of the last one (``freq_GM``,
    the achieved frequency)."""

    def __init__(self, G: int, d: int, width: int, activation: str = "jumprelu", decoder: str = "tied"):
        super().__init__(G, d, width, activation=activation, decoder=decoder)
        self.register_buffer("group_GM", torch.zeros(G, width, dtype=torch.int64))
        self.register_buffer("target_GM", torch.zeros(G, width))
        self.register_buffer("act_count_GM", torch.zeros(G, width))
        self.register_buffer("peak_GM", torch.zeros(G, width))
        self.register_buffer("stat_samples_G", torch.zeros(G))
        self.register_buffer("freq_GM", torch.zeros(G, width))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the achieved frequency was kept: unknown, 0
        w = state_dict.get(prefix + "w_GMD")
        if w is not None:
            state_dict.setdefault(prefix + "freq_GM", torch.zeros(w.shape[:2]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@register_method("gba")
class GBA(TiedMethod):
    """Group Bias Adaptation on the tied SAE."""

    Params = GBAParams
    model_class = AdaptiveTiedSAE
    default_lr = 1e-2                    # our choice (docs/recovery-study.md): fastest stable rate
    default_lr_schedule = "linear-decay"
    summary = ("Group Bias Adaptation [paper], the 0.2 recipe (docs/recovery-study.md, section 0): "
               "targets geometric from htf to ltf in `groups` groups")
    color = "tab:red"
    bench_order = 0
    bench_axis, bench_values = "target scale", (0.3, 3.0)

    def structural(self, cfg) -> tuple:
        params = cfg.method_params
        return adaptation.schedule(params.adapt_every, params.buffer_samples(cfg.batch_size), cfg.batch_size)

    def target_list(self, params) -> list[float]:
        return params.targets()

    def init_state(self, model, g, params, generator) -> None:
        """Groups: a seeded random permutation, equal sizes; each neuron's target is its group's."""
        targets = torch.tensor(self.target_list(params), dtype=torch.float32)
        K = len(targets)
        perm = torch.randperm(model.width, generator=generator)
        group = torch.empty(model.width, dtype=torch.int64)
        group[perm] = torch.arange(model.width) % K
        model.group_GM[g] = group
        model.target_GM[g] = targets[group]

    def hyper(self, cfgs, d, device):
        params = [c.method_params for c in cfgs]
        period, window = adaptation.schedule(params[0].adapt_every, params[0].buffer_samples(cfgs[0].batch_size),
                                             cfgs[0].batch_size)
        return {
            **super().hyper(cfgs, d, device),
            "gamma_plus_G": per_model((p.gamma_plus for p in params), device),
            "gamma_minus_G": per_model((p.gamma_minus for p in params), device),
            "eps_G": per_model((p.eps for p in params), device),
            "floor_G": per_model((p.bias_floor for p in params), device),
            "proportional_G": per_model((float(p.lowering == "proportional") for p in params), device),
            "groups": max(len(self.target_list(p)) for p in params),
            "period": period,
            "window": window,
        }

    def accumulate_statistics(self, model, u_GBM, fired_GM, hyper, step) -> None:
        if adaptation.in_window(step, hyper["period"], hyper["window"]):
            adaptation.accumulate(model, u_GBM, fired_GM)

    def end_of_step(self, model, hyper, step) -> None:
        if adaptation.is_adaptation_step(step, hyper["period"]):
            adaptation.adapt_biases(model, hyper["gamma_plus_G"], hyper["gamma_minus_G"], hyper["eps_G"],
                                    hyper["floor_G"], hyper["proportional_G"])

    @torch.no_grad()
    def init_biases(self, model, cfgs, x0_GBD) -> None:
        """bias_init="quantile": fire at the target on the first batch (see AdaptationParams)."""
        params = [c.method_params for c in cfgs]
        if all(p.bias_init == "zero" for p in params):
            return                                    # the paper's start: no projections to sort
        floor = torch.tensor([p.bias_floor for p in params], device=x0_GBD.device)
        quantile = adaptation.quantile_biases(model.project(x0_GBD), model.target_GM, floor)
        for g, p in enumerate(params):
            if p.bias_init == "quantile":
                model.bias_GM[g] = quantile[g]

    def log_values(self, model, hyper=None) -> dict:
        values = super().log_values(model, hyper)
        if hyper is not None:
            values.update(adaptation.group_report(model, hyper["floor_G"], hyper["groups"]))
        return values

    # -- llm-bench: the main row, GBA's frontier (every target times each scale), the other decoder ----
    def plot_colors(self) -> dict[str, str]:
        return {**super().plot_colors(), f"{self.name}-tied": "tab:pink", f"{self.name}-untied": "tab:brown"}

    def bench_settings(self, bench) -> list[tuple]:
        """The main row; one row per target scale (``bench.plan.sweep_for``: every target frequency, htf
        and ltf, times the scale: GBA's own frontier); with ``bench.plan.tied_arms``, the other decoder
        than the main row's (the architecture arm, ``<name>-tied`` or ``<name>-untied``)."""
        params = bench.plan.params_for(self.name)
        plan = [(self.name, "", self.name, params, "main")]
        for scale in bench.plan.sweep_for(self.name):
            p = self.scaled_targets(params, float(scale), bench.training.batch_size)
            plan.append((self.name, f"htf={p['htf']:.3g}", self.name, p, "gba-frontier"))
        if bench.plan.tied_arms:
            other = "untied" if self.Params.resolve(params).decoder == "tied" else "tied"
            plan.append((f"{self.name}-{other}", "", self.name, {**params, "decoder": other}, "architecture"))
        return plan

    def scaled_targets(self, params: dict, scale: float, batch_size: int) -> dict:
        """``params`` with the target range (htf, ltf) multiplied by ``scale`` (htf capped at 0.5), and
        the statistics buffer widened to >= 10 / ltf samples when the lowest target falls (the rule
        must see its rarest neurons fire; ``AdaptationParams.validate_for``)."""
        base = self.Params.resolve(params)
        htf = min(0.5, base.htf * scale)
        ltf = min(base.ltf * scale, htf)
        out = {**params, "htf": htf, "ltf": ltf}
        need = math.ceil(10.0 / ltf)
        if base.buffer_samples(batch_size) < need:
            out["buffer"] = need
        return out


@register_method("ba")
class BA(GBA):
    """Bias Adaptation: GBA with one group and one target frequency."""

    Params = BAParams
    summary = "Bias Adaptation [paper]: one target frequency, the gba knobs but groups/htf/ltf"
    color = "tab:orange"
    bench_order = 1
    bench_axis = None
    bench_settings = TiedMethod.bench_settings
    plot_colors = TiedMethod.plot_colors

    def target_list(self, params) -> list[float]:
        return [params.target]


@dataclasses.dataclass(frozen=True)
class GBAPaperParams(GBAParams):
    """The paper's GBA as published (arXiv v1): gamma = 0.01 [paper], targets 0.1 ... 0.001 in 10 groups
    [paper], biases from 0 clamped to [-1, 0] and moved by full steps [paper], the tied decoder [paper],
    raw inputs (no input scale; the paper assumes O(1) inputs), a0 = 0.1 [unknown; our earlier default]."""

    input_scale: str | float = "none"
    gamma_plus: float = 0.01
    gamma_minus: float = 0.01
    a0: float = 0.1
    bias_init: str = "zero"
    decoder: str = "tied"
    lowering: str = "full"


@register_method("gba-paper")
class GBAPaper(GBA):
    """GBA exactly as the paper publishes it, to run its rows as the paper ran them (lr: 1e-3 constant,
    [unknown]; the paper gives none)."""

    Params = GBAPaperParams
    default_lr = 1e-3
    default_lr_schedule = "constant"
    summary = "the paper's GBA as published (arXiv v1): tied decoder, full steps, biases from 0, raw inputs"
