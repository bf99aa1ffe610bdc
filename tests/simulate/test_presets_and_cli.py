"""Presets and the shared world options."""

import argparse

import pytest

from polysemy.errors import ConfigError
from polysemy.simulate import PRESETS, World, WorldConfig, get_preset
from polysemy.simulate.cli_options import add_world_arguments, world_config_from_args


def test_presets_are_the_papers_worlds():
    assert {"paper-toy", "paper-toy-literal", "theorem-uniform", "resonance-light", "resonance-heavy",
            "realistic-1k"} <= set(PRESETS)
    toy, literal = get_preset("paper-toy"), get_preset("paper-toy-literal")
    # the calibrated reading moves d and the coefficient spread (benchmarks/calibrate_paper_toy.py); the
    # literal one keeps the paper's d = 42 and the default U[0.5, 1.5]
    assert (toy.n, toy.d, toy.support, tuple(toy.mixture_levels)) == (128, 96, "mixture", (3, 20))
    assert tuple(toy.spread) == (0.1, 1.9)
    assert literal.replace(d=96, spread=(0.1, 1.9)) == toy and literal.d == 42
    uniform = get_preset("theorem-uniform")
    assert (uniform.n, uniform.d, uniform.s, uniform.support, uniform.dictionary) == (256, 64, 3, "exact", "gaussian")
    light, heavy = get_preset("resonance-light"), get_preset("resonance-heavy")
    assert light.d > light.n ** 0.5 > heavy.d


def test_unknown_preset_lists_the_names():
    with pytest.raises(ConfigError, match="paper-toy.*theorem-uniform"):
        get_preset("paper")


def _parse(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)  # commands keep --seed for training
    add_world_arguments(parser)
    return world_config_from_args(parser.parse_args(argv))


def test_no_options_give_the_defaults_and_a_preset_gives_the_preset():
    assert _parse([]) == WorldConfig()
    assert _parse(["--preset", "paper-toy"]) == get_preset("paper-toy")


def test_options_override_the_preset_and_nothing_else():
    cfg = _parse(["--preset", "paper-toy", "--d", "20", "--world-seed", "5", "--spread", "1", "2", "--noise", "0.1"])
    assert cfg == get_preset("paper-toy").replace(d=20, seed=5, spread=(1.0, 2.0), noise=0.1)


def test_options_select_the_kind_they_need():
    assert _parse(["--rho2", "0.3"]).support == "cooccur"
    zipf = _parse(["--zipf-exponent", "1.5"])
    assert (zipf.support, zipf.frequency_profile) == ("bernoulli", "zipf")
    assert _parse(["--frequency", "0.02"]).support == "bernoulli"
    assert _parse(["--n", "64", "--d", "16", "--coherence", "0.5"]).dictionary == "coherent"
    assert _parse(["--imbalance", "10"]).magnitude_profile == "geometric"
    assert World(_parse(["--preset", "theorem-uniform", "--support", "bernoulli"])).f == pytest.approx(3 / 256)


@pytest.mark.parametrize("argv, param", [
    (["--n", "8", "--s", "9"], "s"),
    (["--d", "0"], "d"),
    (["--frequency", "1.5"], "frequency"),
    (["--coherence", "0.01"], "coherence"),
    (["--support", "exact", "--rho2", "0.5"], "rho2"),
    (["--preset", "nope"], "preset"),
])
def test_impossible_options_raise_one_line_config_errors(argv, param):
    with pytest.raises(ConfigError) as info:
        _parse(argv)
    assert str(info.value).startswith(param) and "\n" not in str(info.value)


def test_every_option_has_help():
    parser = argparse.ArgumentParser()
    add_world_arguments(parser)
    options = [a for a in parser._actions if a.dest != "help"]
    assert {a.dest for a in options} >= {"preset", "n", "d", "s", "dictionary", "coherence", "support",
                                         "frequency_profile", "frequency", "zipf_exponent", "f_max", "f_min",
                                         "rho2", "imbalance", "spread", "noise", "world_seed"}
    assert all(a.help and a.default is None for a in options)
