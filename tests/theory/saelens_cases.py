"""Small SAELens cases for checking that ``recovery_metrics`` computes SAELens's synthetic metrics.

``saelens_case(kind, seed)`` builds a SAELens ``SyntheticModel`` (Zipf frequencies, low-rank correlated
firing, a bias) and a SAELens SAE whose decoder holds noisy copies of some true features, sign-flipped
copies, random rows and a dead latent. It runs ``sae_lens.synthetic.eval_sae_on_synthetic_data`` on
feature activations drawn once, and returns those arrays with SAELens's numbers, so the same samples
can be scored by polysemy. Needs sae-lens (imported here, lazily by the callers).
"""

from __future__ import annotations

import numpy as np
import torch

N_FEATURES, HIDDEN, WIDTH, SAMPLES = 48, 16, 40, 1000


class _Replay:
    """Stands in for an ActivationGenerator: hands out pre-drawn feature activations in order."""

    def __init__(self, feature_acts: torch.Tensor):
        self.feature_acts, self.used = feature_acts, 0

    def sample(self, batch_size: int) -> torch.Tensor:
        out = self.feature_acts[self.used:self.used + batch_size]
        self.used += batch_size
        return out


def saelens_case(kind: str, seed: int) -> dict:
    """Arrays (float32 numpy) and SAELens's metrics for one case; ``kind`` is "standard" or "topk"."""
    from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
    from sae_lens.synthetic import (LowRankCorrelationConfig, SyntheticModel, SyntheticModelConfig,
                                    ZipfianFiringProbabilityConfig, eval_sae_on_synthetic_data)

    torch.manual_seed(seed)
    world = SyntheticModel(SyntheticModelConfig(
        num_features=N_FEATURES, hidden_dim=HIDDEN, seed=seed, bias=0.5, std_firing_magnitudes=0.2,
        firing_probability=ZipfianFiringProbabilityConfig(exponent=1.0, max_prob=0.4, min_prob=0.02),
        correlation=LowRankCorrelationConfig(rank=3, correlation_scale=0.3, seed=seed)))
    if kind == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=HIDDEN, d_sae=WIDTH, k=5))
    else:
        sae = StandardSAE(StandardSAEConfig(d_in=HIDDEN, d_sae=WIDTH))
    rng = np.random.default_rng(seed)
    V = world.feature_dict.feature_vectors.detach().numpy()
    W = rng.normal(size=(WIDTH, HIDDEN)).astype(np.float32)
    picks = rng.choice(N_FEATURES, size=24, replace=False)
    W[:24] = V[picks] + rng.normal(scale=0.25, size=(24, HIDDEN))
    W[24:28] = -V[picks[:4]]                     # anti-aligned copies: |cos| = 1, signed cos = -1
    W[28:30] = W[0]                              # duplicates: uniqueness < 1
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    b_enc = rng.normal(scale=0.1, size=WIDTH).astype(np.float32) - 0.3
    b_enc[-1] = -1e4                             # a dead latent
    with torch.no_grad():
        sae.W_dec.copy_(torch.from_numpy(W))
        sae.W_enc.copy_(torch.from_numpy(W.T.copy()))
        sae.b_enc.copy_(torch.from_numpy(b_enc))
        sae.b_dec.copy_(world.feature_dict.bias.detach() * 0.5)
    feature_acts = world.activation_generator.sample(SAMPLES)
    result = eval_sae_on_synthetic_data(sae, world.feature_dict, _Replay(feature_acts), num_samples=SAMPLES)
    with torch.no_grad():
        x = world.feature_dict(feature_acts)
        latents = sae.encode(x)
        x_hat = sae.decode(latents)
    expected = {
        "mcc": result.mcc, "uniqueness": result.uniqueness, "l0": result.sae_l0,
        "dead_fraction": result.dead_latents / WIDTH, "shrinkage": result.shrinkage,
        "explained_variance": result.explained_variance, "precision": result.classification.precision,
        "recall": result.classification.recall, "f1": result.classification.f1_score,
        "accuracy": result.classification.accuracy,
    }
    arrays = {"W_dec": W, "V": V, "acts": latents.numpy(), "x": x.numpy(), "x_hat": x_hat.numpy(),
              "truth_codes": feature_acts.numpy()}
    return {"arrays": {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}, "expected": expected}
