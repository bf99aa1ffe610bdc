"""Evaluate a trained SAE against a world's ground truth (metric definitions: polysemy.theory.metrics)."""

from __future__ import annotations

import torch

from ..errors import require_int_range
from ..theory import metrics


@torch.no_grad()
def evaluate_on_world(model, world, n_samples: int = 8192, seed: int = 12345) -> dict:
    """Draw ``n_samples`` fresh samples with truth (data seed ``seed``) and return
    ``polysemy.theory.metrics.recovery_metrics`` with acts, x, x_hat and the true codes."""
    require_int_range("n_samples", n_samples, 1)
    batch = world.sample_with_truth(n_samples, torch.Generator().manual_seed(seed))
    x = batch.x.to(torch.float32)
    acts = model.encode(x)
    x_hat = model.decode(acts)
    return metrics.recovery_metrics(model.W_dec.cpu().numpy(), world.V.cpu().numpy(), acts=acts.cpu().numpy(),
                                    x=x.cpu().numpy(), x_hat=x_hat.cpu().numpy(),
                                    truth_codes=batch.dense_codes(world.n).cpu().numpy())
