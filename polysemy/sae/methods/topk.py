"""``topk`` (Gao et al. 2024) and ``batchtopk`` (Bussmann et al. 2024), both with the AuxK loss.

topk:      acts = relu of the k largest pre-activations of each sample.
batchtopk: in training, keep the k x B largest (positive) pre-activations of the whole batch, so k is
           the average count per sample; at inference use a threshold theta, a running estimate of the
           smallest kept activation: theta <- beta theta + (1 - beta) min_kept (first batch: min_kept).
AuxK (Gao et al. 2024, appendix A.2): latents that have not fired for ``dead_after_samples`` samples
are dead; the top ``aux_k`` dead pre-activations reconstruct the (detached) residual x - x_hat:
L_aux = 1/(2B) sum_b ||e_b - z_aux,b W_dec||^2, added with weight ``aux_coef`` (1/32 [Gao et al.]).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ...errors import require, require_float_range, require_int_range
from ..models import topk_acts
from ..registry import MethodParams, register_method
from .base import per_model
from .untied import UntiedMethod


@dataclasses.dataclass(frozen=True)
class TopKParams(MethodParams):
    """k: active latents per sample (32; our choice, no default fits every world).
    aux_k: dead latents used by AuxK (None = d // 2, following Gao et al.'s d/2-ish choice).
    aux_coef: weight of the AuxK loss (1/32 [Gao et al. 2024]); 0 disables it.
    dead_after_samples: a latent silent this many samples counts as dead (100000; our choice, Gao et
    al. use 10M tokens at LLM scale)."""

    k: int = 32
    aux_k: int | None = None
    aux_coef: float = 1.0 / 32.0
    dead_after_samples: int = 100_000

    def validate(self) -> None:
        require_int_range("k", self.k, 1)
        if self.aux_k is not None:
            require_int_range("aux_k", self.aux_k, 1)
        require_float_range("aux_coef", self.aux_coef, 0.0, 100.0)
        require_int_range("dead_after_samples", self.dead_after_samples, 1)

    def validate_for(self, train_cfg) -> None:
        require_int_range("k", self.k, 1, train_cfg.width)
        if self.aux_k is not None:
            require_int_range("aux_k", self.aux_k, 1, train_cfg.width)


@dataclasses.dataclass(frozen=True)
class BatchTopKParams(TopKParams):
    """threshold_beta: decay of the running inference threshold (0.999; our choice)."""

    threshold_beta: float = 0.999

    def validate(self) -> None:
        super().validate()
        require_float_range("threshold_beta", self.threshold_beta, 0.0, 1.0, high_open=True)


@register_method("topk")
class TopK(UntiedMethod):
    Params = TopKParams
    encoder = "topk"
    has_aux_loss = True

    def structural(self, cfg) -> tuple:
        return (cfg.method_params.aux_k,)

    def init_extra(self, model, g, cfg) -> None:
        model.k_G[g] = cfg.method_params.k

    def hyper(self, cfgs, d, device):
        params = [c.method_params for c in cfgs]
        aux_k = params[0].aux_k or max(1, d // 2)
        return {
            "aux_k": min(aux_k, cfgs[0].width),
            "aux_coef_G": per_model((p.aux_coef for p in params), device),
            "dead_steps_G": per_model((math.ceil(p.dead_after_samples / c.batch_size) for p, c in zip(params, cfgs)),
                                      device, dtype=torch.int64),
        }

    def train_acts(self, model, pre, hyper, step):
        return topk_acts(pre, model.k_G), None, {}

    def aux_loss(self, model, pre, x_GBD, x_hat, hyper, step):
        if not bool((hyper["aux_coef_G"] > 0).any()):
            return None
        dead_GM = (step - model.last_fired_GM) >= hyper["dead_steps_G"][:, None]
        has_dead_G = dead_GM.any(1)
        if not bool(has_dead_G.any()):
            return None
        masked = pre.masked_fill(~dead_GM[:, None, :], float("-inf"))
        values, index = masked.topk(hyper["aux_k"], dim=2)
        aux_acts = torch.zeros_like(pre).scatter(2, index, torch.relu(values))
        residual = (x_GBD - x_hat).detach()
        recon = torch.bmm(aux_acts, model.W_dec_GMD)
        aux = 0.5 * (recon - residual).square().sum((1, 2)) / x_GBD.shape[1]
        # models without dead latents get exactly zero (keeps stacked == sequential)
        return aux * (hyper["aux_coef_G"] * has_dead_G)


@register_method("batchtopk")
class BatchTopK(TopK):
    Params = BatchTopKParams
    encoder = "batchtopk"

    def hyper(self, cfgs, d, device):
        hyper = super().hyper(cfgs, d, device)
        hyper["beta_G"] = per_model((c.method_params.threshold_beta for c in cfgs), device)
        return hyper

    def train_acts(self, model, pre, hyper, step):
        G, B, M = pre.shape
        positive = torch.relu(pre)
        kB_G = model.k_G * B
        kth_G = _kth_largest(positive.detach().reshape(G, B * M), kB_G)
        # keep the k x B largest positive values (float mask; the threshold is > 0 unless fewer are positive)
        keep = torch.ge(positive.detach(), kth_G.clamp(min=torch.finfo(pre.dtype).tiny)[:, None, None],
                        out=torch.empty_like(pre))
        with torch.no_grad():
            theta, beta = model.threshold_G, hyper["beta_G"]
            fresh = theta < 0
            model.threshold_G.copy_(torch.where(fresh, kth_G, beta * theta + (1 - beta) * kth_G))
        return positive * keep, None, {"threshold": model.threshold_G.clone()}


def _kth_largest(values_GN: torch.Tensor, k_G: torch.Tensor) -> torch.Tensor:
    """The k_g-th largest entry of each row (quickselect via kthvalue: ~5x faster than topk here)."""
    N = values_GN.shape[1]
    if int(k_G.min()) == int(k_G.max()):
        return values_GN.kthvalue(N - int(k_G[0]) + 1, dim=1).values
    return torch.stack([row.kthvalue(N - int(k) + 1).values for row, k in zip(values_GN, k_G)])
