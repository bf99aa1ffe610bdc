"""Splicing an SAE into the model: CE-loss recovered, Delta CE and KL to the clean model.

Definitions (the field's; our code):

    CE-loss recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean)        SAELens's definition
    Delta CE          = CE_sae - CE_clean                                SAEBench's ``ce_loss_with_sae -
                                                                         ce_loss_without_sae``
    KL                = mean over predicted tokens of KL(P_clean || P_sae) SAEBench's ``kl_div_with_sae``
    KL score          = (KL_zero - KL_sae) / KL_zero                     SAEBench's ``kl_div_score``

- CE_clean: the unmodified model. CE is the mean next-token cross-entropy over EVERY prediction of a
  context (positions 0 .. T-2 predicting tokens 1 .. T-1), as SAELens computes it.
- CE_zero: the site's output replaced by zeros at EVERY position, BOS included (SAELens's zero ablation).
- CE_sae: the site's output ``a`` replaced by ``N^-1(sae(N(a)))``, ``N`` the store's normaliser, so the
  reconstruction is brought back to the model's scale with the outlier rescaling undone. The SAE never
  saw position 0 (BOS) or sink tokens in training, so those pass through unchanged in the SAE run (our
  choice; SAEBench likewise leaves BOS out of reconstruction). A perfect reconstruction gives exactly 1.

``CEEvaluator.evaluate_many`` computes the clean and zero-ablated logits of each batch of contexts once
and splices every SAE into that batch, so N SAEs cost N + 2 forward passes per batch and KL needs no
stored logits.
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


def zero_all(a_BTD: torch.Tensor) -> torch.Tensor:
    """SAELens's zero ablation: every position, BOS and sinks included."""
    return torch.zeros_like(a_BTD)


def sae_replacement(sae: Callable[[torch.Tensor], torch.Tensor], normalizer: Normalizer) -> Replace:
    """Rows at model scale -> the SAE's reconstruction at model scale: ``N^-1(sae(N(a)))``."""
    return lambda rows: normalizer.invert(sae(normalizer.apply(rows)).float())


def _token_ce_kl(logits_BTV: torch.Tensor, ids_BT: torch.Tensor, clean_logp: torch.Tensor | None):
    """(sum of CE over predictions 0..T-2, sum of KL(clean || this) over them, log-probs)."""
    logp = torch.log_softmax(logits_BTV[:, :-1].float(), dim=-1)
    ce = float(F.nll_loss(logp.reshape(-1, logp.shape[-1]), ids_BT[:, 1:].reshape(-1), reduction="sum"))
    kl = 0.0 if clean_logp is None else float((clean_logp.exp() * (clean_logp - logp)).sum())
    return ce, kl, logp


class CEEvaluator:
    """CE_clean and CE_zero (and KL_zero) for fixed contexts, then CE_sae, Delta CE and KL for SAEs."""

    def __init__(self, model: torch.nn.Module, contexts_CT: torch.Tensor, layer: int, site: str,
                 normalizer: Normalizer, dtype: str = "float32", batch_contexts: int = 8):
        require(contexts_CT.ndim == 2 and contexts_CT.shape[1] >= 2,
                f"CE contexts must be [N, T>=2] token ids, got shape {tuple(contexts_CT.shape)}")
        self.model, self.contexts_CT, self.layer, self.site = model, contexts_CT, layer, site
        self.normalizer, self.dtype, self.batch_contexts = normalizer, dtype, batch_contexts
        base = self._run([])
        self.ce_clean, self.ce_zero, self.kl_zero = base["ce_clean"], base["ce_zero"], base["kl_zero"]

    @property
    def n_tokens(self) -> int:
        """Predicted tokens every CE and KL is averaged over."""
        return int(self.contexts_CT.shape[0] * (self.contexts_CT.shape[1] - 1))

    def _logits(self, ids: torch.Tensor, fn=None) -> torch.Tensor:
        with autocast(str(ids.device), self.dtype):
            if fn is None:
                return self.model(input_ids=ids, use_cache=False).logits
            with splice(self.model, self.layer, self.site, fn):
                return self.model(input_ids=ids, use_cache=False).logits

    @torch.no_grad()
    def _run(self, replacements: list[Replace]) -> dict:
        device = next(self.model.parameters()).device
        sums = {"clean": 0.0, "zero": 0.0, "kl_zero": 0.0}
        ce_s, kl_s = [0.0] * len(replacements), [0.0] * len(replacements)
        for b in range(0, self.contexts_CT.shape[0], self.batch_contexts):
            ids = self.contexts_CT[b:b + self.batch_contexts].to(device)
            ce, _, clean = _token_ce_kl(self._logits(ids), ids, None)
            sums["clean"] += ce
            ce, kl, _ = _token_ce_kl(self._logits(ids, zero_all), ids, clean)
            sums["zero"] += ce
            sums["kl_zero"] += kl
            for i, new in enumerate(replacements):
                fn = lambda a, new=new: replace_positions(a, self.normalizer, new)  # noqa: E731
                ce, kl, _ = _token_ce_kl(self._logits(ids, fn), ids, clean)
                ce_s[i] += ce
                kl_s[i] += kl
        n = self.n_tokens
        return {"ce_clean": sums["clean"] / n, "ce_zero": sums["zero"] / n, "kl_zero": sums["kl_zero"] / n,
                "ce_sae": [c / n for c in ce_s], "kl": [k / n for k in kl_s]}

    def ce(self, new: Replace | None) -> float:
        """Mean next-token CE (nats) with the rows at positions >= 1 (non-sink) replaced by ``new``."""
        return self.ce_clean if new is None else self._run([new])["ce_sae"][0]

    def evaluate_many(self, saes: list[Callable[[torch.Tensor], torch.Tensor]]) -> list[dict]:
        """For each SAE (acting on normalised activations): ce_clean, ce_zero, ce_sae, ce_recovered,
        delta_ce, kl, kl_zero, kl_score and ce_tokens (see the module docstring)."""
        run = self._run([sae_replacement(s, self.normalizer) for s in saes])
        out = []
        for ce_sae, kl in zip(run["ce_sae"], run["kl"]):
            out.append({"ce_clean": self.ce_clean, "ce_zero": self.ce_zero, "ce_sae": ce_sae,
                        "ce_recovered": ce_loss_recovered(self.ce_clean, self.ce_zero, ce_sae),
                        "delta_ce": ce_sae - self.ce_clean, "kl": kl, "kl_zero": self.kl_zero,
                        "kl_score": (self.kl_zero - kl) / self.kl_zero if self.kl_zero > 0 else float("nan"),
                        "ce_tokens": self.n_tokens})
        return out

    def evaluate(self, sae: Callable[[torch.Tensor], torch.Tensor]) -> dict:
        """``evaluate_many([sae])[0]``."""
        return self.evaluate_many([sae])[0]
