"""The tied SAE's activations equal independent reference formulas, value and derivative.

test_tied_gradients.py checks the hand-written backward against autograd *through* ``tied_activation``,
so a wrong activation formula would pass there. Here each activation is checked against its definition
(polysemy/sae/activations.py, docs/paper.md section 3) written out independently, and its dz/du against
autograd of that definition. Added while checking why GBA with ReLU / smooth ReLU recovers nothing in
the activations figure (the cause is b_pre, not the activation: see docs/experiments.md).
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polysemy.sae.activations import tied_activation


def reference(name: str, u: torch.Tensor, b: torch.Tensor, h: float) -> torch.Tensor:
    y = u + b
    if name == "jumprelu":      # threshold only: the bias does not shrink the output
        return u * (y > 0).to(u.dtype)
    if name == "relu":          # the bias shrinks the output
        return torch.clamp(y, min=0.0)
    # Huberised ReLU of width h: 0 below 0, y^2/(2h) on (0, h), y - h/2 above
    return torch.where(y <= 0, torch.zeros_like(y), torch.where(y < h, y * y / (2 * h), y - h / 2))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(name=st.sampled_from(["jumprelu", "relu", "smooth-relu"]), seed=st.integers(0, 10_000),
       h=st.sampled_from([0.05, 0.1, 0.5]))
def test_activation_matches_its_definition(name, seed, h):
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(3, 50, 7, generator=gen, dtype=torch.float64)
    b = -torch.rand(3, 1, 7, generator=gen, dtype=torch.float64)     # biases in [-1, 0]
    y = u + b
    # keep away from the kinks (y = 0 and y = h) where one-sided derivatives differ
    u = torch.where((y.abs() < 1e-6) | ((y - h).abs() < 1e-6), u + 1e-3, u).requires_grad_(True)
    want = reference(name, u, b, h)
    (want_du,) = torch.autograd.grad(want.sum(), u)
    got, got_du = tied_activation(name, u.detach(), u.detach() + b, torch.full((3, 1, 1), h, dtype=torch.float64))
    assert torch.allclose(got, want.detach(), atol=1e-12)
    assert torch.allclose(got_du, want_du, atol=1e-12)
    # every activation is exactly zero where the neuron is inactive (y <= 0)
    assert torch.all(got[(u.detach() + b) <= 0] == 0)


@pytest.mark.parametrize("name", ["relu", "smooth-relu"])
def test_bias_shrinks_relu_outputs_but_not_jumprelu(name):
    u = torch.tensor([[[2.0]]])
    b = torch.tensor([[[-0.5]]])
    h = torch.tensor([[[0.1]]])
    shrunk, _ = tied_activation(name, u, u + b, h)
    kept, _ = tied_activation("jumprelu", u, u + b, h)
    assert kept.item() == 2.0
    assert shrunk.item() < 2.0 - 0.4   # relu: 1.5; smooth: 1.45
