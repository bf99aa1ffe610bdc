"""The tied methods' ``pre_bias`` (methods/tied.py): "train" gives b_pre gradients, "fixed" keeps it at
its initialisation (the first batch's mean) exactly."""

import pytest
import torch

from polysemy.errors import ConfigError
from polysemy.sae import TrainConfig, train, train_stacked
from polysemy.sae.checkpoint import load_checkpoint, save_checkpoint

from .conftest import SMALL_PARAMS

STEPS = 30
TIED = ("gba", "ba", "ba-theory")


def cfg_for(method, pre_bias, steps=STEPS, seed=0, activation=None):
    params = {**SMALL_PARAMS[method], "pre_bias": pre_bias, "input_scale": "none"}   # b_pre in units of x
    if activation is not None:
        params["activation"] = activation
    # constant lr: a decaying schedule depends on the total steps, so a shorter first run would differ
    return TrainConfig(method=method, width=48, steps=steps, batch_size=64, log_every=10, seed=seed,
                       lr_schedule="constant", params=params)


def run(cfg, batches):
    return train(cfg, iter(batches), 16, progress=False)


@pytest.mark.parametrize("method", TIED)
def test_fixed_pre_bias_stays_at_the_first_batch_mean_exactly(method, tiny_batches):
    b_pre = run(cfg_for(method, "fixed"), tiny_batches).model.stack.b_pre_GD[0]
    # bit-for-bit: a zero gradient leaves Adam's moments at 0, so every update is exactly 0
    assert torch.equal(b_pre, tiny_batches[0].mean(0))


@pytest.mark.parametrize("method", TIED)
def test_trained_pre_bias_moves(method, tiny_batches):
    b_pre = run(cfg_for(method, "train"), tiny_batches).model.stack.b_pre_GD[0]
    # Adam moves each coordinate by about lr = 1e-3 per step, so 30 steps move it far beyond 1e-4
    assert float((b_pre - tiny_batches[0].mean(0)).abs().max()) > 1e-4


def test_stacked_equals_sequential_with_mixed_pre_bias(tiny_batches):
    cfgs = [cfg_for("gba", pre_bias, seed=i, activation=act)
            for i, (pre_bias, act) in enumerate([("train", "relu"), ("fixed", "relu"), ("fixed", "relu")])]
    stacked = train_stacked(cfgs, [iter(tiny_batches) for _ in cfgs], 16, progress=False)
    for cfg, r in zip(cfgs, stacked):
        a, b = run(cfg, tiny_batches).model.stack.state_dict(), r.model.stack.state_dict()
        assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    assert torch.equal(stacked[1].model.stack.b_pre_GD[0], tiny_batches[0].mean(0))
    assert not torch.equal(stacked[0].model.stack.b_pre_GD[0], tiny_batches[0].mean(0))


def test_checkpoint_resume_keeps_b_pre_fixed(tiny_batches, tmp_path):
    full = run(cfg_for("gba", "fixed", steps=40), tiny_batches)
    half = run(cfg_for("gba", "fixed", steps=20), tiny_batches[:20])
    save_checkpoint(half, tmp_path / "ck")
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.config.method_params.pre_bias == "fixed"
    resumed = train(cfg_for("gba", "fixed", steps=40), iter(tiny_batches[20:]), 16, progress=False, resume=loaded)
    a, b = full.model.stack.state_dict(), resumed.model.stack.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(b["b_pre_GD"][0], tiny_batches[0].mean(0))


def test_default_is_train():
    assert TrainConfig(method="gba", width=16).method_params.pre_bias == "train"
    assert TrainConfig(method="ba-theory", width=16).method_params.pre_bias == "train"


@pytest.mark.parametrize("method", TIED)
@pytest.mark.parametrize("bad", ["frozen", "", None, 0, True])
def test_bad_pre_bias_is_a_config_error(method, bad):
    with pytest.raises(ConfigError, match="pre_bias"):
        cfg_for(method, bad)
