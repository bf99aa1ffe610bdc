"""The sparse path (decode and backward over active pairs) against the dense path: same gradients and
the same training trajectory within float tolerance, for every sparse-coded method, single and stacked."""

import copy

import pytest
import torch

from polysemy.sae import TrainConfig, get_method, train_stacked
from polysemy.sae import sparse
from polysemy.sae.adam import StackedAdam
from polysemy.sae.trainer import one_step
from polysemy.simulate import World, WorldConfig

SPARSE_METHODS = {  # method -> params giving a low L0 and, for topk/batchtopk, dead latents (AuxK runs)
    "gba": {"adapt_every": 2, "buffer": 128},                          # untied decoder, mean-norm input
    "gba-paper": {"adapt_every": 2, "buffer": 128},                    # the tied decoder, raw inputs
    "ba": {"adapt_every": 2, "buffer": 128, "target": 0.05},
    "ba-theory": {"target": 0.05},
    "topk": {"k": 3, "dead_after_samples": 64},
    "batchtopk": {"k": 3, "dead_after_samples": 64},
    "jumprelu": {"threshold": 0.3},
}


def _world():
    return World(WorldConfig(n=48, d=16, s=2, seed=4))


def _setup(method, G, steps):
    world = _world()
    cfgs = [TrainConfig(method=method, width=64, batch_size=64, seed=g, lr=3e-3 * (1 + g),
                        params=SPARSE_METHODS[method]) for g in range(G)]
    m = get_method(method)
    gen = torch.Generator().manual_seed(7)
    xs = [torch.stack([world.sample(64, gen) for _ in range(G)]) for _ in range(steps)]
    model = m.init_model(cfgs, world.d, xs[0])
    if method in ("gba", "ba", "gba-paper"):   # sparse codes, as after the first adaptations
        model.bias_GM.fill_(-0.3)
    hyper = m.hyper(cfgs, world.d, xs[0].device)
    opt = StackedAdam(model.trainable(), torch.tensor([c.lr for c in cfgs]))
    return m, model, hyper, opt, xs


def _run(method, mode, G, steps=12):
    m, model, hyper, opt, xs = _setup(method, G, steps)
    with sparse.forced_decode_mode(mode):
        outs = [one_step(m, model, opt, hyper, x, step, 1.0) for step, x in enumerate(xs)]
    return model, outs


