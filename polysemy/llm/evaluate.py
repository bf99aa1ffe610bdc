"""Metrics of one trained SAE on held-out normalised activations (definitions: docs/paper.md section 9).

- nmse = SSE / sum ||x||^2 (ours) and explained variance = 1 - mean ||x - x_hat||^2 / Var(x) (SAELens's
  definition, ``polysemy.theory.metrics``), both on the normalised (centred, mean-norm-1) activations;
- explained_variance_raw: the same EV on the de-normalised activations and reconstruction, a = N^-1(x)
  and a_hat = N^-1(x_hat), i.e. at the model's scale with the outlier coordinates at their full size:
  the number that can be set beside SAELens / SAEBench's EV (which see raw activations);
- l0 = mean number of non-zero latents per token; l0 / width;
- alive fraction = latents that fire at least once on the evaluation tokens (SAELens's "dead" is the
  complement), with the token count it was measured on (``alive_tokens``): a latent of frequency p is
  seen with probability 1 - (1 - p)^N, so N must be >> 1 / p for the smallest p that matters;
- firing frequency per latent (the activity that picks the top-alpha neurons for consistency).
"""

from __future__ import annotations

import numpy as np
import torch

from ..theory import metrics


@torch.no_grad()
def evaluate_sae(sae, x_ND: torch.Tensor, chunk: int = 4096, normalizer=None) -> dict:
    """Metrics of ``sae`` (the ``polysemy.sae`` SAE interface) on ``x_ND``; see the module docstring.
    With ``normalizer`` (the store's), also ``explained_variance_raw`` at the model's scale."""
    device = sae.W_dec.device
    fired_M = torch.zeros(sae.width, dtype=torch.float64)
    active, recon = 0.0, []
    for start in range(0, x_ND.shape[0], chunk):
        x = x_ND[start:start + chunk].to(device)
        acts = sae.encode(x)
        nonzero = acts != 0
        fired_M += nonzero.sum(0).double().cpu()
        active += float(nonzero.sum())
        recon.append(sae.decode(acts).float().cpu())
    x_hat = torch.cat(recon)
    n = x_ND.shape[0]
    freq = (fired_M / n).numpy()
    alive = float((freq > 0).mean())
    raw = {}
    if normalizer is not None:
        raw["explained_variance_raw"] = metrics.explained_variance(normalizer.invert(x_ND), normalizer.invert(x_hat))
    return {**raw,
        "nmse": metrics.nmse(x_ND, x_hat),
        "explained_variance": metrics.explained_variance(x_ND, x_hat),
        "l0": active / n,
        "l0_over_width": active / n / sae.width,
        "alive_fraction": alive,
        "dead_fraction": 1.0 - alive,
        "alive_tokens": int(n),
        "firing_frequency": freq,
    }


def consistency(rows: list[np.ndarray], activities: list[np.ndarray], alpha: float, threshold: float) -> dict:
    """Cross-seed consistency, averaged over ordered pairs of seeds (a, b), a != b (docs/paper.md section 7):
    the fraction of run a's top-alpha most active neurons whose max cosine with run b's decoder rows
    exceeds ``threshold`` (``fraction_above``), and the mean of those max cosines (``mean_mcs``), each
    with its standard error over the pairs (``_sem``; nan for one pair)."""
    pairs = [(a, b) for a in range(len(rows)) for b in range(len(rows)) if a != b]
    if not pairs:
        return {"consistency": float("nan"), "consistency_mean_mcs": float("nan"),
                "consistency_sem": float("nan"), "consistency_mean_mcs_sem": float("nan")}
    results = [metrics.cross_run_consistency(rows[a], rows[b], activities[a], alpha=alpha, threshold=threshold)
               for a, b in pairs]
    fractions = [r["fraction_above"] for r in results]
    mcs = [r["mean_mcs"] for r in results]

    def sem(v):
        return float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) >= 2 else float("nan")

    return {"consistency": float(np.mean(fractions)), "consistency_mean_mcs": float(np.mean(mcs)),
            "consistency_sem": sem(fractions), "consistency_mean_mcs_sem": sem(mcs)}


def random_consistency(width: int, d: int, alpha: float, threshold: float, seed: int = 0) -> dict:
    """The same score for two independent random dictionaries: the floor a trained SAE must beat."""
    gen = np.random.default_rng(seed)
    rows = [gen.standard_normal((width, d)) for _ in range(2)]
    acts = [gen.random(width) for _ in range(2)]
    return consistency(rows, acts, alpha, threshold)


def group_frequencies(sae, firing_frequency: np.ndarray) -> list[dict] | None:
    """GBA's achieved against target firing frequency, one entry per target group (ours): the target,
    the number of neurons, their mean and median achieved frequency, and the fraction that never fired.
    None for an SAE without per-neuron targets (anything but gba / ba)."""
    target = getattr(getattr(sae, "stack", None), "target_GM", None)
    if target is None:
        return None
    t = target[0].detach().cpu().double().numpy()
    out = []
    for value in sorted(set(t.tolist()), reverse=True):
        f = firing_frequency[t == value]
        out.append({"target": float(value), "neurons": int(f.size), "mean_frequency": float(f.mean()),
                    "median_frequency": float(np.median(f)), "dead_fraction": float((f == 0).mean())})
    return out
