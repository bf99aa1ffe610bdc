"""The hand-written backward pass of the tied SAE equals autograd on the same loss."""

import pytest
import torch

from polysemy.sae import TrainConfig, get_method
from polysemy.sae.activations import tied_activation


def autograd_loss(model, x):
    """The SAE's loss on x' = x / c by autograd: gradients of 1/(2B) ||x_hat' - x'||^2, and that loss in
    units of x^2 (times c^2), as the trainer reports it."""
    c = model.input_scale_G[:, None, None]
    x = x / c
    leaves = [model.w_GMD, model.a_GM, model.b_pre_GD] + ([model.v_GMD] if model.decoder == "untied" else [])
    leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
    w, a, b_pre = leaves[:3]
    dec = leaves[3] if model.decoder == "untied" else w
    u = torch.bmm(x - b_pre[:, None, :], w.transpose(1, 2))
    y = u + model.bias_GM[:, None, :]
    z, _ = tied_activation(model.activation, u, y, model.smooth_width_G[:, None, None])
    x_hat = torch.bmm(z * a[:, None, :], dec) + b_pre[:, None, :]
    loss = 0.5 * (x_hat - x).square().sum((1, 2)) / x.shape[1]
    grads = torch.autograd.grad(loss.sum(), leaves)
    return loss.detach() * c.flatten() ** 2, grads


@pytest.mark.parametrize("decoder", ["tied", "untied"])
@pytest.mark.parametrize("input_scale", ["none", "mean-norm"])
@pytest.mark.parametrize("method, activation", [("gba", "jumprelu"), ("gba", "relu"), ("gba", "smooth-relu"),
                                                ("ba", "jumprelu")])
def test_tied_gradients_match_autograd(method, activation, decoder, input_scale):
    torch.manual_seed(0)
    params = {"activation": activation, "a0": 0.7, "decoder": decoder, "input_scale": input_scale}
    cfgs = [TrainConfig(method=method, width=24, steps=1, params=params, seed=s) for s in range(2)]
    m = get_method(method)
    x = torch.randn(2, 40, 8)
    model = m.init_model(cfgs, 8, x)
    model.bias_GM.uniform_(-0.5, 0.0)
    model.b_pre_GD.normal_()
    model.a_GM.uniform_(0.2, 1.0)
    if decoder == "untied":
        model.v_GMD.copy_(torch.nn.functional.normalize(torch.randn_like(model.v_GMD), dim=2))
    model.double()
    x = x.double()
    out = m.loss_and_grads(model, x, m.hyper(cfgs, 8, x.device), step=1)
    loss, ref = autograd_loss(model, x)
    assert torch.allclose(out.loss_G, loss, rtol=1e-10, atol=1e-12)
    assert len(out.grads) == len(ref)
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