@pytest.mark.parametrize("G", [1, 3])
@pytest.mark.parametrize("method", sorted(SPARSE_METHODS))
def test_sparse_step_equals_dense_step(method, G):
    """At every state of a 12-step dense run, the sparse step from that same state gives the dense
    step's loss, fired counts, extras and gradients (and the same buffer updates)."""
    m, model, hyper, opt, xs = _setup(method, G, 12)
    for step, x in enumerate(xs):
        twin = copy.deepcopy(model)
        with sparse.forced_decode_mode("sparse"):
            s = m.loss_and_grads(twin, x, hyper, step)
        m.end_of_step(twin, hyper, step)            # bias adaptation from the statistics the step gathered
        with sparse.forced_decode_mode("dense"):
            d = one_step(m, model, opt, hyper, x, step, 1.0)
        torch.testing.assert_close(s.loss_G, d.loss_G, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(s.fired_GM, d.fired_GM)
        for gs, gd in zip(s.grads, d.grads):
            assert (gs is None) == (gd is None)
            if gs is not None:
                torch.testing.assert_close(gs, gd, rtol=1e-4, atol=1e-6)
        for k in d.extras:
            torch.testing.assert_close(s.extras[k], d.extras[k], rtol=1e-5, atol=1e-7)
        for name in ("act_count_GM", "peak_GM", "threshold_G", "bias_GM"):
            if hasattr(twin, name):
                torch.testing.assert_close(getattr(twin, name), getattr(model, name))
    if method in ("topk", "batchtopk"):  # the run exercised AuxK
        assert float(d.extras["aux_loss"].sum()) > 0


@pytest.mark.parametrize("method", sorted(SPARSE_METHODS))
def test_sparse_training_follows_dense_training(method):
    """12 steps on each path, stacked (G = 3): the trajectories stay together (float tolerance)."""
    sparse_model, _ = _run(method, "sparse", 3)
    dense_model, _ = _run(method, "dense", 3)
    for k, v in dense_model.state_dict().items():
        torch.testing.assert_close(sparse_model.state_dict()[k], v, rtol=1e-2, atol=1e-3)
    if method in ("gba", "ba", "gba-paper"):   # the run exercised bias adaptation on sparse codes
        assert float(sparse_model.bias_GM.abs().sum()) > 0


def test_mixed_stack_keeps_each_models_path():
    # k = 2 is below break-even at width 64, k = 40 above it: one stack, each model on its own path,
    # equal to the models trained alone
    world = _world()
    cfgs = [TrainConfig(method="topk", width=64, steps=6, batch_size=64, log_every=3, seed=s,
                        params={"k": k, "dead_after_samples": 64}) for s, k in ((0, 2), (1, 40))]
    assert sparse.choose_sparse([2, 40], 64, can_sync=True) == [True, False]
    streams = lambda: [world.stream(64, seed=s) for s in range(2)]  # noqa: E731
    stacked = train_stacked(cfgs, streams(), world.d, progress=False)
    alone = [train_stacked([c], [s], world.d, progress=False)[0] for c, s in zip(cfgs, streams())]
    for a, b in zip(stacked, alone):
        sa, sb = a.model.stack.state_dict(), b.model.stack.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pairs_kernels_against_dense_products():
    torch.manual_seed(0)
    G, B, M, D = 2, 16, 24, 5
    mask = torch.rand(G, B, M) < 0.2
    vals = torch.randn(G, B, M) * mask
    W = torch.randn(G, M, D)
    grad = torch.randn(G, B, D)
    pairs = sparse.ActivePairs.from_mask(mask)
    v = vals.reshape(-1)[pairs.flat]
    torch.testing.assert_close(pairs.decode(W.reshape(G * M, D), v).view(G, B, D), torch.bmm(vals, W))
    torch.testing.assert_close(pairs.weight_grad(grad.reshape(G * B, D), v).view(G, M, D),
                               torch.bmm(vals.transpose(1, 2), grad))
    dense_vg = torch.bmm(grad, W.transpose(1, 2)).reshape(-1)[pairs.flat]
    torch.testing.assert_close(pairs.value_grad(grad.reshape(G * B, D), W.reshape(G * M, D)), dense_vg)
    torch.testing.assert_close(pairs.latent_sum(v), vals.sum(1))
    torch.testing.assert_close(pairs.latent_count(), mask.sum(1).float())


@pytest.mark.parametrize("method", ["gba", "gba-paper", "topk", "batchtopk", "jumprelu"])
def test_sparse_path_keeps_stacked_equal_to_sequential(method):
    # the pair kernels run per model, so a stack equals its models trained alone, bit for bit
    world = _world()
    cfgs = [TrainConfig(method=method, width=64, steps=8, batch_size=64, log_every=4, seed=s, lr=1e-3 * (1 + s),
                        params=SPARSE_METHODS[method]) for s in range(3)]
    streams = lambda: [world.stream(64, seed=s) for s in range(3)]  # noqa: E731
    with sparse.forced_decode_mode("sparse"):
        stacked = train_stacked(cfgs, streams(), world.d, progress=False)
        alone = [train_stacked([c], [s], world.d, progress=False)[0] for c, s in zip(cfgs, streams())]
    for a, b in zip(stacked, alone):
        sa, sb = a.model.stack.state_dict(), b.model.stack.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("R,n,k", [(256, 1024, 32), (300, 1000, 9), (128, 4096, 64), (64, 64, 3), (512, 512, 100)])
def test_topk_rows_selects_the_top_k_of_every_row(R, n, k):
    gen = torch.Generator().manual_seed(R + n + k)
    x = torch.randn(R, n, generator=gen)
    x[0] = 1.5                     # a row of ties
    x[1, : n // 2] = float("-inf")
    values, index = sparse.topk_rows(x, k)
    assert values.shape == index.shape == (R, k)
    assert torch.equal(x.gather(1, index), values)
    assert torch.equal(values.sort(dim=1, descending=True).values, x.topk(k, dim=1).values)
    assert all(len(set(row.tolist())) == k for row in index)        # k distinct latents per row


@pytest.mark.parametrize("aux_k", [2, 48])
def test_auxk_over_positive_dead_latents_equals_dense_auxk(aux_k, monkeypatch):
    # aux_k = 48: no sample has that many positive dead pre-activations, so the sparse AuxK takes them all
    # without a selection; aux_k = 2: it selects. Both must equal the dense top-k AuxK.
    monkeypatch.setitem(SPARSE_METHODS, "topk", {"k": 3, "dead_after_samples": 64, "aux_k": aux_k})
    test_sparse_step_equals_dense_step("topk", 2)
