"""Shared part of the untied baselines (topk, batchtopk, relu-l1, jumprelu).

Standard tricks (Bricken et al. 2023; Gao et al. 2024), all our choices as defaults:
- decoder rows W_dec [M, d] start as random unit vectors and W_enc = W_dec^T;
- b_dec starts at the mean of the first batch; b_enc at 0;
- decoder rows are kept at unit norm: the gradient component parallel to each row is removed before
  the step, and rows are renormalised after it.
Loss: 1/(2B) sum_b ||x_hat_b - x_b||^2 plus the method's penalty; gradients by autograd.
"""

from __future__ import annotations

import torch

from ..models import UntiedSAE
from .base import Method, StepOutput, generator_for, normalise_rows_, remove_parallel_, unit_rows


class UntiedMethod(Method):
    encoder = "relu"
    has_aux_loss = False

    def new_model(self, cfgs, d):
        return UntiedSAE(len(cfgs), d, cfgs[0].width, encoder=self.encoder)

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

    def loss_and_grads(self, model: UntiedSAE, x_GBD, hyper, step) -> StepOutput:
        B = x_GBD.shape[1]
        params = model.trainable()
        with torch.enable_grad():
            pre = model.pre_activations(x_GBD)
            acts, penalty, extras = self.train_acts(model, pre, hyper, step)
            x_hat = torch.baddbmm(model.b_dec_GD[:, None, :], acts, model.W_dec_GMD)
            mse = 0.5 * (x_hat - x_GBD).square().sum((1, 2)) / B
            loss = mse if penalty is None else mse + penalty
            aux = self.aux_loss(model, pre, x_GBD, x_hat, hyper, step)
            if aux is not None:
                loss = loss + aux
            if self.has_aux_loss:  # logged every step (0 without dead latents) so stacks log like single runs
                extras["aux_loss"] = aux.detach() if aux is not None else torch.zeros_like(mse.detach())
            grads = torch.autograd.grad(loss.sum(), params, allow_unused=True)
        grads = [g if g is not None else None for g in grads]
        i = model.trainable_names.index("W_dec_GMD")
        remove_parallel_(grads[i], model.W_dec_GMD.detach())
        fired = (acts.detach() > 0).sum(1)
        return StepOutput(loss_G=loss.detach(), mse_G=mse.detach(), grads=grads, fired_GM=fired, extras=extras)

    def aux_loss(self, model, pre, x_GBD, x_hat, hyper, step):
        return None

    def after_update(self, model, hyper) -> None:
        normalise_rows_(model.W_dec_GMD.data)
