"""``relu-l1``: the standard SAE, acts = relu(pre), with an L1 penalty on acts times decoder norms
(Bricken et al. 2023; the "acts x ||W_dec row||" form of Anthropic's 2024 update):
penalty = l1 / B * sum_b sum_m acts[b, m] ||W_dec[m]||.  Rows are kept at unit norm anyway."""

from __future__ import annotations

import dataclasses

from ...errors import require_float_range
from ..registry import MethodParams, param, register_method
from .base import per_model
from .untied import UntiedMethod


@dataclasses.dataclass(frozen=True)
class ReluL1Params(MethodParams):
    """l1: penalty coefficient lambda (0.03; our choice for O(1)-scale inputs)."""

    l1: float = param(0.03, "L1 coefficient lambda")

    def validate(self) -> None:
        require_float_range("l1", self.l1, 0.0, 100.0)


@register_method("relu-l1")
class ReluL1(UntiedMethod):
    Params = ReluL1Params
    summary = "ReLU + L1 on acts x decoder norms (Bricken et al. 2023)"
    color = "tab:green"
    bench_order = 4
    bench_axis, bench_values = "l1", (0.03, 0.1, 0.3)
    saelens_architectures = ("standard",)

    def hyper(self, cfgs, d, device):
        return {"l1_G": per_model((c.method_params.l1 for c in cfgs), device)}

    def train_acts(self, model, pre, hyper, step):
        acts = pre.relu()
        norms_GM = model.W_dec_GMD.norm(dim=2)
        penalty = hyper["l1_G"] * (acts * norms_GM[:, None, :]).sum((1, 2)) / pre.shape[1]
        return acts, penalty, {}
