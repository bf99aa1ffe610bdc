"""The tied-TopK arm of the LLM benchmark: TopK with the encoder tied to the decoder.

Why it exists: GBA's default SAE and every baseline differ in two things at once, the sparsity
mechanism (bias adaptation against TopK) and, for the paper's GBA, the architecture (tied: one matrix
encodes and decodes). The benchmark separates them with two extra arms: GBA with an untied decoder
(``gba`` with ``decoder="untied"``, GBA's own option) and TopK with a tied one, registered here as
``topk-tied`` because no method of ``polysemy.sae`` ties TopK.

``topk-tied`` (ours): the TopK SAE of ``polysemy.sae.methods.topk`` (AuxK loss, unit decoder rows) with
W_enc = W_dec^T, so

    pre = (x - b_dec) W_dec^T + b_enc,   acts = TopK_k(relu(pre)),   x_hat = acts W_dec + b_dec,

and W_dec gets the gradient of both uses. The untied class's W_enc parameter is left in place (the
stacked model creates it) but is neither trained nor read.
"""

from __future__ import annotations

import torch

from ..sae.methods.topk import TopK
from ..sae.models import UntiedSAE
from ..sae.registry import _METHODS, register_method

TIED_TOPK = "topk-tied"


class TiedTopKSAE(UntiedSAE):
    """UntiedSAE whose pre-activations use W_dec^T (see the module docstring)."""

    def __init__(self, G: int, d: int, width: int, encoder: str = "topk"):
        super().__init__(G, d, width, encoder=encoder)
        self.trainable_names = tuple(n for n in self.trainable_names if n != "W_enc_GDM")

    def pre_activations(self, x_GBD: torch.Tensor) -> torch.Tensor:
        W_DM = self.W_dec_GMD.transpose(1, 2)
        shift_GM = self.b_enc_GM - torch.bmm(self.b_dec_GD[:, None, :], W_DM)[:, 0, :]
        return torch.baddbmm(shift_GM[:, None, :], x_GBD, W_DM)


if TIED_TOPK not in _METHODS:
    @register_method(TIED_TOPK)
    class TiedTopK(TopK):
        """TopK with W_enc = W_dec^T (the benchmark's tied-TopK arm)."""

        def new_model(self, cfgs, d):
            return TiedTopKSAE(len(cfgs), d, cfgs[0].width, encoder=self.encoder)
