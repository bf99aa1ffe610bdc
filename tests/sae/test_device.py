"""Device and precision options of training (the GPU path, checked on the CPU)."""

import pytest
import torch

from polysemy.cli import main
from polysemy.errors import ConfigError
from polysemy.sae import TrainConfig, train
from polysemy.sae.trainer import check_device


def test_bf16_autocast_trains_every_method_with_fp32_state(tiny_world):
    for method, params in (("gba", {"adapt_every": 5, "buffer": 2000}), ("topk", {"k": 2}), ("jumprelu", {}),
                           ("batchtopk", {"k": 2}), ("relu-l1", {}), ("ba-theory", {"target": 0.05})):
        cfg = TrainConfig(method=method, width=48, steps=20, batch_size=64, log_every=10, params=params)
        result = train(cfg, tiny_world.stream(64, seed=0), 16, progress=False, precision="bf16")
        assert all(t.dtype == torch.float32 for t in result.model.stack.state_dict().values() if t.is_floating_point())
        assert result.history["mse"].notna().all()


def test_unknown_precision_and_missing_device_are_config_errors(tiny_world):
    cfg = TrainConfig(method="topk", width=48, steps=2, batch_size=64, params={"k": 2})
    with pytest.raises(ConfigError, match="precision"):
        train(cfg, tiny_world.stream(64), 16, progress=False, precision="fp8")
    with pytest.raises(ConfigError, match="device"):
        check_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            check_device("cuda")


def test_train_cli_device_error_is_one_line(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    status = main(["train", "--n", "16", "--d", "8", "--s", "2", "--steps", "2", "--device", "cuda", "--quiet"])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert "CUDA is not available" in err and "\n" not in err


def test_world_stream_on_a_device_gives_the_cpu_numbers(tiny_world):
    a = next(tiny_world.stream(32, seed=5))
    b = next(tiny_world.stream(32, seed=5, device="cpu"))
    assert torch.equal(a, b)
