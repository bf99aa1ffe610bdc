"""StackedAdam (torch's fused Adam kernel, one lr per model) against torch.optim.Adam."""

import torch

from polysemy.sae.adam import StackedAdam


def test_stacked_adam_matches_torch_adam_per_model():
    gen = torch.Generator().manual_seed(0)
    G, lrs = 3, [1e-3, 3e-3, 1e-2]
    params = [torch.randn(G, 5, 7, generator=gen), torch.randn(G, 7, generator=gen)]
    ours = StackedAdam([p.clone() for p in params], torch.tensor(lrs))
    refs = [[p[g].clone().requires_grad_() for p in params] for g in range(G)]
    opts = [torch.optim.Adam(refs[g], lr=lrs[g]) for g in range(G)]
    for step in range(25):
        grads = [torch.randn(p.shape, generator=gen) * (1 + step) for p in params]
        scale = 1.0 if step < 20 else 0.5                 # the trainer's lr schedule multiplies every lr
        ours.step(grads, lr_scale=scale)
        for g in range(G):
            for group in opts[g].param_groups:
                group["lr"] = lrs[g] * scale
            for p, gr in zip(refs[g], grads):
                p.grad = gr[g].clone()
            opts[g].step()
    for g in range(G):
        for mine, ref in zip(ours.params, refs[g]):
            torch.testing.assert_close(mine[g], ref.detach(), rtol=1e-5, atol=1e-7)


def test_missing_gradients_leave_parameters_and_moments_alone():
    p = [torch.ones(1, 3), torch.ones(1, 2)]
    opt = StackedAdam(p, torch.tensor([0.1]))
    opt.step([torch.ones(1, 3), None])
    assert torch.equal(p[1], torch.ones(1, 2)) and not torch.equal(p[0], torch.ones(1, 3))
    assert torch.equal(opt.exp_avg_sq[1], torch.zeros(1, 2))


def test_state_round_trip_resumes_exactly():
    gen = torch.Generator().manual_seed(1)
    grads = [[torch.randn(2, 4, generator=gen)] for _ in range(6)]
    a = StackedAdam([torch.zeros(2, 4)], torch.tensor([1e-2, 2e-2]))
    for g in grads:
        a.step(g)
    b0 = StackedAdam([torch.zeros(2, 4)], torch.tensor([1e-2, 2e-2]))
    for g in grads[:3]:
        b0.step(g)
    b = StackedAdam([b0.params[0].clone()], torch.tensor([1e-2, 2e-2]))
    b.load_state_dict({k: v.clone() for k, v in b0.state_dict().items()})
    for g in grads[3:]:
        b.step(g)
    assert torch.equal(a.params[0], b.params[0])
