"""``topk`` (Gao et al. 2024) and ``batchtopk`` (Bussmann et al. 2024), both with the AuxK loss.

topk:      acts = relu of the k largest pre-activations of each sample.
batchtopk: in training, keep the k x B largest (positive) pre-activations of the whole batch, so k is
           the average count per sample; at inference use a threshold theta, a running estimate of the
           smallest kept activation: theta <- beta theta + (1 - beta) min_kept (first batch: min_kept).
AuxK (Gao et al. 2024, appendix A.2): latents that have not fired for ``dead_after_samples`` samples
are dead; the top ``aux_k`` dead pre-activations reconstruct the (detached) residual x - x_hat:
L_aux = 1/(2B) sum_b ||e_b - z_aux,b W_dec||^2, added with weight ``aux_coef`` (1/32 [Gao et al.]).
It runs only at steps where some latent is dead, and its top-k runs over each model's dead latents only
(not over [B, M]); its decode and gradients use the sparse pairs machinery (untied.py, sparse.py).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ...errors import require_float_range, require_int_range
from .. import sparse
from ..models import UntiedSAE, above_threshold, topk_acts
from ..registry import MethodParams, param, register_method
from .base import per_model
from .untied import Selection, UntiedMethod


@dataclasses.dataclass(frozen=True)
class TopKParams(MethodParams):
    """k: active latents per sample (32; our choice, no default fits every world).
    aux_k: dead latents used by AuxK (None = d // 2, following Gao et al.'s d/2-ish choice).
    aux_coef: weight of the AuxK loss (1/32 [Gao et al. 2024]); 0 disables it.
    dead_after_samples: a latent silent this many samples counts as dead (100000; our choice, Gao et
    al. use 10M tokens at LLM scale)."""

    k: int = param(32, "active latents per sample (batchtopk: the average over the batch)")
    aux_k: int | None = param(None, "dead latents used by the AuxK loss", structural=True, shown="d/2")
    aux_coef: float = param(1.0 / 32.0, "AuxK loss weight (0: off)")
    dead_after_samples: int = param(100_000, "samples a latent must stay silent to count as dead", cli=False)

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

    threshold_beta: float = param(0.999, "decay of the running inference threshold")

    def validate(self) -> None:
        super().validate()
        require_float_range("threshold_beta", self.threshold_beta, 0.0, 1.0, high_open=True)


class TopKSAE(UntiedSAE):
    """The untied SAE with TopK inference: acts = relu of the k_g largest pre-activations (buffer k_G)."""

    encoder = "topk"

    def __init__(self, G: int, d: int, width: int, encoder: str | None = None):
        super().__init__(G, d, width, encoder)
        self.register_buffer("k_G", torch.ones(G, dtype=torch.int64))

    def activate(self, pre_GBM):
        return topk_acts(pre_GBM, self.k_G)


class BatchTopKSAE(UntiedSAE):
    """The untied SAE with BatchTopK inference: acts = pre where pre > theta (Bussmann et al. 2024),
    theta = threshold_G, the running estimate kept by training (-1 until the first batch)."""

    encoder = "batchtopk"

    def __init__(self, G: int, d: int, width: int, encoder: str | None = None):
        super().__init__(G, d, width, encoder)
        self.register_buffer("threshold_G", torch.full((G,), -1.0))

    def activate(self, pre_GBM):
        return above_threshold(pre_GBM, self.threshold_G.clamp(min=0.0)[:, None, None])


@register_method("topk")
class TopK(UntiedMethod):
    Params = TopKParams
    model_class = TopKSAE
    summary = "TopK + AuxK (Gao et al. 2024)"
    color = "tab:blue"
    bench_order = 2
    bench_axis, bench_values, bench_match_l0 = "k", (32, 64, 128), True
    bench_tied_variant = "topk-tied"
    saelens_architectures = ("topk",)
    has_aux_loss = True
    sparse_codes = True

    def init_extra(self, model, g, cfg) -> None:
        model.k_G[g] = cfg.method_params.k

    def saelens_export(self, stack):
        return "topk", self.saelens_tensors(stack), {"k": int(stack.k_G[0])}

    def saelens_import(self, stack, tensors, cfg) -> None:
        stack.k_G[0] = int(cfg["k"])

    def hyper(self, cfgs, d, device):
        params = [c.method_params for c in cfgs]
        aux_k = params[0].aux_k or max(1, d // 2)
        return {
            "aux_k": min(aux_k, cfgs[0].width),
            "aux_coef_G": per_model((p.aux_coef for p in params), device),
            "aux_on": any(p.aux_coef > 0 for p in params),        # Python values: no host sync per step
            "ks": [p.k for p in params],
            "dead_steps_G": per_model((math.ceil(p.dead_after_samples / c.batch_size) for p, c in zip(params, cfgs)),
                                      device, dtype=torch.int64),
        }

    def static_choice(self, hyper, width, device=None):
        return sparse.choose_sparse(hyper["ks"], width, can_sync=False)

    def train_acts(self, model, pre, hyper, step):
        return topk_acts(pre, model.k_G, ks=hyper["ks"]), None, {}

    def select(self, model, pre, hyper, step):
        ks = hyper["ks"]
        G, B, M = pre.shape
        if min(ks) == max(ks):
            values, index = sparse.topk_rows(pre.view(G * B, M), ks[0])
            pairs, values = sparse.ActivePairs.from_topk(index.view(G, B, -1), M, values.relu_().view(G, B, -1))
        else:   # each model's own top k_g, exactly as when it trains alone
            tops = [sparse.topk_rows(pre[g], k) for g, k in enumerate(ks)]
            pairs, values = sparse.ActivePairs.from_topk_list([t[1] for t in tops], [t[0].relu_() for t in tops], M)
        active = torch.gt(values, 0.0, out=torch.empty_like(values))
        return Selection(pairs, values, pairs.latent_sum(active), self.static_choice(hyper, model.width, pre.device),
                         slope=active)

    def _dead(self, model, hyper, step):
        """Dead latents [G, M] (bool): silent for ``dead_after_samples`` samples; models with aux_coef 0 have none."""
        dead = (step - model.last_fired_GM) >= hyper["dead_steps_G"][:, None]
        return dead & (hyper["aux_coef_G"] > 0)[:, None]

    def aux_loss(self, model, pre, x_GBD, x_hat, hyper, step):
        """The dense reference AuxK (autograd): top aux_k of the dead pre-activations."""
        if not hyper["aux_on"]:
            return None
        dead_GM = self._dead(model, hyper, step)
        has_dead_G = dead_GM.any(1)
        if pre.device.type == "cpu" and not bool(has_dead_G.any()):   # a host sync: CPU only
            return None
        masked = pre.masked_fill(~dead_GM[:, None, :], float("-inf"))
        values, index = masked.topk(hyper["aux_k"], dim=2)
        aux_acts = torch.zeros_like(pre).scatter(2, index, torch.relu(values))
        residual = (x_GBD - x_hat).detach()
        recon = torch.bmm(aux_acts, model.W_dec_GMD)
        aux = 0.5 * (recon - residual).square().sum((1, 2)) / x_GBD.shape[1]
        # models without dead latents get exactly zero (keeps stacked == sequential)
        return aux * (hyper["aux_coef_G"] * has_dead_G)

    def sparse_aux(self, model, pre, e, dec_flat, hyper, step):
        """AuxK over the dead latents only (Gao et al. 2024, A.2), with the pairs machinery.

        On the CPU the dead latents of each model are gathered first ([B, n_dead] instead of [B, M]) and
        nothing runs when none is dead; on other devices (no host sync) every latent is a candidate,
        the live ones masked, and models without dead latents get weight 0."""
        if not hyper["aux_on"]:
            return None
        G, B, M = pre.shape
        dead = self._dead(model, hyper, step)
        coef_G = hyper["aux_coef_G"] * dead.any(1)
        if pre.device.type == "cpu":
            n_dead = dead.sum(1).tolist()
            if max(n_dead) == 0:
                return None
            # per model: its dead latents' pre-activations [B, n_dead], and their top aux_k. Only positive
            # ones matter (acts = relu): when no sample has more than aux_k positive dead pre-activations,
            # the top aux_k's nonzero part is all of them, found without a selection (usually the case:
            # dead latents rarely pass 0, e.g. 6% of the top 64 in polysemy peers' uniform world).
            rows, latents, values = [], [], []
            for g, n in enumerate(n_dead):
                cols = dead[g].nonzero().squeeze(1)
                cand = pre[g].index_select(1, cols)                          # [B, n_dead]
                flat = torch.gt(cand, 0.0).view(-1).nonzero().squeeze(1)
                row = torch.div(flat, n, rounding_mode="floor")
                if flat.numel() > hyper["aux_k"] and int(torch.bincount(row).max()) > hyper["aux_k"]:
                    top_values, top_index = sparse.topk_rows(cand, min(hyper["aux_k"], n))
                    keep = torch.zeros(cand.shape, dtype=torch.bool).scatter_(1, top_index, top_values > 0)
                    flat = keep.view(-1).nonzero().squeeze(1)
                    row = torch.div(flat, n, rounding_mode="floor")
                rows.append(row)
                latents.append(cols.index_select(0, flat - row * n))
                values.append(cand.view(-1).index_select(0, flat))
            pairs, values = sparse.ActivePairs.from_model_rows(rows, latents, values, B, M)
        else:
            cand = pre.masked_fill(~dead[:, None, :], float("-inf"))
            values, index = cand.topk(hyper["aux_k"], dim=2, sorted=False)
            pairs, values = sparse.ActivePairs.from_topk(index, M, values.relu_())
        recon = pairs.decode(dec_flat, values).view(G, B, -1)
        r = recon.add_(e)                                    # z_aux W_dec - (x - x_hat)
        weight_G = coef_G / B
        aux = 0.5 * r.square().sum((1, 2)) * weight_G
        gr_flat = r.mul_(weight_G[:, None, None]).view(G * B, -1)
        g_vals = pairs.value_grad(gr_flat, dec_flat).mul_(torch.gt(values, 0.0, out=torch.empty_like(values)))
        return aux, pairs, values, gr_flat, g_vals


@register_method("batchtopk")
class BatchTopK(TopK):
    Params = BatchTopKParams
    model_class = BatchTopKSAE
    summary = "BatchTopK (Bussmann et al. 2024) + AuxK; inference by a threshold"
    color = "tab:cyan"
    bench_order = 3
    bench_values = (64,)
    step_buffers = ("threshold_G",)

    def init_extra(self, model, g, cfg) -> None:
        return None          # no k buffer: the kept count is k x B over the batch (hyper["ks"])

    def hyper(self, cfgs, d, device):
        hyper = super().hyper(cfgs, d, device)
        hyper["beta_G"] = per_model((c.method_params.threshold_beta for c in cfgs), device)
        return hyper

    def saelens_export(self, stack):
        """SAELens's jumprelu with every threshold at the inference threshold theta."""
        base = self.saelens_tensors(stack)
        theta = float(stack.threshold_G[0].clamp(min=0.0))
        return "jumprelu", {**base, "threshold": torch.full_like(base["b_enc"], theta)}, {}

    def bench_params(self, params: dict, steps: int) -> dict:
        """threshold_beta for a run of ``steps`` steps unless given (:func:`threshold_beta_for`)."""
        return params if "threshold_beta" in params else {**params, "threshold_beta": threshold_beta_for(steps)}

    def static_choice(self, hyper, width, device=None):
        """As topk's, but off the CPU in "auto" mode the dense path: the kept set's size varies (ties,
        fewer positives), and extracting it would read a count back from the device every step."""
        if device is not None and torch.device(device).type != "cpu" and sparse.decode_mode() == "auto":
            return [False] * len(hyper["ks"])
        return super().static_choice(hyper, width, device)

    def _keep(self, model, positive, hyper):
        """The k x B largest positive values of each model's batch (float mask), updating the threshold."""
        G, B, M = positive.shape
        kth_G = _kth_largest(positive.detach().reshape(G, B * M), [k * B for k in hyper["ks"]])
        # keep the k x B largest positive values (float mask; the threshold is > 0 unless fewer are positive)
        keep = torch.ge(positive.detach(), kth_G.clamp(min=torch.finfo(positive.dtype).tiny)[:, None, None],
                        out=torch.empty_like(positive))
        with torch.no_grad():
            theta, beta = model.threshold_G, hyper["beta_G"]
            fresh = theta < 0
            model.threshold_G.copy_(torch.where(fresh, kth_G, beta * theta + (1 - beta) * kth_G))
        return keep

    def train_acts(self, model, pre, hyper, step):
        positive = torch.relu(pre)
        keep = self._keep(model, positive, hyper)
        return positive * keep, None, {"threshold": model.threshold_G.clone()}

    def select(self, model, pre, hyper, step):
        keep = self._keep(model, torch.relu(pre), hyper)
        pairs = sparse.ActivePairs.from_mask(keep)
        values = pre.view(-1)[pairs.flat]            # kept values are > 0: acts = pre there
        return Selection(pairs, values, pairs.latent_count(), self.static_choice(hyper, model.width, pre.device),
                         extras={"threshold": model.threshold_G.clone()})


def threshold_beta_for(steps: int) -> float:
    """BatchTopK's threshold EMA decay for a run of ``steps`` (ours): the largest beta <= 0.999 whose
    first batch keeps a weight beta^steps <= 1e-3, i.e. beta = min(0.999, 1e-3^(1/steps)). The
    threshold then averages the last ~steps/7 batches instead of remembering the first ones (with
    0.999 over 800 steps the first batch keeps 45% of the weight and k=32 fired 20 per token)."""
    return float(min(0.999, 1e-3 ** (1.0 / max(int(steps), 1))))


def _kth_largest(values_GN: torch.Tensor, k_G: list) -> torch.Tensor:
    """The k_g-th largest entry of each row (quickselect via kthvalue: ~5x faster than topk here).
    ``k_G`` is a list of Python ints (no host sync)."""
    N = values_GN.shape[1]
    if min(k_G) == max(k_G):
        return values_GN.kthvalue(N - int(k_G[0]) + 1, dim=1).values
    return torch.stack([row.kthvalue(N - int(k) + 1).values for row, k in zip(values_GN, k_G)])
