"""GBA 0.2: adaptation that is live at any input scale, and the diagnostics that show it
(docs/recovery-study.md, section 0).

Laws: the proportional lowering step never exceeds the paper's full step, is zero at the target and
full far above it; the quantile start makes every neuron fire at its target on the first batch; the
input scale makes training independent of the data's units. Checks: a run whose biases end at a bound
is reported (history, ``polysemy train --json``, a warning), one that adapts is not.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polysemy.cli import main
from polysemy.sae import TrainConfig, train
from polysemy.sae import bias_adaptation as adaptation
from polysemy.sae.diagnostics import adaptation_report, bound_warning, samples_to_recovery
from polysemy.sae.methods.gba import AdaptiveTiedSAE
from polysemy.simulate import World, WorldConfig

WORLD = WorldConfig(n=32, d=24, s=2)


def _state(freq: np.ndarray, target: np.ndarray, bias: np.ndarray, peak: np.ndarray) -> AdaptiveTiedSAE:
    M = len(freq)
    model = AdaptiveTiedSAE(1, 4, M)
    with torch.no_grad():
        model.bias_GM.copy_(torch.tensor(bias[None], dtype=torch.float32))
        model.target_GM.copy_(torch.tensor(target[None], dtype=torch.float32))
        model.act_count_GM.copy_(torch.tensor(freq[None] * 1000.0, dtype=torch.float32))
        model.peak_GM.copy_(torch.tensor(peak[None], dtype=torch.float32))
        model.stat_samples_G.fill_(1000.0)
    return model


@settings(max_examples=60, deadline=None, derandomize=True)
@given(M=st.integers(1, 16), seed=st.integers(0, 2**31 - 1))
def test_proportional_lowering_is_a_fraction_of_the_full_step(M, seed):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.001, 0.5, M)
    freq = np.round(rng.uniform(0.0, 1.0, M) * 1000.0) / 1000.0
    bias, peak = -rng.uniform(0.0, 0.9, M), rng.exponential(1.0, M)
    args = [torch.tensor([0.1]), torch.tensor([0.1]), torch.tensor([1e-4]), torch.tensor([-1.0])]
    full, prop = _state(freq, target, bias, peak), _state(freq, target, bias, peak)
    adaptation.adapt_biases(full, *args, torch.tensor([0.0]))
    adaptation.adapt_biases(prop, *args, torch.tensor([1.0]))
    before = torch.tensor(bias, dtype=torch.float32)
    step_full, step_prop = before - full.bias_GM[0], before - prop.bias_GM[0]
    over = torch.tensor(freq > target)
    # only neurons above their target are lowered, by at most the full step, by (1 - target/p) of it
    # where the floor does not bind
    assert torch.all(step_prop[over] <= step_full[over] + 1e-6) and torch.all(step_prop[over] >= -1e-6)
    excess = torch.tensor(1.0 - target / np.maximum(freq, 1e-12), dtype=torch.float32).clamp(0, 1)
    free = over & (full.bias_GM[0] > -1.0 + 1e-6)
    torch.testing.assert_close(step_prop[free], (excess * step_full)[free], atol=1e-5, rtol=1e-4)
    assert torch.equal(step_prop[~over], step_full[~over])      # the raise rule is the paper's


def test_quantile_start_fires_every_neuron_at_its_target_on_the_first_batch():
    world = World(WORLD)
    x = world.sample(2048, torch.Generator().manual_seed(0))
    cfg = TrainConfig(method="gba", width=64, steps=0, batch_size=2048, params={"htf": 0.2, "ltf": 0.01})
    model = train(cfg, iter([x]), WORLD.d, progress=False).model
    fired = (model.encode(x) > 0).float().mean(0)
    target = model.stack.target_GM[0]
    # b = -(ceil(p B)-th largest u): that sample sits at the threshold, the ceil(p B) - 1 above it fire
    # (continuous data, no ties)
    torch.testing.assert_close(fired, (torch.ceil(target * 2048) - 1) / 2048)


@pytest.mark.parametrize("scale", [0.01, 100.0])
def test_training_does_not_depend_on_the_data_units(scale):
    """The same world in other units (WorldConfig.scale) gives the same decoder directions, the same
    biases and the same firing, up to float rounding (c scales with the data; docs/input-scale.md)."""
    def run(cfg_world):
        world = World(cfg_world)
        cfg = TrainConfig(method="gba", width=64, steps=150, batch_size=128, log_every=50,
                          params={"adapt_every": 10})
        return train(cfg, world.stream(128, seed=1), WORLD.d, progress=False)

    a, b = run(WORLD), run(WORLD.replace(scale=scale))
    rows_a = torch.nn.functional.normalize(a.model.W_dec, dim=1)
    rows_b = torch.nn.functional.normalize(b.model.W_dec, dim=1)
    assert float((rows_a * rows_b).sum(1).min()) > 0.999
    torch.testing.assert_close(a.model.stack.bias_GM, b.model.stack.bias_GM, atol=1e-3, rtol=0)
    assert a.history["l0"].tolist() == pytest.approx(b.history["l0"].tolist(), abs=0.05)


def test_scale_is_part_of_the_world_and_its_hash():
    scaled = WORLD.replace(scale=10.0)
    assert scaled.config_hash() != WORLD.config_hash()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    torch.testing.assert_close(World(scaled).sample(16, g()), 10.0 * World(WORLD).sample(16, g()))


def test_diagnostics_read_the_history():
    history = pd.DataFrame({"samples": [100, 200, 300], "frr_0.9": [0.5, 0.96, 0.99],
                            "bias_at_bound": [0.0, 0.1, 0.2], "g0_target": [0.1] * 3, "g0_freq": [0.2, 0.1, 0.09],
                            "g0_at_bound": [0.0, 0.0, 0.4], "g1_target": [0.01] * 3, "g1_freq": [0.01] * 3,
                            "g1_at_bound": [0.0] * 3})
    assert samples_to_recovery(history) == 200
    assert samples_to_recovery(history.assign(**{"frr_0.9": [0.1, 0.2, 0.3]})) is None
    assert adaptation_report(history) == [{"group": 0, "target": 0.1, "achieved": 0.09, "at_bound": 0.4},
                                          {"group": 1, "target": 0.01, "achieved": 0.01, "at_bound": 0.0}]
    assert "20.0% of the biases" in bound_warning(history)
    assert bound_warning(history.assign(bias_at_bound=[0.0, 0.0, 0.05])) is None
    assert adaptation_report(history[["samples", "frr_0.9"]]) is None


TRAIN = ["train", "--n", "32", "--d", "24", "--s", "2", "--batch-size", "128", "--steps", "60", "--quiet",
         "--eval-samples", "1024", "--json"]


def test_train_json_reports_adaptation_and_recovery(capsys):
    assert main([*TRAIN, "--adapt-every", "10"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    groups = out["adaptation"]
    assert [g["group"] for g in groups] == list(range(10))
    assert all(g["at_bound"] == 0.0 and 0.0 <= g["achieved"] <= 1.0 for g in groups)
    assert out["samples_to_recovery"] is None or out["samples_to_recovery"] % 128 == 0
    assert "warning" not in captured.err


def test_train_warns_when_biases_end_at_a_bound(capsys):
    # the paper's GBA on raw inputs of norm ~10 (scale 5): the lowering steps drive biases to the floor -1
    argv = [*TRAIN, "--method", "gba-paper", "--scale", "5", "--gamma", "0.5", "--adapt-every", "5"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert max(g["at_bound"] for g in out["adaptation"]) > 0.05
    assert "of the biases ended at a bound" in captured.err


def test_gba_paper_is_the_published_recipe():
    params = TrainConfig(method="gba-paper").method_params
    assert (params.gamma_plus, params.gamma_minus, params.groups, params.htf, params.ltf) == (0.01, 0.01, 10, 0.1, 0.001)
    assert (params.input_scale, params.bias_init, params.decoder, params.lowering, params.bias_floor) == \
        ("none", "zero", "tied", "full", -1.0)
    cfg = TrainConfig(method="gba-paper")
    assert (cfg.lr, cfg.lr_schedule) == (1e-3, "constant")
    ours = TrainConfig(method="gba")
    assert (ours.lr, ours.lr_schedule) == (1e-2, "linear-decay")
    assert (ours.method_params.input_scale, ours.method_params.decoder) == ("mean-norm", "untied")


def test_train_cli_sets_the_lowering_step(capsys):
    assert main([*TRAIN, "--steps", "5", "--lowering", "full"]) == 0
    assert json.loads(capsys.readouterr().out)["train_config"]["params"]["lowering"] == "full"
    assert main([*TRAIN, "--steps", "5", "--lowering", "sideways"]) == 2
    assert "lowering must be one of" in capsys.readouterr().err
