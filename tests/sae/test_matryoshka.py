"""``matryoshka-batchtopk`` (polysemy/sae/methods/matryoshka_batchtopk.py): the nested-prefix loss, its
gradients, the inference threshold, recovery, checkpoints and SAELens, and its place in every command
that lists methods (it was added as one file: nothing else names it)."""

import json
import math
import re

import numpy as np
import pytest
import torch

from polysemy.cli import build_parser, main
from polysemy.sae import TrainConfig, get_method, sparse, train
from polysemy.sae.checkpoint import export_saelens, import_saelens, load_checkpoint, save_checkpoint
from polysemy.sae.evaluate import evaluate_on_world
from polysemy.simulate import World, WorldConfig
from polysemy.theory.metrics import cosine_matrix

M = "matryoshka-batchtopk"


def _setup(widths=(4, 8), width=16, d=6, B=32, seed=0):
    """A model of ``width`` latents after init, with random encoder weights and biases, and a batch."""
    gen = torch.Generator().manual_seed(seed)
    cfg = TrainConfig(method=M, width=width, steps=10, batch_size=B, params={"k": 2, "matryoshka_widths": widths})
    method = get_method(M)
    x = torch.randn(1, B, d, generator=gen)
    model = method.init_model([cfg], d, x)
    with torch.no_grad():
        model.W_enc_GDM.add_(0.3 * torch.randn(model.W_enc_GDM.shape, generator=gen))
        model.b_enc_GM.copy_(0.1 * torch.randn(model.b_enc_GM.shape, generator=gen))
    return cfg, method, model, method.hyper([cfg], d, x.device), x


def _naive_loss(W_enc, b_enc, W_dec, b_dec, x, k, widths):
    """The sum over prefixes of 1/(2B) ||acts[:, :m] W_dec[:m] + b_dec - x||^2, written out plainly
    (acts: relu(pre) kept where among the k B largest of the batch)."""
    B = x.shape[0]
    pre = (x - b_dec) @ W_enc + b_enc
    positive = torch.relu(pre)
    kth = positive.detach().flatten().topk(k * B).values[-1]
    acts = positive * (positive.detach() >= kth).float()
    losses = [0.5 * ((acts[:, :m] @ W_dec[:m] + b_dec - x) ** 2).sum() / B for m in widths]
    return sum(losses), losses


def test_widths_default_to_a_halving_ladder_and_always_end_at_the_width():
    params = get_method(M).Params
    assert params().widths_for(128) == (8, 16, 32, 64, 128)
    assert params().widths_for(2) == (1, 2)
    assert params(matryoshka_widths=(4, 8)).widths_for(16) == (4, 8, 16)
    assert params(matryoshka_widths=(4, 16)).widths_for(16) == (4, 16)


@pytest.mark.parametrize("bad", [(8, 4), (0, 4), ()])
def test_bad_widths_are_config_errors(bad):
    from polysemy.errors import ConfigError

    with pytest.raises(ConfigError, match="matryoshka_widths"):
        TrainConfig(method=M, width=16, params={"k": 2, "matryoshka_widths": bad})
    with pytest.raises(ConfigError, match="matryoshka_widths"):
        TrainConfig(method=M, width=16, params={"k": 2, "matryoshka_widths": (4, 32)})


def test_prefix_loss_is_the_sum_of_the_per_prefix_mses():
    cfg, method, model, hyper, x = _setup()
    acts = torch.relu(model.pre_activations(x)).detach()
    acts = acts * (torch.rand(acts.shape, generator=torch.Generator().manual_seed(1)) < 0.3)
    x_hat, mse, total = method.reconstruction(model, x, acts, hyper)
    W, b = model.W_dec_GMD.detach()[0], model.b_dec_GD.detach()[0]
    per_prefix = [0.5 * ((acts[0, :, :m] @ W[:m] + b - x[0]) ** 2).sum() / x.shape[1] for m in (4, 8, 16)]
    torch.testing.assert_close(total[0], sum(per_prefix))
    torch.testing.assert_close(mse[0], per_prefix[-1])                          # the full width's mse
    torch.testing.assert_close(x_hat[0], acts[0] @ W + b, rtol=1e-5, atol=1e-6)   # the full decode


