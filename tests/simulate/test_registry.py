"""Worlds from registries: kinds registered by name, sub-configs as views of the flat config, CLI
options generated from the params' metadata, and a toy kind registered here as the extension proof."""

import argparse
import dataclasses
import json
import pickle
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from polysemy.cli import main
from polysemy.errors import ConfigError, require_float_range
from polysemy.simulate import World, WorldConfig, get_preset
from polysemy.simulate.cli_options import add_world_arguments, world_config_from_args, world_option_dests
from polysemy.simulate.config import FLAT_FORM
from polysemy.simulate.dictionaries import Coherent, Dictionary
from polysemy.simulate.magnitudes import Magnitudes
from polysemy.simulate.registry import (DICTIONARIES, SUPPORTS, SupportParams, param, param_table,
                                        register_dictionary, register_support)
from polysemy.simulate.supports import Bernoulli, Mixture, Support, bernoulli_subsets


class Toy(Support):
    """Independent features, each firing with probability ``toy_rate`` (a test kind)."""

    @dataclass(frozen=True)
    class Params(SupportParams):
        toy_rate: float = param(0.1, "firing rate of the toy support, in (0, 1] (default 0.1)", cli_type=float,
                                metavar="P")

    summary = "independent at --toy-rate"

    @classmethod
    def validate(cls, cfg):
        require_float_range("toy_rate", cfg.toy_rate, 0.0, 1.0, low_open=True)

    def expected_frequencies(self):
        return np.full(self.n, float(self.cfg.toy_rate))

    def _rho2(self):
        return float(self.cfg.toy_rate)

    def sample(self, batch_size, generator):
        return bernoulli_subsets(batch_size, self.n, float(self.cfg.toy_rate), generator)


class Spikes(Dictionary):
    """Standard basis rows (needs n <= d; a test kind)."""

    summary = "basis rows"

    @classmethod
    def validate(cls, cfg):
        if cfg.n > cfg.d:
            raise ConfigError(f"n must be at most d={cfg.d} for dictionary='spikes', got {cfg.n}")

    @classmethod
    def build(cls, cfg, rng):
        return np.eye(cfg.n, cfg.d)

    @classmethod
    def predicted_coherence(cls, cfg):
        return 0.0, "spikes: orthonormal"


@pytest.fixture
def toy_kinds():
    register_support("toy")(Toy)
    register_dictionary("spikes")(Spikes)
    yield
    SUPPORTS.unregister("toy")
    DICTIONARIES.unregister("spikes")


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_world_arguments(parser)
    return world_config_from_args(parser.parse_args(argv))


def test_the_flat_form_is_always_serialised():
    assert set(FLAT_FORM) <= set(param_table())
    for cfg in (WorldConfig(), get_preset("paper-toy"), get_preset("realistic-1k")):
        assert list(cfg.to_dict()) == list(FLAT_FORM)
    assert SUPPORTS.names() == ("exact", "bernoulli", "mixture", "cooccur", "hierarchy", "structured")
    assert DICTIONARIES.names() == ("gaussian", "orthogonal", "coherent", "matrix")


def test_sub_configs_are_views_and_compose_back():
    cfg = WorldConfig(n=64, d=16, s=2, support="bernoulli", frequency_profile="zipf", f_max=0.3,
                      dictionary="coherent", coherence=0.5, magnitude_profile="geometric", imbalance=4.0)
    assert isinstance(cfg.support_params, Bernoulli.Params) and cfg.support_params.f_max == 0.3
    assert cfg.support_kind is Bernoulli and type(Support(cfg)) is Bernoulli
    assert cfg.dictionary_params == Coherent.Params(coherence=0.5) and cfg.dictionary_kind is Coherent
    assert cfg.magnitude_params == Magnitudes(magnitude_profile="geometric", imbalance=4.0)
    again = WorldConfig.compose(support=cfg.support_params, dictionary=cfg.dictionary_params,
                                magnitudes=cfg.magnitude_params, n=64, d=16, s=2)
    assert again == cfg and again.config_hash() == cfg.config_hash()
    assert WorldConfig.compose(support=Mixture.Params(mixture_levels=(2, 4), mixture_weights=(1.0, 1.0)),
                               n=16, d=8) == WorldConfig(n=16, d=8, support="mixture", mixture_levels=(2, 4),
                                                         mixture_weights=(1.0, 1.0))


def test_world_config_stays_frozen_hashable_and_picklable():
    cfg = get_preset("realistic-1k")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n = 3
    assert pickle.loads(pickle.dumps(cfg)) == cfg and {cfg: 1}[get_preset("realistic-1k").replace()] == 1
    assert cfg.replace(d=64).d == 64 and cfg.d == 128
    with pytest.raises(ConfigError, match="unknown field"):
        cfg.replace(dimension=3)


