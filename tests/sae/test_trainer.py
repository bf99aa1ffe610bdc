import math

import pytest
import torch

from polysemy.errors import ConfigError
from polysemy.sae import NonFiniteError, TrainConfig, train, train_stacked
from polysemy.sae.models import TiedSAE

from .conftest import SMALL_PARAMS, cfg_for

METHODS = sorted(SMALL_PARAMS)


def states_equal(a, b):
    sa, sb = a.model.stack.state_dict(), b.model.stack.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_result_bitwise(method, tiny_batches):
    a = train(cfg_for(method), iter(tiny_batches), 16, progress=False)
    b = train(cfg_for(method), iter(tiny_batches), 16, progress=False)
    assert states_equal(a, b)
    c = train(cfg_for(method, seed=1), iter(tiny_batches), 16, progress=False)
    assert not states_equal(a, c)


@pytest.mark.parametrize("method", METHODS)
def test_stacked_equals_sequential(method, tiny_world):
    # different seeds, learning rates and data streams per model; one model with another method knob
    cfgs = [cfg_for(method, seed=s, lr=1e-3 * (1 + s)) for s in range(3)]
    knob = {"topk": ("k", 3), "batchtopk": ("k", 3), "gba": ("gamma_minus", 0.05),
            "gba-paper": ("decoder", "tied"), "ba": ("target", 0.1),
            "ba-theory": ("target", 0.1), "relu-l1": ("l1", 0.1), "jumprelu": ("l0_coef", 0.05)}[method]
    cfgs[2] = cfgs[2].with_param(*knob)
    streams = lambda: [tiny_world.stream(64, seed=10 + s) for s in range(3)]  # noqa: E731
    stacked = train_stacked(cfgs, streams(), 16, truth=tiny_world.V, progress=False)
    sequential = [train(c, s, 16, truth=tiny_world.V, progress=False) for c, s in zip(cfgs, streams())]
    for a, b in zip(stacked, sequential):
        assert states_equal(a, b)           # exact on CPU: every op is per model
        assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))


def test_stacked_mixed_structures_are_split_and_kept_in_order(tiny_batches):
    cfgs = [cfg_for("topk"), cfg_for("gba"), cfg_for("topk", seed=5)]
    results = train_stacked(cfgs, [iter(tiny_batches)] * 1 + [iter(tiny_batches), iter(tiny_batches)], 16,
                            progress=False)
    assert [r.config.method for r in results] == ["topk", "gba", "topk"]
    assert states_equal(results[0], train(cfgs[0], iter(tiny_batches), 16, progress=False))


@pytest.mark.parametrize("method", METHODS)
def test_each_method_reduces_the_loss(method, tiny_world):
    cfg = cfg_for(method, steps=60, log_every=10, lr=3e-3)
    result = train(cfg, tiny_world.stream(64, seed=0), 16, truth=tiny_world.V, progress=False)
    h = result.history
    assert list(h["step"]) == [10, 20, 30, 40, 50, 60]
    assert {"loss", "mse", "l0", "alive_fraction", "dead_fraction", "frr_0.9", "frr_0.99", "samples"} <= set(h)
    if method == "ba-theory":
        # a small fixed output scale: the loss barely moves, but the directions align with features
        assert h["mmcs"].iloc[-1] > h["mmcs"].iloc[0]
    else:
        assert h["mse"].iloc[-1] < h["mse"].iloc[0]
    assert result.samples == 60 * 64 and result.steps == 60


@pytest.mark.parametrize("method", METHODS)
def test_unit_norm_invariant(method, tiny_batches):
    result = train(cfg_for(method), iter(tiny_batches), 16, progress=False)
    stack = result.model.stack
    rows = stack.w_GMD if isinstance(stack, TiedSAE) else stack.W_dec_GMD
    assert torch.allclose(rows.norm(dim=2), torch.ones(1, 48), atol=1e-5)


@pytest.mark.parametrize("method", ["gba", "ba"])
def test_biases_stay_in_range_during_training(method, tiny_world):
    cfg = cfg_for(method, steps=100, params={**SMALL_PARAMS[method], "gamma_minus": 0.5, "gamma_plus": 0.5})
    result = train(cfg, tiny_world.stream(64, seed=1), 16, progress=False)
    bias = result.model.stack.bias_GM
    assert bias.min() >= -1.0 and bias.max() <= 0.0 and bias.min() < 0.0  # they moved, within [-1, 0]


@pytest.mark.parametrize("method", ["gba", "topk"])
def test_nonfinite_loss_names_the_step(method, tiny_batches):
    # finite inputs whose squared error overflows float32 at step 5
    batches = [b.clone() for b in tiny_batches[:10]]
    batches[5] *= 1e30
    with pytest.raises(NonFiniteError, match=r"loss of model 0 is (nan|inf) at step 5"):
        train(cfg_for(method), iter(batches), 16, progress=False)


def test_nan_in_data_names_the_step(tiny_batches):
    batches = [b.clone() for b in tiny_batches[:10]]
    batches[7][3, 2] = math.nan
    with pytest.raises(NonFiniteError, match="step 7"):
        train(cfg_for("gba"), iter(batches), 16, progress=False)
    assert issubclass(NonFiniteError, ConfigError)  # the CLI prints it as one line


def test_wrong_batch_shape_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\[B, d=16\]"):
        train(cfg_for("gba"), iter([torch.zeros(8, 5)]), 16, progress=False)


def test_data_exhausted_stops_cleanly(tiny_batches):
    result = train(cfg_for("gba", steps=100), iter(tiny_batches[:25]), 16, progress=False)
    assert result.steps == 25 and result.stop_reason == "data exhausted"
    assert result.history["step"].iloc[-1] == 20


def test_batch_objects_with_x_are_accepted(tiny_world):
    result = train(cfg_for("topk", steps=5), tiny_world.stream(64, seed=0, with_truth=True), 16, progress=False)
    assert result.steps == 5


def test_stop_on_plateau(tiny_world):
    cfg = cfg_for("topk", steps=400, log_every=10, stop_on_plateau=True, plateau_patience=2, plateau_tol=1.0)
    result = train(cfg, tiny_world.stream(64, seed=0), 16, truth=tiny_world.V, progress=False)
    # tol 1.0: nothing can improve by more, so it stops at the first log point where patience allows
    assert result.stop_reason == "plateau" and result.steps == 30


def test_linear_decay_schedule():
    from polysemy.sae.trainer import lr_scale

    cfg = TrainConfig(steps=100, lr_schedule="linear-decay", lr_decay_start=0.5)
    assert lr_scale(cfg, 10) == 1.0 and lr_scale(cfg, 50) == 1.0
    assert lr_scale(cfg, 75) == pytest.approx(0.5) and lr_scale(cfg, 99) == pytest.approx(0.02)
