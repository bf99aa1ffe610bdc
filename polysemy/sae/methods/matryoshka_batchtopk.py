"""``matryoshka-batchtopk``: BatchTopK with nested ("Matryoshka") reconstruction losses.

Sources: Bussmann, Nabeshima, Karvonen and Nanda, "Learning Multi-Level Features with Matryoshka Sparse
Autoencoders" (2025, arXiv:2503.17547) [paper]; Nabeshima, "Matryoshka Sparse Autoencoders" (2024)
[paper]; SAELens's ``MatryoshkaBatchTopKTrainingSAE`` (read, not copied) [SAELens].

Model: the BatchTopK SAE of topk.py (``BatchTopKSAE``: untied, unit decoder rows, b_dec at the first
batch's mean), trained by the batchtopk method's code; only the reconstruction loss differs.

  pre      = (x - b_dec) W_enc + b_enc
  training:  z = relu(pre) where it is among the k B largest of the batch, else 0  [Bussmann et al. 2024]
  inference: z = pre 1[pre > theta], theta the running threshold of batchtopk      [as batchtopk]

Nested prefixes: widths m_1 < m_2 < ... < m_L = M (the full width is always the last level). Prefix i
reconstructs with the first m_i latents only:

  x_hat^(i) = b_dec + sum_{j < m_i} z_j W_dec[j]

Loss [paper, SAELens: the sum of every level's reconstruction loss, the full width's included once]:

  L = sum_{i=1..L} 1/(2B) sum_b ||x_hat^(i)_b - x_b||^2  +  aux_coef L_aux

with the package's MSE convention (1/2 the squared norm, averaged over the batch; SAELens: the squared
norm). L_aux is batchtopk's AuxK: the dead latents' top aux_k pre-activations reconstruct the full
residual x - x_hat^(L) (SAELens's default; its per-level variant is not implemented). The history's
``mse`` is the full width's (comparable with every other method); ``loss`` is L.

Gradient: latent j of block t (m_{t-1} <= j < m_t) is in the prefixes t..L, so with e^(i) = x_hat^(i) - x

  dL/dz_bj    = (1/B) sum_{i >= t} e^(i)_b . W_dec[j]
  dL/dW_dec[j] = (1/B) sum_b z_bj sum_{i >= t} e^(i)_b,   dL/db_dec = (1/B) sum_i sum_b e^(i)_b - (encoder term)

computed by autograd on the dense step (``UntiedMethod._dense_step``; the x_hat^(i) are running sums of
per-block decodes, one [B, M] x [M, d] product in all, through the ``reconstruction`` hook); the
decoder gradient then loses its component along each row, as for every untied method. The sparse
path of topk/batchtopk is not used (our choice: the dense step is the reference; a test checks the
gradients against autograd of the naive sum of per-prefix losses).

Default widths (our choice; SAELens requires them, the paper's runs used hand-picked group sizes): a
geometric ladder halving from the full width, M/16, M/8, M/4, M/2, M (levels narrower than 1 dropped).
The widths are structural (models of one stack share them). Exported to SAELens as a jumprelu SAE
with every threshold at theta (as batchtopk, and as SAELens saves its Matryoshka SAEs).
"""

from __future__ import annotations

import dataclasses

import torch

from ...errors import require, require_int_range
from ..registry import param, register_method
from .topk import BatchTopK, BatchTopKParams

DEFAULT_LEVELS = 5      # the default ladder M/16 .. M (our choice)


@dataclasses.dataclass(frozen=True)
class MatryoshkaParams(BatchTopKParams):
    """matryoshka_widths: the nested prefix widths (strictly increasing; the full width is always the
    last level, added if absent); None = the geometric ladder M/16, M/8, M/4, M/2, M (our choice).
    The knobs of batchtopk as they are."""

    matryoshka_widths: tuple[int, ...] | None = param(
        None, "nested prefix widths, e.g. 64,256,1024 (the full width is always the last level)",
        structural=True, shown="M/16,M/8,M/4,M/2,M")

    def validate(self) -> None:
        super().validate()
        widths = self.matryoshka_widths
        if widths is not None:
            require(isinstance(widths, (list, tuple)) and len(widths) >= 1,
                    f"matryoshka_widths must be a non-empty list of widths, got {widths!r}")
            for w in widths:
                require_int_range("matryoshka_widths entries", w, 1)
            require(all(a < b for a, b in zip(widths, widths[1:])),
                    f"matryoshka_widths must be strictly increasing, got {list(widths)}")

    def validate_for(self, train_cfg) -> None:
        super().validate_for(train_cfg)
        if self.matryoshka_widths is not None:
            require_int_range("matryoshka_widths entries", self.matryoshka_widths[-1], 1, train_cfg.width)

    def widths_for(self, width: int) -> tuple[int, ...]:
        """The prefix widths for an SAE of ``width`` latents, ending at ``width``."""
        given = (self.matryoshka_widths if self.matryoshka_widths is not None
                 else [width >> level for level in range(DEFAULT_LEVELS - 1, 0, -1)])
        return tuple(sorted({w for w in given if 1 <= w < width})) + (width,)


@register_method("matryoshka-batchtopk")
class MatryoshkaBatchTopK(BatchTopK):
    """BatchTopK (its encoder, threshold, AuxK and export) with the nested-prefix loss."""

    Params = MatryoshkaParams
    summary = "Matryoshka BatchTopK (Bussmann et al. 2025; Nabeshima 2024): the sum of nested prefixes' losses"
    color = "tab:gray"
    sparse_codes = False        # the dense (autograd) step, see the module docstring

    def hyper(self, cfgs, d, device):
        hyper = super().hyper(cfgs, d, device)
        hyper["widths"] = cfgs[0].method_params.widths_for(cfgs[0].width)   # structural: one per stack
        return hyper

    def reconstruction(self, model, x_GBD, acts, hyper):
        """(x_hat of the full width, its mse, the sum of every prefix's mse)."""
        B = x_GBD.shape[1]
        x_hat = model.b_dec_GD[:, None, :]
        total, start = 0.0, 0
        for end in hyper["widths"]:
            x_hat = torch.baddbmm(x_hat, acts[:, :, start:end], model.W_dec_GMD[:, start:end])
            mse = 0.5 * (x_hat - x_GBD).square().sum((1, 2)) / B
            total, start = total + mse, end
        return x_hat, mse, total
