"""CE-loss recovered: splice an SAE into the model at the site and measure next-token cross-entropy.

    CE-loss recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean)     (docs/paper.md section 9, the field's definition)

- CE_clean: the unmodified model.
- CE_zero: the site's output replaced by zeros (zero ablation).
- CE_sae: the site's output ``a`` replaced by ``N^-1(sae(N(a)))``, ``N`` the store's normaliser, so the
  reconstruction is brought back to the model's scale with the outlier rescaling undone.
Positions the SAE never saw pass through unchanged in both the zero and the SAE run (our choice, the
same rule as training): position 0 (BOS) and sink tokens (``Normalizer.is_sink``). The CE averages the
predictions made at positions 1 .. T-2 (of tokens 2 .. T-1), the ones downstream of a replaced position.
A perfect reconstruction therefore gives exactly 1.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import require
from .normalize import Normalizer
from .sites import autocast, splice

Replace = Callable[[torch.Tensor], torch.Tensor]


def ce_loss_recovered(ce_clean: float, ce_zero: float, ce_sae: float) -> float:
    """``(ce_zero - ce_sae) / (ce_zero - ce_clean)``; nan when zero ablation costs nothing."""
    gap = ce_zero - ce_clean
    return float("nan") if gap == 0 else (ce_zero - ce_sae) / gap


def replace_positions(a_BTD: torch.Tensor, normalizer: Normalizer, new: Replace) -> torch.Tensor:
    """``a`` with ``new`` applied to the rows at positions >= 1 that are not sinks (the rest unchanged)."""
    out = a_BTD.clone()
    mask_BT = ~normalizer.is_sink(a_BTD.float())
    mask_BT[:, 0] = False
    rows = a_BTD[mask_BT].float()
    if rows.shape[0]:
        out[mask_BT] = new(rows).to(out.dtype)
    return out


def sae_replacement(sae: Callable[[torch.Tensor], torch.Tensor], normalizer: Normalizer) -> Replace:
    """Rows at model scale -> the SAE's reconstruction at model scale: ``N^-1(sae(N(a)))``."""
    return lambda rows: normalizer.invert(sae(normalizer.apply(rows)).float())


class CEEvaluator:
    """Computes CE_clean and CE_zero once for fixed contexts, then CE_sae and the recovered fraction."""

    def __init__(self, model: torch.nn.Module, contexts_CT: torch.Tensor, layer: int, site: str,
                 normalizer: Normalizer, dtype: str = "float32", batch_contexts: int = 8):
        require(contexts_CT.ndim == 2 and contexts_CT.shape[1] >= 3,
                f"CE contexts must be [N, T>=3] token ids, got shape {tuple(contexts_CT.shape)}")
        self.model, self.contexts_CT, self.layer, self.site = model, contexts_CT, layer, site
        self.normalizer, self.dtype, self.batch_contexts = normalizer, dtype, batch_contexts
        self.ce_clean = self.ce(None)
        self.ce_zero = self.ce(lambda rows: torch.zeros_like(rows))

    @torch.no_grad()
    def ce(self, new: Replace | None) -> float:
        """Mean next-token CE (nats) with rows replaced by ``new`` (``None``: the clean model)."""
        device = next(self.model.parameters()).device
        total, count = 0.0, 0
        for b in range(0, self.contexts_CT.shape[0], self.batch_contexts):
            ids = self.contexts_CT[b:b + self.batch_contexts].to(device)
            with autocast(str(device), self.dtype):
                if new is None:
                    logits = self.model(input_ids=ids, use_cache=False).logits
                else:
                    fn = lambda a: replace_positions(a, self.normalizer, new)  # noqa: E731
                    with splice(self.model, self.layer, self.site, fn):
                        logits = self.model(input_ids=ids, use_cache=False).logits
            pred = logits[:, 1:-1].float()
            total += float(F.cross_entropy(pred.reshape(-1, pred.shape[-1]), ids[:, 2:].reshape(-1), reduction="sum"))
            count += ids[:, 2:].numel()
        return total / count

    def evaluate(self, sae: Callable[[torch.Tensor], torch.Tensor]) -> dict:
        """{ce_clean, ce_zero, ce_sae, ce_recovered} for an SAE acting on normalised activations."""
        ce_sae = self.ce(sae_replacement(sae, self.normalizer))
        return {"ce_clean": self.ce_clean, "ce_zero": self.ce_zero, "ce_sae": ce_sae,
                "ce_recovered": ce_loss_recovered(self.ce_clean, self.ce_zero, ce_sae)}