def test_a_toy_support_kind_builds_worlds_and_gets_its_options(toy_kinds):
    cfg = WorldConfig(n=40, d=8, support="toy", toy_rate=0.2)
    assert cfg.to_dict()["toy_rate"] == 0.2 and WorldConfig.from_json(cfg.to_json()) == cfg
    assert set(cfg.to_dict()) == set(FLAT_FORM) | {"toy_rate"}
    world = World(cfg)
    batch = world.sample_with_truth(4000, torch.Generator().manual_seed(0))
    assert world.expected_l0 == pytest.approx(8.0)
    assert float((batch.indices >= 0).sum()) / 4000 == pytest.approx(8.0, rel=0.05)
    # the options are generated from the registry: the kind and its parameter, which selects it
    assert _parse(["--n", "40", "--d", "8", "--toy-rate", "0.2"]) == cfg
    assert _parse(["--support", "toy", "--n", "40", "--d", "8"]).toy_rate == 0.1
    assert "toy_rate" in world_option_dests()
    # registering a kind changes no other world's hash
    assert WorldConfig().config_hash() == "7bca21a20549bc22"
    assert get_preset("paper-toy").config_hash() == "10a59e773bc1030c"


def test_a_toy_dictionary_kind_builds_worlds(toy_kinds):
    world = World(_parse(["--dictionary", "spikes", "--n", "4", "--d", "6", "--s", "1"]))
    assert torch.equal(world.V, torch.eye(4, 6))
    with pytest.raises(ConfigError, match="^n must be at most d=6"):
        WorldConfig(n=8, d=6, dictionary="spikes")


def test_the_kinds_are_listed_by_help(toy_kinds, capsys):
    for command in ("check", "train"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "toy (independent at --toy-rate)" in out and "--toy-rate P" in out
        assert "spikes (basis rows)" in out and "structured (" in out


@pytest.mark.parametrize("argv, start", [
    (["--toy-rate", "2"], "toy_rate must be in (0.0, 1.0]"),
    (["--support", "exact", "--toy-rate", "0.2"], "toy_rate applies only to support='toy', got support='exact'"),
    (["--support", "nope"], "argument --support: invalid choice: 'nope'"),
])
def test_bad_toy_options_are_one_line_errors_with_status_2(toy_kinds, capsys, argv, start):
    assert main(["check", "--samples", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"polysemy: error: {start}") and err.count("\n") == 1


def test_a_parameter_of_another_kind_is_refused(toy_kinds):
    with pytest.raises(ConfigError) as info:
        WorldConfig(support="bernoulli", toy_rate=0.3)
    assert str(info.value) == "toy_rate applies only to support='toy', got support='bernoulli'"
    assert "toy_rate" not in WorldConfig(toy_rate=0.1).to_dict()  # its default: nothing is kept


@pytest.mark.parametrize("name, default, refusal", [
    ("rho2", 0.5, "'rho2' is declared twice"),         # a shared name must be declared alike
    ("n_parents", 1, "taken by WorldConfig"),          # it would hide WorldConfig.n_parents
])
def test_a_kind_whose_parameter_clashes_is_refused(name, default, refusal):
    params = dataclasses.make_dataclass("Params", [(name, float, param(default, "a clashing parameter"))],
                                        bases=(SupportParams,), frozen=True)
    clash = type("Clash", (Support,), {"Params": params})
    with pytest.raises(ValueError, match=refusal):
        register_support("clash")(clash)
    assert "clash" not in SUPPORTS and param_table()["rho2"].default is None


def test_every_flag_of_the_old_hand_written_options_is_kept():
    old = ["preset", "n", "d", "s", "dictionary", "coherence", "matrix", "support", "frequency_profile", "frequency",
           "zipf_exponent", "f_max", "f_min", "rho2", "imbalance", "spread", "noise", "scale", "world_seed"]
    dests = world_option_dests()                 # what polysemy train --resume refuses
    assert [d for d in dests if d in old] == old
    assert set(dests) - set(old) == {"mixture_levels", "mixture_weights", "hierarchy_children", "child_probability",
                                     "correlation_rank", "correlation_scale"}


def test_generated_options_select_kinds_and_drop_what_the_world_no_longer_uses():
    assert _parse(["--rho2", "0.5", "--frequency", "0.1"]).support == "cooccur"   # the kind that uses both
    assert _parse(["--mixture-levels", "2", "5"]) == WorldConfig(support="mixture", mixture_levels=(2, 5))
    structured = _parse(["--n", "60", "--hierarchy-children", "2", "--correlation-rank", "2",
                         "--correlation-scale", "0.3"])
    assert (structured.support, structured.n_parents, structured.correlation_rank) == ("structured", 20, 2)
    hierarchy = _parse(["--preset", "realistic-1k", "--support", "hierarchy"])
    assert (hierarchy.hierarchy_children, hierarchy.child_probability, hierarchy.f_max) == (3, 0.8, None)
    assert _parse(["--preset", "realistic-1k", "--support", "exact"]).hierarchy_children == 4
    assert json.loads(json.dumps(hierarchy.to_dict())) == hierarchy.to_dict()
