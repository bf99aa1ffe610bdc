"""``ba-theory``: the modified Bias Adaptation that Theorem 6.1 analyses (docs/paper.md sections 4-5).

- One fixed target frequency p for every neuron [paper].
- Biases set at every step to the quantile of the batch's projections that makes the empirical
  frequency exactly p: with k = round(p B), b_m = -(the (k+1)-th largest u_m in the batch), so exactly
  k samples have y_m = u_m + b_m > 0 (the "natural implementation" of docs/paper.md section 4; no clamp).
- Smooth ReLU activation (activations.py) [paper]; small fixed output scale a_m = a0 (a -> 0 in the
  theory, so neurons decouple) [paper]; a gets no gradient (our reading of "a -> 0").
- Spherical steps on w: the gradient is projected on the tangent space of the unit sphere, then the
  step is taken and w renormalised [paper]. The step itself is Adam's (our choice, so the default lr
  works at any a0; the theorem's plain gradient descent is a known gap).
"""

from __future__ import annotations

import dataclasses

import torch

from ...errors import require, require_float_range
from ..registry import param, register_method
from .base import per_model
from .tied import TiedMethod, TiedParams


@dataclasses.dataclass(frozen=True)
class BATheoryParams(TiedParams):
    """target: fixed firing frequency p (0.01, our choice); a0 here is the FIXED output scale (a gets
    no gradient); the other knobs are those of every tied SAE (see TiedParams)."""

    target: float = param(0.01, "target firing frequency p")

    def validate(self) -> None:
        super().validate()
        require_float_range("target", self.target, 0.0, 1.0, low_open=True, high_open=True)

    def validate_for(self, train_cfg) -> None:
        k = round(self.target * train_cfg.batch_size)
        require(1 <= k < train_cfg.batch_size,
                f"target x batch_size must round to a count in [1, batch_size), got "
                f"{self.target} x {train_cfg.batch_size}")


@register_method("ba-theory")
class BATheory(TiedMethod):
    Params = BATheoryParams
    summary = "Theorem 6.1's modified BA: batch-quantile biases, smooth ReLU, fixed a, spherical steps"
    spherical = True
    train_scale = False

    def activation(self, params) -> str:
        return "smooth-relu"

    def hyper(self, cfgs, d, device):
        return {**super().hyper(cfgs, d, device),
                "target_G": per_model((c.method_params.target for c in cfgs), device),
                "targets": [c.method_params.target for c in cfgs]}   # Python floats: k without a host sync

    @torch.no_grad()
    def set_biases(self, model, u_GBM, hyper, step) -> None:
        G, B, M = u_GBM.shape
        ks = [min(max(round(p * B), 1), B - 1) for p in hyper["targets"]]
        top = u_GBM.topk(max(ks) + 1, dim=1).values                        # [G, k+1, M], descending
        k_G = hyper.setdefault("k_by_batch", {}).get(B)
        if k_G is None:  # made once per batch size (a host-to-device copy)
            k_G = hyper["k_by_batch"][B] = torch.tensor(ks, device=u_GBM.device)
        kth = top.gather(1, k_G.view(G, 1, 1).expand(G, 1, M))[:, 0, :]
        model.bias_GM.copy_(-kth)
