"""Bias adaptation (BA / GBA), docs/paper.md section 4: a hook of the one training loop, not a fork of it.

State (buffers of :class:`~polysemy.sae.models.TiedSAE`, so checkpoints resume it exactly):
``bias_GM``, ``group_GM``, ``target_GM``, and the statistics of the current window, accumulated
online instead of storing pre-activations: ``act_count_GM`` (samples with y_m > 0), ``peak_GM``
(max(0, max y_m)) and ``stat_samples_G``.

Schedule (our choice, making the buffer a knob of its own): the statistics cover the last
W = ceil(buffer / batch_size) steps before an adaptation; adaptations happen every
P = adapt_every * ceil(W / adapt_every) steps (so P = adapt_every when the buffer fits in one interval,
the paper's setting: every 50 steps at batch 512, buffer = 50 x 512 samples).

Rule, per neuron m of group k, with p_m = count / samples and r_m its peak [paper]:
  p_m > target_k:  b_m <- max(b_m - gamma_minus * r_m, -1)
  p_m < eps:       b_m <- min(b_m + gamma_plus * rbar_k, 0),  rbar_k = mean of the positive peaks of group k
  otherwise:       unchanged.
Biases start at 0 and stay in [-1, 0].
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
def adapt_biases(model, gamma_plus_G: torch.Tensor, gamma_minus_G: torch.Tensor, eps_G: torch.Tensor) -> None:
    """Apply the rule to ``model.bias_GM`` from the window statistics, then reset them."""
    freq_GM = model.act_count_GM / model.stat_samples_G.clamp(min=1.0)[:, None]
    peak_GM = model.peak_GM
    bias = model.bias_GM
    lowered = (bias - gamma_minus_G[:, None] * peak_GM).clamp(min=-1.0)
    rbar_GM = group_mean_positive_peak(peak_GM, model.group_GM)
    raised = (bias + gamma_plus_G[:, None] * rbar_GM).clamp(max=0.0)
    too_often = freq_GM > model.target_GM
    nearly_dead = freq_GM < eps_G[:, None]
    model.bias_GM.copy_(torch.where(too_often, lowered, torch.where(nearly_dead, raised, bias)))
    model.act_count_GM.zero_()
    model.peak_GM.zero_()
    model.stat_samples_G.zero_()
