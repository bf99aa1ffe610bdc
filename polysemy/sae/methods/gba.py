"""``gba`` (Group Bias Adaptation) and ``ba`` (Bias Adaptation, one group), docs/paper.md section 4.

The tied SAE (tied.py) trained by Adam on w, a, b_pre, with biases moved only by the adaptation rule
(bias_adaptation.py), run as a hook every ``adapt_every`` steps.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch

from ...errors import require, require_float_range, require_int_range
from .. import bias_adaptation as adaptation
from ..activations import ACTIVATIONS
from ..registry import register_method
from .base import per_model
from .tied import TiedMethod, TiedParams


@dataclasses.dataclass(frozen=True)
class AdaptationParams(TiedParams):
    """Knobs shared by ba and gba (plus those of every tied SAE: a0, smooth_width, input_scale,
    pre_bias; see TiedParams).

    gamma_plus, gamma_minus: bias step sizes (0.1; our choice from docs/recovery-study.md: the paper's
                 0.01, meant for long LLM runs, leaves the biases far from their targets after 5000
                 steps on the theorem's uniform world, FRR(0.9) 0.83 vs 1.00 at 0.1).
    eps:         frequency below which a neuron counts as nearly dead (1e-4; [unknown], our choice:
                 an order of magnitude below the lowest default target).
    adapt_every: optimiser steps between adaptations (50 [paper], at batch 512).
    buffer:      samples the statistics cover; None = adapt_every x batch_size (the paper's setting).
                 The rule needs >= ~10 / (lowest target) samples to see rare neurons fire (warned).
    activation:  "jumprelu" (default [paper]), "relu" or "smooth-relu" (see activations.py).
    """

    gamma_plus: float = 0.1
    gamma_minus: float = 0.1
    eps: float = 1e-4
    adapt_every: int = 50
    buffer: int | None = None
    activation: str = "jumprelu"

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

    groups: int = 10
    htf: float = 0.1
    ltf: float = 0.001

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

    target: float = 0.01

    def validate(self) -> None:
        super().validate()
        require_float_range("target", self.target, 0.0, 1.0, low_open=True)

    def lowest_target(self) -> float:
        return self.target


@register_method("gba")
class GBA(TiedMethod):
    """Group Bias Adaptation on the tied SAE."""

    Params = GBAParams

    def structural(self, cfg) -> tuple:
        params = cfg.method_params
        period, window = adaptation.schedule(params.adapt_every, params.buffer_samples(cfg.batch_size), cfg.batch_size)
        return super().structural(cfg) + (period, window)

    def target_list(self, params) -> list[float]:
        return params.targets()

    def groups_and_targets(self, params, width, generator):
        targets = torch.tensor(self.target_list(params), dtype=torch.float32)
        K = len(targets)
        perm = torch.randperm(width, generator=generator)
        group = torch.empty(width, dtype=torch.int64)
        group[perm] = torch.arange(width) % K
        return group, targets[group]

    def hyper(self, cfgs, d, device):
        params = [c.method_params for c in cfgs]
        period, window = adaptation.schedule(params[0].adapt_every, params[0].buffer_samples(cfgs[0].batch_size),
                                             cfgs[0].batch_size)
        return {
            **super().hyper(cfgs, d, device),
            "gamma_plus_G": per_model((p.gamma_plus for p in params), device),
            "gamma_minus_G": per_model((p.gamma_minus for p in params), device),
            "eps_G": per_model((p.eps for p in params), device),
            "period": period,
            "window": window,
        }

    def accumulate_statistics(self, model, u_GBM, fired_GM, hyper, step) -> None:
        if adaptation.in_window(step, hyper["period"], hyper["window"]):
            adaptation.accumulate(model, u_GBM, fired_GM)

    def end_of_step(self, model, hyper, step) -> None:
        if adaptation.is_adaptation_step(step, hyper["period"]):
            adaptation.adapt_biases(model, hyper["gamma_plus_G"], hyper["gamma_minus_G"], hyper["eps_G"])


@register_method("ba")
class BA(GBA):
    """Bias Adaptation: GBA with one group and one target frequency."""

    Params = BAParams

    def target_list(self, params) -> list[float]:
        return [params.target]


