"""Hooks read exactly the model's own hidden states, and the early exit runs only the needed blocks."""

import pytest
import torch

pytest.importorskip("transformers", reason="the LLM extras (transformers) are not installed")

from polysemy.errors import ConfigError  # noqa: E402
from polysemy.llm.model import check_device  # noqa: E402
from polysemy.llm.sites import capture, decoder_blocks, splice  # noqa: E402


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_resid_capture_equals_output_hidden_states(tiny_lm, tiny_contexts, layer):
    # hidden_states[L] is the output of block L for L < n_layers (the last entry is post-norm).
    full = tiny_lm.model(input_ids=tiny_contexts, output_hidden_states=True).hidden_states[layer]
    got = capture(tiny_lm.model, tiny_contexts, layer, "resid")
    assert got.shape == full.shape
    torch.testing.assert_close(got, full, rtol=0, atol=0)


def test_capture_runs_only_blocks_up_to_layer(tiny_lm, tiny_contexts):
    calls = []
    handles = [b.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
               for i, b in enumerate(decoder_blocks(tiny_lm.model))]
    try:
        capture(tiny_lm.model, tiny_contexts, 2, "resid")
    finally:
        for h in handles:
            h.remove()
    assert calls == [0, 1]


def test_truncated_model_gives_the_full_models_hidden_state(tiny_lm, tiny_contexts):
    import copy

    layer = 2
    full = tiny_lm.model(input_ids=tiny_contexts, output_hidden_states=True).hidden_states[layer]
    short = copy.deepcopy(tiny_lm.model)
    short.model.layers = short.model.layers[:layer]
    # Without the final norm: the last block's raw output, read by a hook on the truncated model.
    got = capture(short, tiny_contexts, layer, "resid")
    torch.testing.assert_close(got, full, rtol=0, atol=0)


def test_mlp_site_is_the_mlp_output(tiny_lm, tiny_contexts):
    seen = []
    mlp = decoder_blocks(tiny_lm.model)[1].mlp
    h = mlp.register_forward_hook(lambda m, a, o: seen.append(o))
    try:
        tiny_lm.model(input_ids=tiny_contexts)
    finally:
        h.remove()
    torch.testing.assert_close(capture(tiny_lm.model, tiny_contexts, 2, "mlp"), seen[0], rtol=0, atol=0)


def test_splice_identity_changes_nothing_and_zero_changes_logits(tiny_lm, tiny_contexts):
    clean = tiny_lm.model(input_ids=tiny_contexts).logits
    with splice(tiny_lm.model, 2, "resid", lambda a: a):
        same = tiny_lm.model(input_ids=tiny_contexts).logits
    with splice(tiny_lm.model, 2, "resid", torch.zeros_like):
        zero = tiny_lm.model(input_ids=tiny_contexts).logits
    torch.testing.assert_close(same, clean, rtol=0, atol=0)
    assert (zero - clean).abs().max() > 1e-3


def test_bfloat16_autocast_plumbing_on_cpu(tiny_lm, tiny_contexts):
    # The CUDA path uses the same autocast code; on CPU bf16 autocast must give float32 output close to
    # the fp32 one. bf16 keeps 8 mantissa bits (relative error ~4e-3 per op); 4 blocks of matmuls stay
    # well inside 10% of the activation scale.
    ref = capture(tiny_lm.model, tiny_contexts, 3, "resid")
    got = capture(tiny_lm.model, tiny_contexts, 3, "resid", dtype="bfloat16")
    assert got.dtype == torch.float32
    assert (got - ref).norm() / ref.norm() < 0.1


@pytest.mark.parametrize("layer,site", [(0, "resid"), (5, "resid"), (2, "attn")])
def test_bad_site_is_a_config_error(tiny_lm, tiny_contexts, layer, site):
    with pytest.raises(ConfigError):
        capture(tiny_lm.model, tiny_contexts, layer, site)


def test_bad_dtype_and_device_are_config_errors(tiny_lm, tiny_contexts):
    with pytest.raises(ConfigError, match="dtype"):
        capture(tiny_lm.model, tiny_contexts, 1, "resid", dtype="float16")
    with pytest.raises(ConfigError, match="device"):
        check_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device"):
            check_device("cuda")
