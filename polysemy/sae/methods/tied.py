"""The paper's tied SAE trained with a hand-written backward pass (shared by gba, ba and ba-theory).

Loss (docs/paper.md section 3): L = 1/(2B) sum_b ||x_hat_b - x_b||^2 with
x_hat = sum_m z_m (a_m w_m) + b_pre, z = phi(u, y), u = w^T (x - b_pre), y = u + b.
With e = (x_hat - x) / B, s_m = a_m w_m, P = z^T e [M, d] and dz = dz/du:
  dL/dz     = e s^T                      (one [B, d] x [d, M] product)
  g_u       = dL/dz * dz
  dL/dw_m   = a_m P_m + sum_b g_u[b,m] (x_b - b_pre)
  dL/da_m   = w_m . P_m                  (so no [B, M] product is needed for a)
  dL/db_pre = sum_b e_b - (sum_b g_u[b]) w
Sparse step (our choice, issue 11; sparse.py): the same quantities over the active pairs (b, m) only,
with q_bm = e_b . w_m (one per-pair dot product): x_hat_b = sum_m (a_m z_bm) w_m + b_pre (a decode by
embedding_bag), dL/dz_bm = a_m q_bm, dL/da_m = sum_b z_bm q_bm (= w_m . P_m), and dL/dw_m as above from
the pairs (embedding_bag's weight backward, both terms in one call). Only u = w^T (x - b_pre) stays a
dense [B, M] product: the threshold and GBA's statistics (peak = max_b u + b) need every projection.
Biases b get no gradient [paper]. Written by hand (our choice, for speed): autograd would also form the
[B, d] gradient of (x - b_pre) and extra [B, M] temporaries; a test checks it against autograd.
Large [B, M] temporaries live in a per-model workspace and masks are float (no bool tensors), which
roughly halves the step time on CPU.

Input scale (our choice; docs/paper.md section 3 assumes inputs of order 1 [inferred]): with the method
parameter ``input_scale`` the SAE trains on x / c for a fixed scalar c per model, so the bias clamp
[-1, 0] of bias adaptation sees O(1) inputs whatever the data's units. "none": c = 1 (default);
"mean-norm": c = mean_b ||x_b - xbar|| over the first batch (xbar its mean), estimated once at
initialisation and then frozen (a saved buffer); a positive number: that c. Centred norm, because the
SAE sees x - b_pre and b_pre starts at xbar: the projections the biases compete with scale with the
spread of x around its mean, not with a common offset. The model maps back to the scale of x in
encode/decode (models.TiedSAE); the logged loss and mse are in units of x^2 (times c^2).

Pre-bias (method parameter ``pre_bias``): "train" (default; docs/paper.md section 3 gives b_pre gradients
[inferred]) or "fixed": b_pre stays at its initialisation, the first batch's mean (our choice). Why
"fixed" exists: with a ReLU or smooth ReLU a trained b_pre drifts far from the data mean until every
projection clears the bias floor -1 and the SAE turns linear (docs/experiments.md, "Activation
functions"). It is a per-model 0/1 factor on dL/db_pre (hyper ``train_pre_bias_G``); with a zero
gradient from the start Adam's moments stay 0 and its update is exactly 0, so b_pre keeps its initial
value bit for bit, and models with different settings can share a stack.
"""

from __future__ import annotations

import dataclasses

import torch

from .. import sparse
from ..activations import tied_activation
from ..models import TiedSAE
from ..registry import MethodParams, param
from ...errors import ConfigError, require, require_float_range
from .base import Method, StepOutput, generator_for, normalise_rows_, per_model, remove_parallel_, unit_rows

INPUT_SCALES = ("none", "mean-norm")
PRE_BIASES = ("train", "fixed")


def validate_pre_bias(value) -> None:
    """``pre_bias`` must be "train" or "fixed"."""
    require(isinstance(value, str) and value in PRE_BIASES,
            f"pre_bias must be one of {list(PRE_BIASES)}, got {value!r}")


