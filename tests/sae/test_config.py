import pytest

from polysemy.errors import ConfigError
from polysemy.sae import TrainConfig, get_method, list_methods


def test_all_registered_methods_present():
    assert set(list_methods()) >= {"gba", "ba", "ba-theory", "topk", "batchtopk", "relu-l1", "jumprelu"}


@pytest.mark.parametrize("method", ["gba", "ba", "ba-theory", "topk", "batchtopk", "relu-l1", "jumprelu"])
def test_params_resolved_and_json_round_trip(method):
    cfg = TrainConfig(method=method, width=64, steps=10)
    assert set(cfg.params) == set(get_method(method).Params.field_names())  # defaults filled in
    back = TrainConfig.from_json(cfg.to_json())
    assert back == cfg and back.config_hash() == cfg.config_hash()


def test_with_param_routes_fields_and_method_params():
    cfg = TrainConfig(method="gba", width=64)
    assert cfg.with_param("lr", 3e-4).lr == 3e-4
    assert cfg.with_param("htf", 0.2).params["htf"] == 0.2
    assert cfg.with_param("method", "topk").params["k"] == get_method("topk").Params().k
    with pytest.raises(ConfigError, match="k"):
        cfg.with_param("k", 3)            # not a gba parameter


@pytest.mark.parametrize("kwargs, name", [
    ({"width": 0}, "width"),
    ({"lr": -1.0}, "lr"),
    ({"method": "nope"}, "method"),
    ({"params": {"htf": 2.0}}, "htf"),
    ({"params": {"ltf": 0.5, "htf": 0.1}}, "ltf"),
    ({"params": {"groups": 100}, "width": 10}, "groups"),
    ({"params": {"bogus": 1}}, "bogus"),
    ({"params": {"eps": 0.01}}, "eps"),
    ({"method": "topk", "params": {"k": 100}, "width": 50}, "k"),
    ({"method": "ba-theory", "params": {"target": 0.0001}, "batch_size": 64}, "target"),
    ({"lr_schedule": "cosine"}, "lr_schedule"),
])
def test_bad_configs_raise_one_line_config_error(kwargs, name):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**kwargs)
    message = str(info.value)
    assert name in message and "\n" not in message


def test_small_buffer_warns():
    with pytest.warns(UserWarning, match="buffer"):
        TrainConfig(method="gba", params={"buffer": 100})
