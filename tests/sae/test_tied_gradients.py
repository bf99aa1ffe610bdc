"""The hand-written backward pass of the tied SAE equals autograd on the same loss."""

import pytest
import torch

from polysemy.sae import TrainConfig, get_method
from polysemy.sae.activations import tied_activation


def autograd_loss(model, x):
    w = model.w_GMD.detach().clone().requires_grad_(True)
    a = model.a_GM.detach().clone().requires_grad_(True)
    b_pre = model.b_pre_GD.detach().clone().requires_grad_(True)
    u = torch.bmm(x - b_pre[:, None, :], w.transpose(1, 2))
    y = u + model.bias_GM[:, None, :]
    z, _ = tied_activation(model.activation, u, y, model.smooth_width_G[:, None, None])
    x_hat = torch.bmm(z * a[:, None, :], w) + b_pre[:, None, :]
    loss = 0.5 * (x_hat - x).square().sum((1, 2)) / x.shape[1]
    grads = torch.autograd.grad(loss.sum(), [w, a, b_pre])
    return loss.detach(), grads


@pytest.mark.parametrize("method, activation", [("gba", "jumprelu"), ("gba", "relu"), ("gba", "smooth-relu"),
                                                ("ba", "jumprelu")])
def test_tied_gradients_match_autograd(method, activation):
    torch.manual_seed(0)
    cfgs = [TrainConfig(method=method, width=24, steps=1, params={"activation": activation, "a0": 0.7}, seed=s)
            for s in range(2)]
    m = get_method(method)
    x = torch.randn(2, 40, 8)
    model = m.init_model(cfgs, 8, x)
    model.bias_GM.uniform_(-0.5, 0.0)
    model.b_pre_GD.normal_()
    model.a_GM.uniform_(0.2, 1.0)
    model.double()
    x = x.double()
    out = m.loss_and_grads(model, x, m.hyper(cfgs, 8, x.device), step=1)
    loss, ref = autograd_loss(model, x)
    assert torch.allclose(out.loss_G, loss, rtol=1e-10, atol=1e-12)
    for got, want in zip(out.grads, ref):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-11)


def test_ba_theory_gradient_is_tangent_and_biases_hit_the_target():
    cfg = TrainConfig(method="ba-theory", width=32, steps=1, batch_size=100, params={"target": 0.05})
    m = get_method("ba-theory")
    x = torch.randn(1, 100, 8)
    model = m.init_model([cfg], 8, x)
    out = m.loss_and_grads(model, x, m.hyper([cfg], 8, x.device), step=0)
    g_w = out.grads[0]
    assert out.grads[1] is None                                    # a is not trained
    assert torch.allclose((g_w * model.w_GMD).sum(2), torch.zeros(1, 32), atol=1e-6)   # tangent
    # quantile biases: exactly round(0.05 * 100) = 5 samples fire per neuron (continuous data: no ties)
    assert torch.equal(out.fired_GM, torch.full((1, 32), 5.0))
