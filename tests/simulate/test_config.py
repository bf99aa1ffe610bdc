"""WorldConfig: JSON round trips keep the hash; impossible input is one ConfigError line naming the parameter."""

import json

import pytest
from hypothesis import given

from polysemy.errors import ConfigError
from polysemy.simulate import WorldConfig

from .strategies import world_configs


@given(world_configs())
def test_json_round_trip_keeps_config_and_hash(cfg):
    again = WorldConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.config_hash() == cfg.config_hash()
    assert WorldConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).config_hash() == cfg.config_hash()


def test_hash_changes_with_any_field():
    base = WorldConfig()
    assert base.replace(seed=1).config_hash() != base.config_hash()
    assert base.replace(d=65).config_hash() != base.config_hash()
    assert base.replace(noise=0.1).config_hash() != base.config_hash()


IMPOSSIBLE = [
    (dict(n=8, s=9), "s"),
    (dict(d=0), "d"),
    (dict(n=0), "n"),
    (dict(s=0), "s"),
    (dict(support="bernoulli", frequency=1.5), "frequency"),
    (dict(support="bernoulli", frequency=0.0), "frequency"),
    (dict(dictionary="coherent", n=256, d=64, coherence=0.05), "coherence"),   # below the Welch bound
    (dict(dictionary="coherent", n=16, d=32, coherence=1.0), "coherence"),
    (dict(dictionary="coherent"), "coherence"),                                 # missing
    (dict(dictionary="gaussian", coherence=0.3), "coherence"),                  # would be ignored
    (dict(support="cooccur", n=64, s=4, rho2=0.01), "rho2"),                    # below f = 1/16
    (dict(support="cooccur", rho2=1.5), "rho2"),
    (dict(support="exact", rho2=0.5), "rho2"),
    (dict(support="bernoulli", frequency_profile="zipf", f_max=0.01, f_min=0.1), "f_min"),
    (dict(support="bernoulli", frequency_profile="zipf", zipf_exponent=0.0), "zipf_exponent"),
    (dict(support="bernoulli", frequency_profile="explicit", n=4, frequencies=(0.1, 0.2)), "frequencies"),
    (dict(support="bernoulli", frequency_profile="explicit", n=2, s=1, frequencies=(0.1, 1.2)), "frequencies"),
    (dict(support="mixture", n=10, mixture_levels=(3, 20)), "mixture_levels"),
    (dict(support="mixture", mixture_levels=(3, 20), mixture_weights=(1.0,)), "mixture_weights"),
    (dict(support="hierarchy", n=10, hierarchy_children=4, s=3), "s"),          # only 2 parents
    (dict(support="hierarchy", child_probability=1.5), "child_probability"),
    (dict(magnitude_profile="geometric", imbalance=0.5), "imbalance"),
    (dict(imbalance=3.0), "imbalance"),                                         # needs geometric
    (dict(magnitude_profile="explicit", n=3, magnitudes=(1.0, -1.0, 1.0)), "magnitudes"),
    (dict(spread=(0.0, 1.0)), "spread"),
    (dict(spread=(2.0, 1.0)), "spread"),
    (dict(noise=-0.1), "noise"),
    (dict(dictionary="spherical"), "dictionary"),
    (dict(support="poisson"), "support"),
    (dict(dictionary="matrix", n=2, d=2, s=1, matrix=((1.0, 0.0),)), "matrix"),     # wrong shape
    (dict(dictionary="matrix", matrix="/nonexistent/V.npy"), "matrix"),
]


@pytest.mark.parametrize("kwargs, param", IMPOSSIBLE)
def test_impossible_input_is_one_line_naming_the_parameter(kwargs, param):
    with pytest.raises(ConfigError) as info:
        WorldConfig(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(param), message


def test_unknown_field_is_rejected():
    with pytest.raises(ConfigError, match="unknown field"):
        WorldConfig.from_dict({"n": 10, "sparsity": 3})