def test_gradients_equal_autograd_of_the_naive_loss():
    cfg, method, model, hyper, x = _setup()
    params = [model.W_enc_GDM[0], model.b_enc_GM[0], model.W_dec_GMD[0], model.b_dec_GD[0]]
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    naive, _ = _naive_loss(*leaves, x[0], k=2, widths=(4, 8, 16))
    expected = torch.autograd.grad(naive, leaves)
    out = method.loss_and_grads(model, x, hyper, step=0)      # step 0: no dead latent, no AuxK term
    torch.testing.assert_close(out.loss_G[0], naive.detach())
    W = leaves[2].detach()
    g_dec = expected[2] - (expected[2] * W).sum(1, keepdim=True) * W    # the unit-norm rows' tangent part
    for got, want in zip(out.grads, [expected[0], expected[1], g_dec, expected[3]]):
        torch.testing.assert_close(got[0], want, rtol=1e-4, atol=1e-6)


def test_one_level_is_batchtopk_bit_for_bit(tiny_batches):
    """With the full width as the only level the loss is batchtopk's, and so is the training."""
    def run(method, params):
        cfg = TrainConfig(method=method, width=48, steps=30, batch_size=64, log_every=10, params=params)
        with sparse.forced_decode_mode("dense"):
            return train(cfg, iter(tiny_batches), 16, progress=False).model.stack.state_dict()

    base = {"k": 2, "dead_after_samples": 256}
    a, b = run("batchtopk", base), run(M, {**base, "matryoshka_widths": (48,)})
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_inference_uses_the_running_batch_threshold(tiny_world, tiny_batches):
    cfg = TrainConfig(method=M, width=48, steps=40, batch_size=64, params={"k": 2, "matryoshka_widths": (8, 24)})
    model = train(cfg, iter(tiny_batches), 16, progress=False).model
    stack = model.stack
    theta = float(stack.threshold_G[0])
    assert theta > 0
    x = tiny_batches[50]
    pre = stack.pre_activations(x[None])[0]
    torch.testing.assert_close(model.encode(x), pre * (pre > theta))
    # the threshold estimates the k B-th largest activation: about k latents fire per sample
    assert 0.5 * 2 <= float((model.encode(x) > 0).sum(1).float().mean()) <= 2.0 * 2


def test_recovers_an_easy_world_with_the_frequent_features_first():
    """A Zipf world (n = 32 features in d = 16, frequencies 0.25 .. 0.02, about 2 active): the SAE
    recovers the dictionary, and its first prefix (width / 16 = 4 latents) holds frequent features,
    the point of the nested loss. Measured over seeds 0-8 (1500 steps): MCC 0.82-0.88, and the matched
    features of the first prefix 1.4-2.9 times as frequent as the average feature (batchtopk: 0.4-1.6).
    Bounds: MCC >= 0.75 for each seed, the frequency ratio >= 1.3 on average over seeds 0 and 1."""
    ratios = []
    for seed in (0, 1):
        world = World(WorldConfig(n=32, d=16, s=2, support="bernoulli", frequency_profile="zipf", f_max=0.25,
                                  f_min=0.02, seed=seed))
        cfg = TrainConfig(method=M, width=64, steps=1500, batch_size=128, lr=3e-3, seed=seed, params={"k": 2})
        model = train(cfg, world.stream(128, seed=seed), 16, truth=world.V, progress=False).model
        assert evaluate_on_world(model, world, n_samples=4096)["mcc"] >= 0.75
        cos = np.abs(cosine_matrix(model.W_dec.numpy(), world.V.numpy()))     # [n, width]
        first = cos[:, :4].argmax(0)
        ratios.append(world.expected_frequencies[first].mean() / world.expected_frequencies.mean())
    assert np.mean(ratios) >= 1.3


def test_checkpoint_resumes_exactly_and_exports_to_saelens(tiny_batches, tmp_path):
    def cfg(steps):
        return TrainConfig(method=M, width=48, steps=steps, batch_size=64, log_every=10,
                           params={"k": 2, "dead_after_samples": 256, "matryoshka_widths": (6, 12, 24)})

    full = train(cfg(46), iter(tiny_batches), 16, progress=False)
    half = train(cfg(23), iter(tiny_batches[:23]), 16, progress=False)
    save_checkpoint(half, tmp_path / "ck")
    resumed = train(cfg(46), iter(tiny_batches[23:]), 16, progress=False, resume=load_checkpoint(tmp_path / "ck"))
    a, b = full.model.stack.state_dict(), resumed.model.stack.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    export_saelens(full.model, tmp_path / "sl")
    assert json.loads((tmp_path / "sl" / "cfg.json").read_text())["architecture"] == "jumprelu"
    back = import_saelens(tmp_path / "sl")
    x = tiny_batches[50]
    assert torch.allclose(back.encode(x), full.model.encode(x), atol=1e-6)
    assert torch.allclose(back(x), full.model(x), atol=1e-5)


