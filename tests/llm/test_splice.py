"""CE-loss recovered: a perfect reconstruction gives exactly 1; zero ablation gives exactly 0."""

import pytest
import torch

pytest.importorskip("transformers", reason="the LLM extras (transformers) are not installed")

from polysemy.llm.normalize import Normalizer  # noqa: E402
from polysemy.llm.sites import capture  # noqa: E402
from polysemy.llm.splice import CEEvaluator, ce_loss_recovered, replace_positions  # noqa: E402


@pytest.fixture(scope="module")
def evaluator(tiny_lm, tiny_contexts):
    acts = capture(tiny_lm.model, tiny_contexts, 2, "resid")[:, 1:].reshape(-1, 32)
    return CEEvaluator(tiny_lm.model, tiny_contexts, 2, "resid", Normalizer.fit(acts), batch_contexts=5)


def test_formula():
    assert ce_loss_recovered(2.0, 6.0, 2.0) == 1.0
    assert ce_loss_recovered(2.0, 6.0, 6.0) == 0.0
    assert ce_loss_recovered(2.0, 6.0, 3.0) == 0.75


def test_perfect_reconstruction_recovers_exactly_one(evaluator):
    # The identity SAE in normalised space: N^-1(N(a)) equals a up to float rounding.
    result = evaluator.evaluate(lambda x: x)
    assert result["ce_zero"] > result["ce_clean"] + 0.01
    assert result["ce_recovered"] == pytest.approx(1.0, abs=1e-4)
    # and without the round trip the spliced run is bit-identical to the clean one
    assert evaluator.ce(lambda rows: rows) == evaluator.ce_clean


def test_zero_reconstruction_at_model_scale_recovers_zero(evaluator):
    n = evaluator.normalizer
    zero_at_model_scale = lambda x: n.apply(torch.zeros_like(x))  # noqa: E731  N^-1 of it is 0
    assert evaluator.evaluate(zero_at_model_scale)["ce_recovered"] == pytest.approx(0.0, abs=1e-4)


def test_bos_and_sink_positions_pass_through_unchanged(evaluator):
    n = evaluator.normalizer
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2, 6, 32, generator=gen)
    a = a / a.norm(dim=-1, keepdim=True) * (0.5 * n.sink_norm)  # ordinary tokens: half the sink norm
    a[1, 3] *= 10 * n.sink_norm / float(a[1, 3].norm())      # plant one sink token
    out = replace_positions(a, n, torch.zeros_like)
    assert torch.equal(out[:, 0], a[:, 0]) and torch.equal(out[1, 3], a[1, 3])
    replaced = torch.ones(2, 6, dtype=torch.bool)
    replaced[:, 0] = False
    replaced[1, 3] = False
    assert torch.all(out[replaced] == 0)
