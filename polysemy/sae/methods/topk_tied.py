"""``topk-tied``: TopK with the encoder tied to the decoder (the LLM benchmark's tied-TopK arm).

Why it exists: GBA's default SAE and every baseline differ in two things at once, the sparsity
mechanism (bias adaptation against TopK) and, for the paper's GBA, the architecture (tied: one matrix
encodes and decodes). The benchmark separates them with two extra arms: GBA with the other decoder
(``gba`` with ``decoder="tied"``/``"untied"``, GBA's own option) and TopK with a tied one, this method.

``topk-tied`` (ours): the TopK SAE of ``topk.py`` (AuxK loss, unit decoder rows) with W_enc = W_dec^T, so

    pre = (x - b_dec) W_dec^T + b_enc,   acts = TopK_k(relu(pre)),   x_hat = acts W_dec + b_dec,

and W_dec gets the gradient of both uses. The untied class's W_enc parameter is left in place (the
stacked model creates it) but is neither trained nor read; the SAELens export writes W_enc = W_dec^T.
"""

from __future__ import annotations

import torch

from ..registry import register_method
from .topk import TopK, TopKSAE

TIED_TOPK = "topk-tied"


class TiedTopKSAE(TopKSAE):
    """TopKSAE whose pre-activations use W_dec^T (see the module docstring)."""

    def __init__(self, G: int, d: int, width: int, encoder: str | None = None):
        super().__init__(G, d, width, encoder)
        self.trainable_names = tuple(n for n in self.trainable_names if n != "W_enc_GDM")

    def pre_activations(self, x_GBD: torch.Tensor) -> torch.Tensor:
        W_DM = self.W_dec_GMD.transpose(1, 2)
        shift_GM = self.b_enc_GM - torch.bmm(self.b_dec_GD[:, None, :], W_DM)[:, 0, :]
        return torch.baddbmm(shift_GM[:, None, :], x_GBD, W_DM)


@register_method(TIED_TOPK)
class TiedTopK(TopK):
    """TopK with W_enc = W_dec^T (the benchmark's tied-TopK arm)."""

    model_class = TiedTopKSAE
    summary = "TopK + AuxK with W_enc = W_dec^T (llm-bench's tied-TopK arm)"
    color = "tab:olive"

    def saelens_tensors(self, stack) -> dict:
        return {**super().saelens_tensors(stack), "W_enc": stack.W_dec_GMD.detach()[0].T}