# -- it is listed, with no edit outside its file, wherever methods are listed -----------------------

def _helps(monkeypatch) -> dict:
    monkeypatch.setenv("COLUMNS", "400")       # no line wrapping inside a method name
    parser = build_parser()
    return {name: " ".join(p.format_help().split())
            for action in parser._subparsers._group_actions for name, p in action.choices.items()}


def test_it_is_in_every_help(monkeypatch):
    helps = _helps(monkeypatch)
    assert "--matryoshka-widths A,B,.. nested prefix widths" in helps["train"]
    assert f"[batchtopk, {M}, topk, topk-tied]" in helps["train"]               # --k, --aux-k, ...
    assert M in re.search(r"--method METHOD one of (.*?)\(default gba\)", helps["train"]).group(1)
    assert M in re.search(r"--methods METHODS comma-separated subset of (\S*)", helps["llm-bench"]).group(1)
    assert f"polysemy-{M}" in helps["peers"]
    assert M in helps["sweep"]


def test_it_runs_from_polysemy_train(capsys):
    argv = ["train", "--n", "16", "--d", "8", "--s", "1", "--batch-size", "64", "--steps", "30", "--quiet",
            "--eval-samples", "512", "--method", M, "--k", "1", "--matryoshka-widths", "4,16", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train_config"]["method"] == M and out["train_config"]["params"]["matryoshka_widths"] == [4, 16]
    assert main(argv[:-3] + ["--htf", "0.2"]) == 2     # a gba knob: one line, exit 2
    assert "does not apply to method 'matryoshka-batchtopk'" in capsys.readouterr().err


def test_it_runs_in_the_methods_sweep(tmp_path):
    from polysemy.experiments.runner import run_sweep
    from polysemy.experiments.store import load_results
    from polysemy.experiments.sweeps import get_sweep

    spec = get_sweep("methods", quick=True)
    labels = [v["label"] for v in spec.axes[0].values]
    assert M in labels
    bundle = next(v for v in spec.axes[0].values if v["label"] == M)
    assert bundle["k_over_s"] == 1.0        # a method with k gets the true k
    small = spec.replace(train=spec.train.replace(steps=20, log_every=10), eval_samples=256,
                         axes=(spec.axes[0].replace(values=(bundle,)),))
    run_sweep(small, tmp_path / "store", progress=False)
    rows = load_results(tmp_path / "store")
    assert len(rows) == 1 and rows.iloc[0]["train.method"] == M


def test_it_runs_in_polysemy_peers():
    from polysemy.experiments.peers import PeersConfig, is_topk_family, run_peers

    family = f"polysemy-{M}"
    assert is_topk_family(family)            # it has a k: true and wrong k, like the other TopKs
    cfg = PeersConfig(worlds=("paper-toy",), systems=(family,), budget=4096, checkpoints=2, eval_samples=1024)
    rows = run_peers(cfg, progress=False, log=open("/dev/null", "w"))["rows"]
    assert [r["k_label"] for r in rows] == ["true k", "wrong k"] and all(r["family"] == family for r in rows)
    assert all(math.isfinite(r["mcc"]) for r in rows)


def test_llm_bench_plans_it_on_request():
    """Its llm-bench rows come from the registry: batchtopk's k axis and the L0-matched row (a run on a
    tiny model: tests/llm/test_bench.py::test_matryoshka_batchtopk_runs_in_llm_bench)."""
    from polysemy.llm.bench import LLMBenchConfig

    assert M not in LLMBenchConfig().plan.methods                 # opt-in: not in the default list
    cfg = LLMBenchConfig.quick(methods=("gba", M), width=64, batch_size=32)
    rows = cfg.settings() + cfg.matched_settings(3)
    assert (M, "k=64", M, {"k": 64}, "main") in rows and (M, "k=3 (L0 of gba)", M, {"k": 3}, "l0-matched") in rows
