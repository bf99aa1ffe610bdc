"""Shared part of the untied baselines (topk, batchtopk, relu-l1, jumprelu).

Standard tricks (Bricken et al. 2023; Gao et al. 2024), all our choices as defaults:
- decoder rows W_dec [M, d] start as random unit vectors and W_enc = W_dec^T;
- b_dec starts at the mean of the first batch; b_enc at 0;
- decoder rows are kept at unit norm: the gradient component parallel to each row is removed before
  the step, and rows are renormalised after it.
Loss: 1/(2B) sum_b ||x_hat_b - x_b||^2 plus the method's penalty.

Dense step (relu-l1, and the fallback above break-even L0): gradients by autograd.
Sparse step (topk, batchtopk, jumprelu; our choice, issue 11; kernels in sparse.py): pre = (x - b_dec)
W_enc + b_enc is the one dense product; the method selects the active pairs (b, m) with acts z_bm and
slope s_bm = dz/dpre there. With e = (x_hat - x) / B and x_hat_b = sum_m z_bm W_dec[m] + b_dec:
  dL/dz_bm      = e_b . W_dec[m]                 (per-pair dot products)
  g_bm          = dL/dz_bm s_bm                  (dL/dpre on the pairs; zero elsewhere)
  dL/dW_dec[m]  = sum_b z_bm e_b                 dL/dW_enc[:, m] = sum_b g_bm (x_b - b_dec)
  dL/db_enc[m]  = sum_b g_bm                     dL/db_dec = sum_b e_b - W_enc dL/db_enc
plus the AuxK terms on their own pairs (topk.py) and jumprelu's threshold gradient (jumprelu.py). The
decoder gradient then loses its component along each row, as in the dense step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from .. import sparse
from ..models import UntiedSAE
from .base import Method, StepOutput, generator_for, normalise_rows_, remove_parallel_, unit_rows


@dataclasses.dataclass
class Selection:
    """What a sparse-coded method's encoder selected in one step (the sparse path's input).

    pairs:   the active (sample, latent) pairs; values: the acts there [nnz]; slope: dacts/dpre there
    (None = 1); fired: [G, M] samples per latent with acts > 0; choice: per-model use of the sparse
    path; penalty: [G] added to the loss, or None; theta_grad: a callable (ge_flat, dec_flat) -> the
    gradient of an extra parameter (jumprelu's log-threshold), or None; extras: [G] values to log.
    """

    pairs: sparse.ActivePairs
    values: torch.Tensor
    fired: torch.Tensor
    choice: list
    slope: torch.Tensor | None = None
    penalty: torch.Tensor | None = None
    theta_grad: Callable | None = None
    extras: dict = dataclasses.field(default_factory=dict)


class UntiedMethod(Method):
    model_class = UntiedSAE
    has_aux_loss = False

    @torch.no_grad()
    def init_model(self, cfgs, d, x0_GBD):
        model = self.new_model(cfgs, d).to(x0_GBD.device)
        for g, cfg in enumerate(cfgs):
            W = unit_rows(generator_for(cfg.seed), cfg.width, d).to(x0_GBD.device)
            model.W_dec_GMD[g] = W
            model.W_enc_GDM[g] = W.T
            model.b_dec_GD[g] = x0_GBD[g].mean(0)
            self.init_extra(model, g, cfg)
        return model

    def init_extra(self, model, g: int, cfg) -> None:
        return None

    def train_acts(self, model, pre_GBM, hyper, step):
        """(acts [G,B,M], penalty [G] or None, extras) in training mode."""
        raise NotImplementedError

    # -- the step ---------------------------------------------------------------------------------------
    sparse_codes = False      # methods whose codes are sparse implement ``select`` (the sparse path)
    step_buffers: tuple = ()  # buffers the selection updates (restored when a mixed stack runs both paths)

    def static_choice(self, hyper, width: int, device=None):
        """Per-model choice of the sparse path known before the step (list of bools), or None."""
        return None

    def select(self, model, pre_GBM, hyper, step) -> "Selection | None":
        """The active pairs of the sparse path, or None when every model takes the dense path."""
        raise NotImplementedError

    def loss_and_grads(self, model: UntiedSAE, x_GBD, hyper, step) -> StepOutput:
        if not self.sparse_codes:
            return self._dense_step(model, x_GBD, hyper, step)
        choice = self.static_choice(hyper, model.width, x_GBD.device)
        if choice is not None and not any(choice):
            return self._dense_step(model, x_GBD, hyper, step)
        saved = {name: getattr(model, name).clone() for name in self.step_buffers}
        with torch.no_grad():
            pre = model.pre_activations(x_GBD)
            sel = self.select(model, pre, hyper, step)
        if sel is None:
            for name, value in saved.items():
                getattr(model, name).copy_(value)
            return self._dense_step(model, x_GBD, hyper, step)
        out = self._sparse_step(model, x_GBD, pre, sel, hyper, step)
        if all(sel.choice):
            return out
        # a stack whose models disagree: run the dense path too and keep each model's own path's result
        after = {name: getattr(model, name).clone() for name in self.step_buffers}
        for name, value in saved.items():
            getattr(model, name).copy_(value)
        dense = self._dense_step(model, x_GBD, hyper, step)
        keep = torch.tensor(sel.choice, device=x_GBD.device)

        def pick(a, b):
            return None if a is None else torch.where(keep.view(-1, *[1] * (a.dim() - 1)), a, b)

        for name, value in after.items():
            getattr(model, name).copy_(pick(value, getattr(model, name)))
        return StepOutput(loss_G=pick(out.loss_G, dense.loss_G), mse_G=pick(out.mse_G, dense.mse_G),
                          grads=[pick(a, b) for a, b in zip(out.grads, dense.grads)],
                          fired_GM=pick(out.fired_GM, dense.fired_GM),
                          extras={k: pick(v, dense.extras[k]) for k, v in out.extras.items()})

    def _dense_step(self, model: UntiedSAE, x_GBD, hyper, step) -> StepOutput:
        """Dense [B, M] products and autograd: the reference path (and the fallback above break-even)."""
        params = model.trainable()
        with torch.enable_grad():
            pre = model.pre_activations(x_GBD)
            acts, penalty, extras = self.train_acts(model, pre, hyper, step)
            x_hat, mse, recon = self.reconstruction(model, x_GBD, acts, hyper)
            loss = recon if penalty is None else recon + penalty
            aux = self.aux_loss(model, pre, x_GBD, x_hat, hyper, step)
            if aux is not None:
                loss = loss + aux
            if self.has_aux_loss:  # logged every step (0 without dead latents) so stacks log like single runs
                extras["aux_loss"] = aux.detach() if aux is not None else torch.zeros_like(mse.detach())
            grads = torch.autograd.grad(loss.sum(), params, allow_unused=True)
        grads = list(grads)
        i = model.trainable_names.index("W_dec_GMD")
        remove_parallel_(grads[i], model.W_dec_GMD.detach())
        fired = torch.gt(acts.detach(), 0.0, out=torch.empty_like(acts)).sum(1)   # float mask, no bool copy
        return StepOutput(loss_G=loss.detach(), mse_G=mse.detach(), grads=grads, fired_GM=fired, extras=extras)

    def reconstruction(self, model: UntiedSAE, x_GBD, acts, hyper):
        """(x_hat, mse, reconstruction loss) of the dense step, differentiable: the hook that sees the
        input, the codes and the decoder. Here the loss is the mse, 1/(2B) sum_b ||x_hat_b - x_b||^2
        (matryoshka-batchtopk adds its nested prefixes)."""
        x_hat = torch.baddbmm(model.b_dec_GD[:, None, :], acts, model.W_dec_GMD)
        mse = 0.5 * (x_hat - x_GBD).square().sum((1, 2)) / x_GBD.shape[1]
        return x_hat, mse, mse

    def _sparse_step(self, model: UntiedSAE, x_GBD, pre, sel: "Selection", hyper, step) -> StepOutput:
        """The step over the active pairs only (module docstring, "Sparse step")."""
        G, B, M, D = model.G, x_GBD.shape[1], model.width, model.d
        pairs = sel.pairs
        W_dec = model.W_dec_GMD.detach()
        W_enc = model.W_enc_GDM.detach()
        dec_flat = W_dec.reshape(G * M, D)
        e = pairs.decode(dec_flat, sel.values).view(G, B, D)
        e.add_(model.b_dec_GD.detach()[:, None, :]).sub_(x_GBD)                # x_hat - x
        mse = 0.5 * e.square().sum((1, 2)) / B
        ge = e / B                                                                # dL/dx_hat
        ge_flat = ge.view(G * B, D)
        g_vals = pairs.value_grad(ge_flat, dec_flat)                             # dL/dacts on the pairs
        if sel.slope is not None:
            g_vals = g_vals * sel.slope                                           # dL/dpre on the pairs
        xc_flat = (x_GBD - model.b_dec_GD.detach()[:, None, :]).reshape(G * B, D)
        g_benc = pairs.latent_sum(g_vals)
        loss = mse if sel.penalty is None else mse + sel.penalty
        extras = dict(sel.extras)
        extra_grads = {}
        if sel.theta_grad is not None:
            extra_grads["log_threshold_GM"] = sel.theta_grad(ge_flat, dec_flat)
        dec_terms = [(pairs, ge_flat, sel.values)]                              # acts^T ge
        enc_terms = [(pairs, xc_flat, g_vals)]                                  # (x - b_dec)^T dpre
        if self.has_aux_loss:
            aux = self.sparse_aux(model, pre, e, dec_flat, hyper, step)
            if aux is None:
                extras["aux_loss"] = torch.zeros_like(mse)
            else:
                aux_loss, aux_pairs, aux_values, gr_flat, g_aux = aux
                loss = loss + aux_loss
                extras["aux_loss"] = aux_loss
                dec_terms.append((aux_pairs, gr_flat, aux_values))
                enc_terms.append((aux_pairs, xc_flat, g_aux))
                g_benc = g_benc + aux_pairs.latent_sum(g_aux)
        # each weight's gradient terms (main, AuxK) in one kernel call; at small d both share one sort
        shared = (sparse.LatentMajor([p for p, _, _ in dec_terms])
                  if D <= sparse.CSR_MAX_D and x_GBD.device.type == "cpu" else None)
        g_dec = sparse.weight_grad_terms(dec_terms, shared)
        g_encT = sparse.weight_grad_terms(enc_terms, shared)
        g_bdec = ge.sum(1) - (W_enc * g_benc[:, None, :]).sum(2)
        g_dec = remove_parallel_(g_dec.view(G, M, D), W_dec)
        named = {"W_enc_GDM": g_encT.view(G, M, D).transpose(1, 2).contiguous(), "b_enc_GM": g_benc,
                 "W_dec_GMD": g_dec, "b_dec_GD": g_bdec, **extra_grads}
        grads = [named.get(name) for name in model.trainable_names]
        return StepOutput(loss_G=loss, mse_G=mse, grads=grads, fired_GM=sel.fired, extras=extras)

    def sparse_aux(self, model, pre, e, dec_flat, hyper, step):
        """An auxiliary loss on its own pairs, or None: (loss [G], pairs, their acts [nnz], the loss's
        gradient with respect to x_hat-space outputs [G*B, D], dL/dpre on the pairs [nnz])."""
        return None

    def aux_loss(self, model, pre, x_GBD, x_hat, hyper, step):
        return None

    def after_update(self, model, hyper) -> None:
        normalise_rows_(model.W_dec_GMD.data)

    # -- SAELens: the untied layout is SAELens's own ------------------------------------------------
    def saelens_tensors(self, stack) -> dict:
        """W_enc, b_enc, W_dec, b_dec of model 0 (ours: pre = (x - b_dec) W_enc + b_enc, SAELens's with
        apply_b_dec_to_input)."""
        return {"W_enc": stack.W_enc_GDM.detach()[0], "b_enc": stack.b_enc_GM.detach()[0],
                "W_dec": stack.W_dec_GMD.detach()[0], "b_dec": stack.b_dec_GD.detach()[0]}

    def saelens_export(self, stack):
        return "standard", self.saelens_tensors(stack), {}
