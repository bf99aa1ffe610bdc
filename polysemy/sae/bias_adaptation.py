"""Bias adaptation (BA / GBA), docs/paper.md section 4: a hook of the one training loop, not a fork of it.

State (buffers of :class:`~polysemy.sae.methods.gba.AdaptiveTiedSAE`, so checkpoints resume it exactly):
``bias_GM``, ``group_GM``, ``target_GM``, the statistics of the current window, accumulated
online instead of storing pre-activations: ``act_count_GM`` (samples with y_m > 0), ``peak_GM``
(max(0, max y_m)) and ``stat_samples_G``, and ``freq_GM``, the firing frequency each neuron achieved
in the last completed window (kept for diagnostics: :func:`group_report`).

Schedule (our choice, making the buffer a knob of its own): the statistics cover the last
W = ceil(buffer / batch_size) steps before an adaptation; adaptations happen every
P = adapt_every * ceil(W / adapt_every) steps (so P = adapt_every when the buffer fits in one interval,
the paper's setting: every 50 steps at batch 512, buffer = 50 x 512 samples).

Rule, per neuron m of group k, with p_m = count / samples and r_m its peak [paper]:
  p_m > target_k:  b_m <- max(b_m - gamma_minus * r_m, floor)
  p_m < eps:       b_m <- min(b_m + gamma_plus * rbar_k, 0),  rbar_k = mean of the positive peaks of group k
  otherwise:       unchanged.
The paper clamps at floor = -1 and starts the biases at 0. Both are method parameters here
(``bias_floor``, ``bias_init``; see methods/gba.py): the lowering step can never take b_m below
-max(u_m) over the window when gamma_minus < 1 (it moves b_m a fraction of the way to the largest
projection), so the rule bounds itself by the data and the floor is only a guard.
"""

from __future__ import annotations

import math

import torch


def schedule(adapt_every: int, buffer_samples: int, batch_size: int) -> tuple[int, int]:
    """(period P, window W) in steps, as described in the module docstring."""
    window = max(1, math.ceil(buffer_samples / batch_size))
    period = adapt_every * math.ceil(window / adapt_every)
    return period, window


def in_window(step: int, period: int, window: int) -> bool:
    """Whether step (0-based) contributes to the statistics of the next adaptation."""
    return step % period >= period - window


def is_adaptation_step(step: int, period: int) -> bool:
    """Whether the adaptation runs after step (0-based) completes."""
    return (step + 1) % period == 0


@torch.no_grad()
def accumulate(model, u_GBM: torch.Tensor, fired_GM: torch.Tensor) -> None:
    """Add one batch to the window statistics: ``fired_GM`` counts samples with y > 0, and the peak
    of y = u + b is max_b(u) + b (the bias is constant over the batch)."""
    model.act_count_GM += fired_GM
    torch.maximum(model.peak_GM, u_GBM.amax(1) + model.bias_GM, out=model.peak_GM)
    model.stat_samples_G += u_GBM.shape[1]


def group_mean_positive_peak(peak_GM: torch.Tensor, group_GM: torch.Tensor) -> torch.Tensor:
    """rbar for every neuron: the mean of the positive peaks of its group (0 if none is positive)."""
    G, M = peak_GM.shape
    n_groups = int(group_GM.max()) + 1
    positive = (peak_GM > 0).to(peak_GM.dtype)
    sums = torch.zeros(G, n_groups, dtype=peak_GM.dtype, device=peak_GM.device).scatter_add_(1, group_GM, peak_GM * positive)
    counts = torch.zeros_like(sums).scatter_add_(1, group_GM, positive)
    return (sums / counts.clamp(min=1.0)).gather(1, group_GM)


