import json

import pytest
import torch

from polysemy.errors import ConfigError
from polysemy.sae import TrainConfig, train
from polysemy.sae.checkpoint import export_saelens, import_saelens, load_checkpoint, save_checkpoint

from .conftest import SMALL_PARAMS


def cfg_for(method, steps):
    # constant lr: a decaying schedule depends on the total steps, so a shorter first run would differ
    return TrainConfig(method=method, width=48, steps=steps, batch_size=64, log_every=10, lr_schedule="constant",
                       params=SMALL_PARAMS[method])


@pytest.mark.parametrize("method", sorted(SMALL_PARAMS))
def test_resume_is_exact(method, tiny_batches, tmp_path):
    # 2N steps in one go == N steps, save, load, N more (bias adaptation window crosses the split)
    full = train(cfg_for(method, 46), iter(tiny_batches), 16, progress=False)
    half = train(cfg_for(method, 23), iter(tiny_batches[:23]), 16, progress=False)
    save_checkpoint(half, tmp_path / "ck")
    resumed = train(cfg_for(method, 46), iter(tiny_batches[23:]), 16, progress=False,
                    resume=load_checkpoint(tmp_path / "ck"))
    a, b = full.model.stack.state_dict(), resumed.model.stack.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.steps == 46 and resumed.samples == full.samples
    # the first run also logged its last step (23); the rest of the history continues the same grid
    assert list(resumed.history["step"]) == [10, 20, 23, 30, 40, 46]


def test_checkpoint_files_and_no_leftovers(tiny_batches, tmp_path):
    result = train(cfg_for("gba", 10), iter(tiny_batches), 16, progress=False)
    save_checkpoint(result, tmp_path / "ck")
    save_checkpoint(result, tmp_path / "ck")          # overwriting works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    assert {p.name for p in (tmp_path / "ck").iterdir()} == {"config.json", "model.safetensors",
                                                             "optimizer.safetensors", "history.json"}
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert meta["train_config"] == result.config.to_dict() and meta["steps"] == 10
    back = load_checkpoint(tmp_path / "ck")
    assert back.config == result.config
    assert torch.equal(back.model.W_dec, result.model.W_dec)
    # a bare model saves too (no optimizer): loading gives a TrainResult without optimizer state
    save_checkpoint(result.model, tmp_path / "model-only")
    assert load_checkpoint(tmp_path / "model-only").optimizer_state is None


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="config.json"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(ConfigError, match="sae_weights"):
        import_saelens(tmp_path)


@pytest.mark.parametrize("method", ["gba", "ba", "topk", "batchtopk", "relu-l1", "jumprelu"])
def test_saelens_round_trip(method, tiny_batches, tmp_path):
    result = train(cfg_for(method, 40), iter(tiny_batches), 16, progress=False)
    model = result.model
    export_saelens(model, tmp_path / "sl")
    cfg = json.loads((tmp_path / "sl" / "cfg.json").read_text())
    assert cfg["d_in"] == 16 and cfg["d_sae"] == 48 and cfg["architecture"] in ("standard", "jumprelu", "topk")
    back = import_saelens(tmp_path / "sl")
    x = tiny_batches[50]
    assert torch.allclose(back.encode(x), model.encode(x), atol=1e-6)
    assert torch.allclose(back(x), model(x), atol=1e-5)
    assert torch.allclose(back.W_dec, model.W_dec)


def test_tied_relu_exports_as_standard(tiny_batches, tmp_path):
    cfg = cfg_for("gba", 20).with_param("activation", "relu")
    model = train(cfg, iter(tiny_batches), 16, progress=False).model
    export_saelens(model, tmp_path / "sl")
    assert json.loads((tmp_path / "sl" / "cfg.json").read_text())["architecture"] == "standard"
    x = tiny_batches[0]
    assert torch.allclose(import_saelens(tmp_path / "sl")(x), model(x), atol=1e-5)


def test_smooth_relu_has_no_saelens_form(tiny_batches, tmp_path):
    model = train(cfg_for("ba-theory", 5), iter(tiny_batches), 16, progress=False).model
    with pytest.raises(ConfigError, match="smooth-relu"):
        export_saelens(model, tmp_path / "sl")
    assert not (tmp_path / "sl").exists()