def validate_input_scale(value) -> None:
    """``input_scale`` must be "none", "mean-norm" or a positive finite number."""
    ok = value in INPUT_SCALES if isinstance(value, str) else (
        isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < float(value) < float("inf"))
    require(ok, f"input_scale must be one of {list(INPUT_SCALES)} or a positive number, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TiedParams(MethodParams):
    """Knobs of every tied SAE (gba, ba, ba-theory).

    a0:           initial output scale a_m (0.01; our choice from docs/recovery-study.md: a small a0
                  decouples the neurons early, as the theory's a -> 0; FRR(0.99) 0.35 -> 0.80).
    smooth_width: width h of the smooth ReLU (0.1; our choice).
    input_scale:  "none" (default here and for ba-theory, gba-paper; gba and ba default to "mean-norm"),
                  "mean-norm" or a positive number c: train on x / c, c estimated once
                  from the first batch as the mean centred norm (our choice; see the module docstring),
                  so the bias clamp [-1, 0] sees O(1) inputs. encode/decode/W_dec stay in units of x.
    pre_bias:     "train" (default; b_pre gets gradients, docs/paper.md section 3 [inferred]) or "fixed":
                  b_pre stays at the first batch's mean (our choice; see the module docstring).
    """

    a0: float = param(0.01, "initial output scale a_m (ba-theory: the fixed one)")
    smooth_width: float = param(0.1, "width h of the smooth ReLU")
    input_scale: str | float = param("none", "none, mean-norm or a number c: train on x / c")
    pre_bias: str = param("train", "train, or fixed at the first batch's mean")

    def validate(self) -> None:
        validate_input_scale(self.input_scale)
        validate_pre_bias(self.pre_bias)
        require_float_range("a0", self.a0, 0.0, 100.0, low_open=True)
        require_float_range("smooth_width", self.smooth_width, 0.0, 10.0, low_open=True)


def input_scale_from_batch(setting, x0_BD: torch.Tensor) -> float:
    """The fixed input scale c for one model (see the module docstring)."""
    if isinstance(setting, str):
        if setting == "none":
            return 1.0
        c = float((x0_BD - x0_BD.mean(0)).norm(dim=1).mean())
        if not c > 0.0 or c == float("inf"):
            raise ConfigError(f"input_scale='mean-norm' needs a first batch with spread, got mean centred norm {c}")
        return c
    return float(setting)


class TiedMethod(Method):
    """Base of the tied methods. Subclasses add their state (``init_state``) and bias hooks."""

    model_class = TiedSAE
    spherical = False      # project w's gradient on the sphere's tangent space (ba-theory)
    train_scale = True     # whether a gets gradients

    def activation(self, params) -> str:
        return params.activation

    def decoder(self, params) -> str:
        return getattr(params, "decoder", "tied")

    def model_structure(self, cfg) -> dict:
        params = cfg.method_params
        return {"activation": self.activation(params), "decoder": self.decoder(params)}

    def hyper(self, cfgs, d, device):
        """Per-model factor on dL/db_pre: 1 for pre_bias="train", 0 for "fixed"."""
        return {"train_pre_bias_G": per_model((float(c.method_params.pre_bias == "train") for c in cfgs), device)}

    def init_state(self, model, g: int, params, generator: torch.Generator) -> None:
        """Hook at initialisation of model g, after its rows (drawn from ``generator``): the method's
        own state (gba: groups and targets, drawn from the same generator)."""
        return None

    @torch.no_grad()
    def init_model(self, cfgs, d, x0_GBD):
        model = self.new_model(cfgs, d).to(x0_GBD.device)
        for g, cfg in enumerate(cfgs):
            params = cfg.method_params
            gen = generator_for(cfg.seed)
            model.w_GMD[g] = unit_rows(gen, cfg.width, d)
            if model.decoder == "untied":
                model.v_GMD[g] = model.w_GMD[g]          # the decoder starts tied to the encoder
            model.a_GM[g] = params.a0
            # b_pre starts at the mean of the first batch (standard trick; our choice for the tied SAE)
            model.b_pre_GD[g] = x0_GBD[g].mean(0)
            self.init_state(model, g, params, gen)
            model.smooth_width_G[g] = getattr(params, "smooth_width", 0.1)
            c = input_scale_from_batch(getattr(params, "input_scale", "none"), x0_GBD[g])
            model.input_scale_G[g] = c
            # b_pre starts at the mean of the first batch on the SAE's scale x / c
            model.b_pre_GD[g] /= c
        self.init_biases(model, cfgs, x0_GBD)
        return model

    def init_biases(self, model, cfgs, x0_GBD) -> None:
        """Hook at initialisation, after w, b_pre and c are set: biases start at 0 unless overridden."""
        return None

    def set_biases(self, model, u_GBM: torch.Tensor, hyper: dict, step: int) -> None:
        """Hook before the activation: ba-theory sets biases from the batch here."""
        return None

    def accumulate_statistics(self, model, u_GBM, fired_GM, hyper, step) -> None:
        """Hook after the activation (u = projections; y = u + b): BA/GBA accumulate statistics here."""
        return None

    def loss_and_grads(self, model: TiedSAE, x_GBD, hyper, step) -> StepOutput:
        G, B, M = model.G, x_GBD.shape[1], model.width
        c_G = model.input_scale_G
        x_GBD = x_GBD / c_G[:, None, None]        # the SAE works on x / c (c = 1: x bit for bit; no host sync)
        w, b_pre = model.w_GMD, model.b_pre_GD
        xc = x_GBD - b_pre[:, None, :]
        u = _bmm(xc, w.transpose(1, 2), model, "u", (G, B, M))
        self.set_biases(model, u, hyper, step)
        y = None if model.activation == "jumprelu" else torch.add(u, model.bias_GM[:, None, :].to(u.dtype),
                                                                  out=_work(model, "y", u.shape, u))
        choice, mask = None, None
        if u.device.type == "cpu" or sparse.decode_mode() != "auto":
            # the active set y > 0 as a byte mask; its positions, counted per model, choose the path
            # (a host sync: CPU only, or when a mode is forced)
            mask = _active(model, u, y, torch.bool)
            flat = sparse.nonzero_flat(mask)
            choice = sparse.choose_sparse(sparse.count_per_model(flat, G, B * M) / B, M, can_sync=True)
        if choice is not None and any(choice):
            pairs = sparse.ActivePairs.from_mask(mask, flat)
            fired = pairs.latent_count()
            self.accumulate_statistics(model, u, fired, hyper, step)
            mse, grads = self._sparse_grads(model, x_GBD, xc, u, pairs, hyper)
            if not all(choice):  # a stack whose models disagree: each model keeps its own path's result
                dense_mse, dense_grads, _ = self._dense_grads(model, x_GBD, xc, u, y, hyper)
                keep = torch.tensor(choice, device=u.device)
                mse = torch.where(keep, mse, dense_mse)
                grads = [None if g is None else torch.where(keep.view(-1, *[1] * (g.dim() - 1)), g, h)
                         for g, h in zip(grads, dense_grads)]
        else:
            mse, grads, fired = self._dense_grads(model, x_GBD, xc, u, y, hyper)
            self.accumulate_statistics(model, u, fired, hyper, step)
        grads[2].mul_(hyper["train_pre_bias_G"][:, None])              # 0 for pre_bias="fixed"
        if self.spherical:
            remove_parallel_(grads[0], w)
        mse = mse * c_G.square()                                        # report in units of x^2
        return StepOutput(loss_G=mse, mse_G=mse, grads=grads, fired_GM=fired)

    def _dense_grads(self, model: TiedSAE, x_GBD, xc, u, y, hyper):
        """(mse [G], [g_w, g_a, g_b_pre], fired [G, M]) with dense [B, M] products (module docstring)."""
        B = x_GBD.shape[1]
        w, a, b_pre = model.w_GMD, model.a_GM, model.b_pre_GD
        if model.activation == "jumprelu":
            # z = u * 1[u > -b]; float mask written directly (bool tensors are slow on CPU)
            dz = _active(model, u, y, u.dtype)
            z = torch.mul(u, dz, out=_work(model, "z", u.shape, u))
            active = dz
        else:
            z, dz = tied_activation(model.activation, u, y, model.smooth_width_G[:, None, None])
            active = _active(model, u, y, u.dtype)
        fired = active.sum(1)
        untied = model.decoder == "untied"
        dec = model.decoder_directions()                              # w (tied) or v (untied)
        scaled_w = dec * a[:, :, None]                                # s_m = a_m w_m (a_m v_m untied)
        e = torch.baddbmm(b_pre[:, None, :] - x_GBD, z, scaled_w)     # x_hat - x
        mse = 0.5 * e.square().sum((1, 2)) / B
        e.div_(B)                                                     # dL/dx_hat
        g_u = _bmm(e, scaled_w.transpose(1, 2), model, "g", u.shape).mul_(dz)
        P = torch.bmm(z.transpose(1, 2), e)                           # [G, M, D]
        g_a = (P * dec).sum(2) if self.train_scale else None
        if untied:   # dL/dv_m = a_m P_m; dL/dw_m = sum_b g_u[b,m] (x_b - b_pre)
            g_v = P.mul_(a[:, :, None])
            g_w = torch.bmm(g_u.transpose(1, 2), xc)
        else:
            g_w = torch.baddbmm(P.mul_(a[:, :, None]), g_u.transpose(1, 2), xc)
        g_b_pre = e.sum(1) - torch.bmm(g_u.sum(1, keepdim=True), w)[:, 0, :]
        return mse, [g_w, g_a, g_b_pre] + ([g_v] if untied else []), fired

    def _sparse_grads(self, model: TiedSAE, x_GBD, xc, u, pairs, hyper):
        """(mse [G], [g_w, g_a, g_b_pre(, g_v)]) over the active pairs only (module docstring, "Sparse step")."""
        G, B, D = model.G, x_GBD.shape[1], model.d
        M = model.width
        w, a, b_pre = model.w_GMD, model.a_GM, model.b_pre_GD
        untied = model.decoder == "untied"
        u_vals = u.view(-1)[pairs.flat]
        dz_vals = None
        if model.activation == "jumprelu":
            z_vals = u_vals                                           # z = u on the active set
        else:
            y_vals = u_vals + model.bias_GM.view(-1)[pairs.latent]
            if model.activation == "relu":
                z_vals = y_vals
            else:                                                      # smooth-relu, y > 0 on the pairs
                h = model.smooth_width_G[pairs.model_of_pair()]
                dz_vals = (y_vals / h).clamp_(0.0, 1.0)
                z_vals = torch.where(y_vals >= h, y_vals - 0.5 * h, 0.5 * y_vals * dz_vals)
        dec_flat = model.decoder_directions().reshape(G * M, D)        # w (tied) or v (untied)
        a_vals = a.reshape(-1)[pairs.latent]
        az_vals = z_vals * a_vals                                       # z a_m: decode with the unit rows
        e = pairs.decode(dec_flat, az_vals).view(G, B, D)
        e.add_(b_pre[:, None, :]).sub_(x_GBD)                          # x_hat - x
        mse = 0.5 * e.square().sum((1, 2)) / B
        e.div_(B)
        e_flat = e.view(G * B, D)
        q_vals = pairs.value_grad(e_flat, dec_flat)                   # e_b . w_m (v_m) on the pairs
        g_vals = q_vals * a_vals                                       # dL/dz = e_b . s_m
        if dz_vals is not None:
            g_vals = g_vals * dz_vals                                  # g_u on the pairs
        g_a = pairs.latent_sum(z_vals * q_vals) if self.train_scale else None   # dir_m . P_m
        xc_flat = xc.reshape(G * B, D)
        if untied:   # dL/dv_m = a_m P_m, dL/dw_m = sum_b g_u[b,m] xc_b: one sort shared at small d
            shared = (sparse.LatentMajor([pairs]) if D <= sparse.CSR_MAX_D and xc.device.type == "cpu" else None)
            g_v = sparse.weight_grad_terms([(pairs, e_flat, az_vals)], shared).view(G, M, D)
            g_w = sparse.weight_grad_terms([(pairs, xc_flat, g_vals)], shared).view(G, M, D)
        else:        # dL/dw_m = a_m P_m + sum_b g_u[b,m] xc_b, both terms in one kernel call
            g_w = pairs.weight_grad_sum([e_flat, xc_flat], [az_vals, g_vals]).view(G, M, D)
        g_b_pre = e.sum(1) - torch.bmm(pairs.latent_sum(g_vals)[:, None, :], w)[:, 0, :]
        return mse, [g_w, g_a, g_b_pre] + ([g_v] if untied else [])

    def after_update(self, model, hyper) -> None:
        normalise_rows_(model.w_GMD)   # ||w_m|| = 1 after each step [paper]
        if model.decoder == "untied":
            normalise_rows_(model.v_GMD)

    def log_values(self, model, hyper=None) -> dict:
        return {"bias_mean": model.bias_GM.mean(1), "scale_mean": model.a_GM.detach().mean(1)}

    def saelens_export(self, stack):
        """W_enc = w^T, W_dec = a w (untied: a v), b_dec = b_pre, after folding the input scale c into
        b_pre and the biases (the c = 1 form, ``TiedSAE.unscaled_copy``). JumpReLU with biases b <= 0 is
        SAELens's jumprelu with threshold -b; ReLU is "standard" with b_enc = b; the smooth ReLU has
        no SAELens form."""
        s = stack.unscaled_copy()
        W_enc, W_dec, b_dec = s.w_GMD.detach()[0].T, s.decoder_rows()[0], s.b_pre_GD.detach()[0]
        bias = s.bias_GM[0]
        if s.activation == "jumprelu":
            if bool((bias > 0).any()):
                raise ConfigError("export_saelens: a tied JumpReLU with positive biases has no SAELens form")
            return "jumprelu", {"W_enc": W_enc, "b_enc": torch.zeros_like(bias), "W_dec": W_dec,
                                "b_dec": b_dec, "threshold": -bias}, {}
        if s.activation == "relu":
            return "standard", {"W_enc": W_enc, "b_enc": bias, "W_dec": W_dec, "b_dec": b_dec}, {}
        raise ConfigError(f"export_saelens: activation {s.activation!r} has no SAELens architecture "
                          "(use jumprelu or relu)")


def _active(model, u, y, dtype) -> torch.Tensor:
    """The active set y = u + b > 0 as a ``dtype`` mask (jumprelu: u > -b, as its dense step has it)."""
    out = _work(model, f"active_{dtype}", u.shape, u, dtype)
    if y is None:
        return torch.gt(u, -model.bias_GM[:, None, :], out=out)
    return torch.gt(y, 0.0, out=out)


def _bmm(a, b, model, name, shape):
    """bmm into the workspace ``name``; under autocast a fresh output (``out=`` is not autocast)."""
    if torch.is_autocast_enabled(a.device.type):
        return torch.bmm(a, b)
    return torch.bmm(a, b, out=_work(model, name, shape, a))


def _work(model, name: str, shape, like: torch.Tensor, dtype=None) -> torch.Tensor:
    """A reusable scratch tensor of the model (not a buffer: never saved)."""
    dtype = like.dtype if dtype is None else dtype
    space = model.__dict__.setdefault("_workspace", {})
    buf = space.get(name)
    if buf is None or buf.shape != tuple(shape) or buf.device != like.device or buf.dtype != dtype:
        buf = space[name] = torch.empty(tuple(shape), dtype=dtype, device=like.device)
    return buf
