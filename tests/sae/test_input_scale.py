"""The tied methods' ``input_scale`` (methods/tied.py, models.TiedSAE): training on x / c with a
fixed c estimated once from the first batch, while encode/decode/W_dec stay in units of x."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polysemy.errors import ConfigError
from polysemy.sae import TrainConfig, train, train_stacked
from polysemy.sae.checkpoint import load_checkpoint, save_checkpoint

from .conftest import SMALL_PARAMS

STEPS = 40
TIED = ("gba", "ba", "ba-theory")


def cfg_for(method, input_scale="mean-norm", steps=STEPS, seed=0):
    params = {**SMALL_PARAMS[method], "input_scale": input_scale}
    # constant lr: a decaying schedule depends on the total steps, so a shorter first run would differ
    return TrainConfig(method=method, width=48, steps=steps, batch_size=64, log_every=10, seed=seed,
                       lr_schedule="constant", params=params)


def run(method, batches, scale=1.0, input_scale="mean-norm", steps=STEPS):
    return train(cfg_for(method, input_scale, steps), iter([b * scale for b in batches]), 16, progress=False)


def row_cosines(a_MD, b_MD):
    a = a_MD / a_MD.norm(dim=1, keepdim=True)
    b = b_MD / b_MD.norm(dim=1, keepdim=True)
    return (a * b).sum(1)


def mean_centred_norm(x_BD):
    return float((x_BD - x_BD.mean(0)).norm(dim=1).mean())


@pytest.fixture(scope="module")
def reference(tiny_batches):
    return {m: run(m, tiny_batches) for m in ("gba", "ba-theory")}


@settings(max_examples=4, deadline=None, derandomize=True)
@given(log_lam=st.floats(min_value=-2.3, max_value=2.3), method=st.sampled_from(["gba", "ba-theory"]))
def test_scaling_the_data_does_not_change_what_is_learned(log_lam, method, tiny_batches, reference):
    # Law: with "mean-norm", data lam * x gives c' = lam * c, so the SAE sees the same x / c and learns
    # the same directions (float rounding only: cosine >= 0.999 for every row) and the same biases;
    # the model then reproduces lam * x_hat.
    lam = float(torch.tensor(log_lam).exp())
    ref, scaled = reference[method], run(method, tiny_batches, scale=lam)
    assert torch.allclose(scaled.model.stack.input_scale_G, lam * ref.model.stack.input_scale_G, rtol=1e-5)
    assert float(row_cosines(scaled.model.W_dec, ref.model.W_dec).min()) >= 0.999
    assert torch.allclose(scaled.model.stack.bias_GM, ref.model.stack.bias_GM, atol=1e-3)
    x = tiny_batches[0]
    assert torch.allclose(scaled.model(lam * x), lam * ref.model(x), atol=1e-3 * lam)


def test_without_input_scale_the_scale_of_the_data_matters(tiny_batches, reference):
    # the control for the law above: with "none", 5 x the data moves the clamped biases elsewhere
    plain, scaled = run("gba", tiny_batches, input_scale="none"), run("gba", tiny_batches, 5.0, "none")
    assert float(plain.model.stack.input_scale_G) == 1.0
    assert float((plain.model.stack.bias_GM - scaled.model.stack.bias_GM).abs().max()) > 1e-2


@pytest.mark.parametrize("method", TIED)
def test_c_is_the_mean_centred_norm_of_the_first_batch(method, tiny_batches):
    result = run(method, tiny_batches, scale=3.0, steps=2)
    expected = mean_centred_norm(3.0 * tiny_batches[0])
    assert float(result.model.stack.input_scale_G) == pytest.approx(expected, rel=1e-6)
    fixed = run(method, tiny_batches, input_scale=2.5, steps=2)
    assert float(fixed.model.stack.input_scale_G) == 2.5


@pytest.mark.parametrize("method", TIED)
def test_callers_stay_in_units_of_x(method, tiny_batches, reference):
    model = run(method, tiny_batches, scale=4.0, steps=20).model
    x = 4.0 * tiny_batches[1]
    acts = model.encode(x)
    assert torch.allclose(model(x), acts @ model.W_dec + model.b_dec, atol=1e-4)
    assert torch.allclose(model.decode(acts), model(x))
    # the equivalent c = 1 model (what an export must write) encodes and decodes identically
    flat = model.stack.unscaled_copy()
    assert float(flat.input_scale_G) == 1.0
    assert torch.allclose(flat.encode(x[None])[0], acts, atol=1e-4)
    assert torch.allclose(flat.decode(acts[None])[0], model(x), atol=1e-4)


def test_checkpoint_keeps_c_and_resumes_exactly(tiny_batches, tmp_path):
    batches = [3.0 * b for b in tiny_batches]
    full = train(cfg_for("gba", steps=46), iter(batches), 16, progress=False)
    half = train(cfg_for("gba", steps=23), iter(batches[:23]), 16, progress=False)
    save_checkpoint(half, tmp_path / "ck")
    loaded = load_checkpoint(tmp_path / "ck")
    assert torch.equal(loaded.model.stack.input_scale_G, half.model.stack.input_scale_G)
    assert float(loaded.model.stack.input_scale_G) != 1.0
    resumed = train(cfg_for("gba", steps=46), iter(batches[23:]), 16, progress=False, resume=loaded)
    a, b = full.model.stack.state_dict(), resumed.model.stack.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_old_checkpoints_without_c_load_with_c_1(tiny_batches):
    model = run("gba", tiny_batches, input_scale="none", steps=2).model.stack
    state = {k: v for k, v in model.state_dict().items() if k != "input_scale_G"}
    fresh = type(model)(1, model.d, model.width, **model.structure())
    fresh.load_state_dict(state)
    assert float(fresh.input_scale_G) == 1.0


def test_stacked_equals_sequential_with_a_c_per_model(tiny_batches):
    scales = [1.0, 0.3, 7.0]
    cfgs = [cfg_for("gba", seed=i) for i in range(3)]
    datas = [iter([s * b for b in tiny_batches]) for s in scales]
    stacked = train_stacked(cfgs, datas, 16, progress=False)
    for cfg, s, r in zip(cfgs, scales, stacked):
        one = train(cfg, iter([s * b for b in tiny_batches]), 16, progress=False)
        a, b = one.model.stack.state_dict(), r.model.stack.state_dict()
        assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    assert len({float(r.model.stack.input_scale_G) for r in stacked}) == 3


@pytest.mark.parametrize("bad", ["rms", 0.0, -1.0, float("inf"), True])
def test_bad_input_scale_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="input_scale"):
        cfg_for("gba", input_scale=bad)


def test_constant_first_batch_is_a_config_error():
    x = torch.ones(64, 16)
    with pytest.raises(ConfigError, match="mean-norm"):
        train(cfg_for("gba"), iter([x] * 3), 16, progress=False)


def test_saelens_export_of_a_scaled_model_reproduces_its_reconstruction(tmp_path):
    """The SAELens layout has no input scale, so export folds c into b_pre and the biases: the
    exported encode/decode must equal the model's on the original units of x."""
    from polysemy.sae import TrainConfig, train
    from polysemy.sae.checkpoint import export_saelens, import_saelens

    torch.manual_seed(0)
    data = [3.0 * torch.rand(64, 8) for _ in range(30)]
    cfg = TrainConfig(method="gba", width=16, steps=30, batch_size=64,
                      params={"input_scale": "mean-norm", "adapt_every": 5})
    model = train(cfg, iter(data), d=8, progress=False).model
    assert float(model.stack.input_scale_G[0]) != 1.0
    export_saelens(model, tmp_path / "sl")
    back = import_saelens(tmp_path / "sl")
    x = 3.0 * torch.rand(32, 8)
    torch.testing.assert_close(back(x), model(x), rtol=1e-4, atol=1e-4)
