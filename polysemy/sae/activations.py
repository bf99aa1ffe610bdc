"""Activations of the tied SAE, each returning the value and its derivative with respect to u.

Notation (docs/paper.md section 3): u_m = w_m^T (x - b_pre) is the projection, y_m = u_m + b_m the
pre-activation; neuron m is *active* iff y_m > 0. Every activation here is exactly 0 when y_m <= 0, so
the activation frequency is the same quantity for all of them.

- ``jumprelu`` (the paper's practical choice): z = u * 1[u + b > 0]. The bias is a threshold and does
  not shrink the output [paper + inferred reading]. dz/du = 1[y > 0] (the jump itself has no
  gradient; biases are never trained by gradients anyway).
- ``relu``: z = max(0, u + b); dz/du = 1[y > 0].
- ``smooth-relu`` (the theory's smooth activation; our choice of form: the Huberised ReLU of width h):
  z = 0 for y <= 0, y^2 / (2h) for 0 < y < h, y - h/2 for y >= h; dz/du = clamp(y / h, 0, 1).
  It is C^1, exactly zero below threshold, and tends to ReLU as h -> 0.
"""

from __future__ import annotations

import torch

ACTIVATIONS = ("jumprelu", "relu", "smooth-relu")


def tied_activation(name: str, u: torch.Tensor, y: torch.Tensor, smooth_width: torch.Tensor | None = None):
    """Return (z, dz_du) for activation ``name``; ``smooth_width`` broadcasts against y (e.g. [G,1,1])."""
    if name == "jumprelu":
        active = torch.gt(y, 0.0, out=torch.empty_like(y))   # float mask (bool is slow on CPU)
        return u * active, active
    if name == "relu":
        active = torch.gt(y, 0.0, out=torch.empty_like(y))
        return torch.relu(y), active
    if name == "smooth-relu":
        h = smooth_width
        slope = (y / h).clamp_(0.0, 1.0)
        z = torch.where(y >= h, y - 0.5 * h, 0.5 * y * slope)
        return z, slope
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
