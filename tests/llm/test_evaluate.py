"""The metric glue of the benchmark: known answers for an exact SAE, identical and random dictionaries."""

import numpy as np
import pytest
import torch

from polysemy.llm.evaluate import consistency, evaluate_sae, random_consistency


class CoordinateSAE:
    """A 'perfect' SAE with width = d: latents are the positive and negative parts of each coordinate."""

    def __init__(self, d):
        self.width, self.W_dec = 2 * d, torch.cat([torch.eye(d), -torch.eye(d)])

    def encode(self, x):
        return torch.cat([x.clamp_min(0), (-x).clamp_min(0)], dim=1)

    def decode(self, acts):
        return acts @ self.W_dec


def test_exact_sae_scores_perfectly_and_counts_l0():
    x = torch.randn(500, 6)
    x[:, 5] = 0.0                      # coordinate 5 never fires: 2 of 12 latents are dead
    m = evaluate_sae(CoordinateSAE(6), x, chunk=128)
    assert m["nmse"] == pytest.approx(0.0, abs=1e-12) and m["explained_variance"] == pytest.approx(1.0)
    assert m["l0"] == pytest.approx(5.0)            # exactly one of the two parts of 5 coordinates
    assert m["l0_over_width"] == pytest.approx(5 / 12)
    assert m["alive_fraction"] == pytest.approx(10 / 12) and m["dead_fraction"] == pytest.approx(2 / 12)
    assert m["firing_frequency"].shape == (12,)


def test_consistency_of_identical_and_of_random_dictionaries():
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((200, 64))
    act = rng.random(200)
    same = consistency([rows, rows[::-1].copy()], [act, act[::-1].copy()], alpha=0.1, threshold=0.9)
    assert same["consistency"] == 1.0 and same["consistency_mean_mcs"] == pytest.approx(1.0)
    # Two random 200-row dictionaries in 64 dimensions: a max |cos| over 200 rows is ~0.4, never 0.9
    # (P(cos > 0.9) for one pair is ~1e-30), so the floor is exactly 0.
    floor = random_consistency(200, 64, alpha=0.1, threshold=0.9)
    assert floor["consistency"] == 0.0 and 0.2 < floor["consistency_mean_mcs"] < 0.6
    single = consistency([rows], [act], 0.1, 0.9)
    assert np.isnan(single["consistency"])


def test_raw_explained_variance_is_taken_at_the_models_scale():
    from polysemy.llm.normalize import Normalizer
    from polysemy.theory.metrics import explained_variance

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(400, 20, generator=gen)
    a[:, 2] *= 40.0                                   # an outlier coordinate, divided down by the rule
    norm = Normalizer.fit(a)
    assert norm.coord_scale_D[2] > 1
    x = norm.apply(a)

    class DropOutlier(CoordinateSAE):                 # reconstructs everything but coordinate 2
        def decode(self, acts):
            out = acts @ self.W_dec
            out[:, 2] = 0.0
            return out

    m = evaluate_sae(DropOutlier(20), x, normalizer=norm)
    x_hat = DropOutlier(20).decode(DropOutlier(20).encode(x))
    assert m["explained_variance_raw"] == pytest.approx(explained_variance(a, norm.invert(x_hat)), rel=1e-5)
    # losing the outlier costs far more variance at the model's scale than after the rescaling
    assert m["explained_variance_raw"] < m["explained_variance"] - 0.3
    assert m["alive_tokens"] == 400
    assert "explained_variance_raw" not in evaluate_sae(CoordinateSAE(20), x)


def test_group_frequencies_set_achieved_beside_target():
    from types import SimpleNamespace

    from polysemy.llm.evaluate import group_frequencies

    target = torch.tensor([[0.1, 0.1, 0.01, 0.01, 0.01]])
    sae = SimpleNamespace(stack=SimpleNamespace(target_GM=target))
    freq = np.array([0.2, 0.0, 0.01, 0.02, 0.03])
    groups = group_frequencies(sae, freq)
    assert [g["target"] for g in groups] == pytest.approx([0.1, 0.01])
    assert groups[0]["neurons"] == 2 and groups[0]["mean_frequency"] == pytest.approx(0.1)
    assert groups[0]["dead_fraction"] == 0.5 and groups[1]["median_frequency"] == pytest.approx(0.02)
    assert group_frequencies(CoordinateSAE(3), freq) is None