@torch.no_grad()
def adapt_biases(model, gamma_plus_G: torch.Tensor, gamma_minus_G: torch.Tensor, eps_G: torch.Tensor,
                 floor_G: torch.Tensor | None = None, proportional_G: torch.Tensor | None = None) -> None:
    """Apply the rule to ``model.bias_GM`` from the window statistics, then reset them.
    ``floor_G``: the lower clamp per model (None: -1, the paper's). ``proportional_G``: per model 1 to
    scale the lowering step by the relative excess 1 - target / p_m (so a neuron just above its target
    moves a little, one far above it a full step; our choice), 0 for the paper's full step."""
    freq_GM = model.act_count_GM / model.stat_samples_G.clamp(min=1.0)[:, None]
    model.freq_GM.copy_(freq_GM)
    peak_GM = model.peak_GM
    bias = model.bias_GM
    floor = -torch.ones_like(bias[:, :1]) if floor_G is None else floor_G[:, None]
    step_GM = gamma_minus_G[:, None] * peak_GM
    if proportional_G is not None:
        excess = (1.0 - model.target_GM / freq_GM.clamp(min=1e-12)).clamp(0.0, 1.0)
        step_GM = step_GM * torch.lerp(torch.ones_like(excess), excess, proportional_G[:, None])
    lowered = torch.maximum(bias - step_GM, floor)
    rbar_GM = group_mean_positive_peak(peak_GM, model.group_GM)
    raised = (bias + gamma_plus_G[:, None] * rbar_GM).clamp(max=0.0)
    too_often = freq_GM > model.target_GM
    nearly_dead = freq_GM < eps_G[:, None]
    model.bias_GM.copy_(torch.where(too_often, lowered, torch.where(nearly_dead, raised, bias)))
    model.act_count_GM.zero_()
    model.peak_GM.zero_()
    model.stat_samples_G.zero_()


@torch.no_grad()
def quantile_biases(u_GBM: torch.Tensor, target_GM: torch.Tensor, floor_G: torch.Tensor) -> torch.Tensor:
    """Biases that make each neuron fire at its target frequency on one batch of projections (our
    choice, for sample efficiency): with k_m = ceil(p_m B), b_m = -(the k_m-th largest u_m), clamped to
    [floor, 0]. The k_m-th sample sits exactly at the threshold (y = 0 does not fire), so k_m - 1
    samples of that batch fire; a neuron whose target is below 1/B fires on none of them and starts at
    the batch's largest projection. (One sample short of the target: kept as is, every recorded number
    of 0.2 was measured with it.)"""
    G, B, M = u_GBM.shape
    k_GM = (target_GM * B).ceil().clamp(1, B).long()
    sorted_u = u_GBM.sort(dim=1, descending=True).values                      # [G, B, M]
    kth = sorted_u.gather(1, (k_GM - 1)[:, None, :]).squeeze(1)               # k-th largest, [G, M]
    return torch.minimum(torch.maximum(-kth, floor_G[:, None]), torch.zeros_like(kth))


def at_bounds(bias_GM: torch.Tensor, floor_G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(at the floor, at the ceiling 0): boolean [G, M] masks of the biases that sit at a bound, within
    float tolerance."""
    return bias_GM <= floor_G[:, None] + 1e-6, bias_GM >= -1e-9


def group_report(model, floor_G: torch.Tensor, n_groups: int) -> dict[str, torch.Tensor]:
    """Per group k: its target ``g{k}_target``, the mean frequency its neurons achieved in the last
    window ``g{k}_freq``, and the fraction of its biases at a bound (the floor, or the ceiling 0)
    ``g{k}_at_bound``; plus ``bias_at_bound`` over all neurons. Each value is a [G] tensor."""
    at_floor, at_ceiling = at_bounds(model.bias_GM, floor_G)
    at_bound = (at_floor | at_ceiling).to(torch.float32)
    one_hot = torch.nn.functional.one_hot(model.group_GM, n_groups).to(torch.float32)   # [G, M, K]
    size = one_hot.sum(1).clamp(min=1.0)                                               # [G, K]
    per = {"target": model.target_GM, "freq": model.freq_GM, "at_bound": at_bound}
    out = {"bias_at_bound": at_bound.mean(1)}
    for name, value in per.items():
        mean_GK = torch.einsum("gm,gmk->gk", value, one_hot) / size
        for k in range(n_groups):
            out[f"g{k}_{name}"] = mean_GK[:, k]
    return out
