"""CE-loss recovered: a perfect reconstruction gives exactly 1; zero ablation gives exactly 0."""

import pytest
import torch

pytest.importorskip("transformers", reason="the LLM extras (transformers) are not installed")

from polysemy.llm.normalize import Normalizer  # noqa: E402
from polysemy.llm.sites import capture  # noqa: E402
from polysemy.llm.sites import splice  # noqa: E402
from polysemy.llm.splice import CEEvaluator, ce_loss_recovered, replace_positions, zero_all  # noqa: E402


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
    assert result["ce_zero"] > result["ce_clean"] + 0.001
    assert result["ce_recovered"] == pytest.approx(1.0, abs=1e-4)
    # and without the round trip the spliced run is bit-identical to the clean one
    assert evaluator.ce(lambda rows: rows) == evaluator.ce_clean


def test_perfect_reconstruction_has_no_delta_ce_and_no_kl(evaluator):
    result = evaluator.evaluate(lambda x: x)
    assert result["delta_ce"] == pytest.approx(0.0, abs=1e-4) and result["kl"] == pytest.approx(0.0, abs=1e-5)
    assert result["kl_score"] == pytest.approx(1.0, abs=1e-4) and result["ce_tokens"] == 12 * 8


def _manual_ce_kl(model, ids, fn):
    """CE over every prediction (positions 0..T-2) and mean KL(clean || fn), computed directly."""
    clean = model(input_ids=ids).logits[:, :-1].float().log_softmax(-1)
    with splice(model, 2, "resid", fn):
        other = model(input_ids=ids).logits[:, :-1].float().log_softmax(-1)
    ce = torch.nn.functional.nll_loss(other.reshape(-1, other.shape[-1]), ids[:, 1:].reshape(-1))
    kl = torch.nn.functional.kl_div(other, clean, log_target=True, reduction="sum") / (ids.shape[0] * (ids.shape[1] - 1))
    return float(ce), float(kl)


def test_zero_ablation_zeroes_every_position_bos_included(evaluator, tiny_lm, tiny_contexts):
    # SAELens's zero ablation: the BOS position too (an SAE that outputs 0 leaves BOS alone instead)
    ce, kl = _manual_ce_kl(tiny_lm.model, tiny_contexts, zero_all)
    assert evaluator.ce_zero == pytest.approx(ce, rel=1e-5) and evaluator.kl_zero == pytest.approx(kl, rel=1e-4)
    n = evaluator.normalizer
    zero_but_bos = evaluator.evaluate(lambda x: n.apply(torch.zeros_like(x)))   # N^-1 of it is 0
    ce_keep_bos, _ = _manual_ce_kl(tiny_lm.model, tiny_contexts, lambda a: torch.cat([a[:, :1], 0 * a[:, 1:]], 1))
    assert zero_but_bos["ce_sae"] == pytest.approx(ce_keep_bos, rel=1e-4)
    assert zero_but_bos["ce_sae"] != pytest.approx(evaluator.ce_zero, rel=1e-4)


def test_kl_and_delta_ce_match_a_direct_computation(evaluator, tiny_lm, tiny_contexts):
    many = evaluator.evaluate_many([lambda x: x, lambda x: 0.5 * x])
    assert len(many) == 2 and many[0]["kl"] < many[1]["kl"]
    n = evaluator.normalizer
    half = lambda a: replace_positions(a, n, lambda rows: n.invert(0.5 * n.apply(rows)))  # noqa: E731
    ce, kl = _manual_ce_kl(tiny_lm.model, tiny_contexts, half)
    assert many[1]["ce_sae"] == pytest.approx(ce, rel=1e-4) and many[1]["kl"] == pytest.approx(kl, rel=1e-3)
    assert many[1]["delta_ce"] == pytest.approx(ce - evaluator.ce_clean, rel=1e-3, abs=1e-6)


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
