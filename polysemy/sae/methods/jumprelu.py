"""``jumprelu`` (Rajamanoharan et al. 2024): acts = pre * H(pre - theta) with a learned per-latent
threshold theta = exp(log_threshold), trained with straight-through estimators and an L0 penalty.

Pseudo-derivatives with the rectangle kernel K(z) = 1[|z| < 1/2] and bandwidth eps (their eqs. 11-12):
  JumpReLU: d/dpre = H(pre - theta);  d/dtheta = -(theta / eps) K((pre - theta) / eps)
  Step H:   d/dpre = 0;               d/dtheta = -(1 / eps) K((pre - theta) / eps)
Loss: reconstruction + l0_coef / B * sum_b sum_m H(pre[b,m] - theta_m).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ...errors import require_float_range
from .. import sparse
from ..models import UntiedSAE, above_threshold
from ..registry import MethodParams, param, register_method
from .base import per_model
from .untied import Selection, UntiedMethod


def _rectangle(z: torch.Tensor) -> torch.Tensor:
    """K(z) = 1[|z| < 1/2] as a float tensor (float masks: bool tensors are slow on CPU)."""
    return torch.lt(z.abs_(), 0.5, out=torch.empty_like(z))


def _above(pre: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """H(pre - theta) as a float tensor."""
    return torch.gt(pre, theta, out=torch.empty_like(pre))


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta, eps)
        return pre * _above(pre, theta)

    @staticmethod
    def backward(ctx, grad):
        pre, theta, eps = ctx.saved_tensors
        d_pre = grad * _above(pre, theta)
        d_theta = -(theta / eps) * _rectangle((pre - theta) / eps) * grad
        return d_pre, d_theta.sum(1, keepdim=True), None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta, eps)
        return _above(pre, theta)

    @staticmethod
    def backward(ctx, grad):
        pre, theta, eps = ctx.saved_tensors
        d_theta = -(1.0 / eps) * _rectangle((pre - theta) / eps) * grad
        return None, d_theta.sum(1, keepdim=True), None


@dataclasses.dataclass(frozen=True)
class JumpReLUParams(MethodParams):
    """l0_coef: L0 penalty coefficient (0.01; our choice for O(1)-scale inputs);
    bandwidth: STE kernel width eps (0.05; our choice, Rajamanoharan et al. use 0.001 on inputs
    normalised to E||x||^2 = d); threshold: initial theta (0.1; our choice)."""

    l0_coef: float = param(0.01, "L0 penalty coefficient")
    bandwidth: float = param(0.05, "straight-through kernel width eps")
    threshold: float = param(0.1, "initial threshold theta")

    def validate(self) -> None:
        require_float_range("l0_coef", self.l0_coef, 0.0, 100.0)
        require_float_range("bandwidth", self.bandwidth, 0.0, 10.0, low_open=True)
        require_float_range("threshold", self.threshold, 0.0, 100.0, low_open=True)


class JumpReLUSAE(UntiedSAE):
    """The untied SAE with a learned per-latent threshold: acts = pre H(pre - theta), theta =
    exp(log_threshold_GM) (a trained parameter)."""

    encoder = "jumprelu"

    def __init__(self, G: int, d: int, width: int, encoder: str | None = None):
        super().__init__(G, d, width, encoder)
        self.log_threshold_GM = torch.nn.Parameter(torch.zeros(G, width))
        self.trainable_names = self.trainable_names + ("log_threshold_GM",)

    def activate(self, pre_GBM):
        return above_threshold(pre_GBM, self.log_threshold_GM.exp()[:, None, :])


@register_method("jumprelu")
class JumpReLU(UntiedMethod):
    """Sparse path: the active pairs pre > theta carry the decode (slope 1); the threshold's
    pseudo-gradient needs dL/dacts also where the latent is off but near the threshold,
    |pre - theta| < eps / 2, so those pairs get their own per-pair products (the rectangle kernel
    is narrow: few pairs)."""

    Params = JumpReLUParams
    model_class = JumpReLUSAE
    summary = "JumpReLU, STE + L0 (Rajamanoharan et al. 2024)"
    color = "tab:purple"
    bench_order = 5
    saelens_architectures = ("jumprelu",)
    sparse_codes = True

    def init_extra(self, model, g, cfg) -> None:
        model.log_threshold_GM.data[g] = math.log(cfg.method_params.threshold)

    def hyper(self, cfgs, d, device):
        params = [c.method_params for c in cfgs]
        return {"l0_G": per_model((p.l0_coef for p in params), device),
                "bandwidth_G": per_model((p.bandwidth for p in params), device)}

    def select(self, model, pre, hyper, step):
        G, B, M = pre.shape
        theta = model.log_threshold_GM.detach().exp()[:, None, :]          # [G, 1, M]
        eps = hyper["bandwidth_G"][:, None, None]
        if pre.device.type != "cpu" and sparse.decode_mode() == "auto":
            return None                                                     # no host sync: dense
        active = torch.gt(pre, theta)                                       # byte mask
        flat = sparse.nonzero_flat(active)
        count_G = sparse.count_per_model(flat, G, B * M)
        choice = sparse.choose_sparse(count_G / B, M, can_sync=True)
        if not any(choice):
            return None
        pairs = sparse.ActivePairs.from_mask(active, flat)
        values = pre.view(-1)[pairs.flat]
        l0 = count_G.to(pre.dtype) / B
        near = sparse.ActivePairs.from_mask(torch.lt(((pre - theta) / eps).abs_(), 0.5))
        theta_flat = theta.reshape(-1)
        eps_G = hyper["bandwidth_G"]
        l0_G = hyper["l0_G"]

        def theta_grad(ge_flat, dec_flat):
            # JumpReLU: -(theta / eps) K dL/dacts; Step (the L0 penalty): -(1 / eps) K l0_coef / B; K = 1 on "near"
            g = near.model_of_pair()
            ga = near.value_grad(ge_flat, dec_flat)
            th = theta_flat[near.latent]
            per_pair = -(th * ga + l0_G[g] / B) / eps_G[g]
            return near.latent_sum(per_pair) * theta[:, 0, :]                # d/dlog_theta = theta d/dtheta

        return Selection(pairs, values, pairs.latent_count(), choice, penalty=hyper["l0_G"] * l0,
                         theta_grad=theta_grad, extras={"l0_penalty": l0})

    def saelens_export(self, stack):
        return "jumprelu", {**self.saelens_tensors(stack), "threshold": stack.log_threshold_GM.detach()[0].exp()}, {}

    def saelens_import(self, stack, tensors, cfg) -> None:
        stack.log_threshold_GM[0] = tensors["threshold"].log()

    def train_acts(self, model, pre, hyper, step):
        theta = model.log_threshold_GM.exp()[:, None, :]            # [G, 1, M]
        eps = hyper["bandwidth_G"][:, None, None]
        acts = _JumpReLU.apply(pre, theta, eps)
        l0 = _Step.apply(pre, theta, eps).sum((1, 2)) / pre.shape[1]
        return acts, hyper["l0_G"] * l0, {"l0_penalty": l0.detach()}
