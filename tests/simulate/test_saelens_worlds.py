"""SAELens synthetic worlds in and out (polysemy.simulate.saelens); skipped without sae-lens."""

import numpy as np
import pytest
import torch

from polysemy.errors import ConfigError
from polysemy.simulate import World, WorldConfig, world_from_saelens, world_to_saelens

synthetic = pytest.importorskip("sae_lens.synthetic")
pytestmark = pytest.mark.filterwarnings("ignore:this SAELens dictionary:UserWarning")


def _saelens_model(seed=0):
    return synthetic.SyntheticModel(synthetic.SyntheticModelConfig(
        num_features=40, hidden_dim=12, seed=seed, bias=0.5, std_firing_magnitudes=0.2,
        firing_probability=synthetic.ZipfianFiringProbabilityConfig(exponent=1.0, max_prob=0.3, min_prob=0.02),
        correlation=synthetic.LowRankCorrelationConfig(rank=2, correlation_scale=0.2, seed=seed)))


def test_a_saelens_world_samples_with_truth_reproducibly_and_leaves_global_rng_alone():
    model = _saelens_model()
    world = world_from_saelens(model)
    assert (world.n, world.d) == (40, 12)
    assert torch.equal(world.V, model.feature_dict.feature_vectors.detach())
    torch.manual_seed(123)
    before = torch.get_rng_state()
    batch = world.sample_with_truth(4000, torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), before)
    again = world.sample_with_truth(4000, torch.Generator().manual_seed(1))
    assert torch.equal(batch.x, again.x) and torch.equal(batch.indices, again.indices)
    codes = batch.dense_codes(world.n)
    torch.testing.assert_close(batch.x, codes @ world.V + world.bias)
    freq = (codes > 0).double().mean(0).numpy()
    p = world.expected_frequencies
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / 4000) + 1e-9)
    streamed = next(world.stream(16, seed=3, with_truth=True))
    assert streamed.x.shape == (16, 12) and next(world.stream(16, seed=3)).shape == (16, 12)


def test_a_saved_folder_loads_as_the_same_world(tmp_path):
    model = _saelens_model(seed=2)
    model.save(tmp_path / "m")
    world = world_from_saelens(tmp_path / "m")
    assert torch.equal(world.V, model.feature_dict.feature_vectors.detach())
    np.testing.assert_allclose(world.expected_frequencies, model.activation_generator.firing_probabilities.numpy())
    with pytest.raises(ConfigError):
        world_from_saelens(tmp_path / "missing")


def test_training_evaluation_and_the_peers_accept_a_saelens_world():
    from polysemy.experiments.peers import PeersConfig, SystemSpec, fit_system, score
    from polysemy.sae import TrainConfig, train
    from polysemy.sae.evaluate import evaluate_on_world

    world = world_from_saelens(_saelens_model())
    cfg = TrainConfig(method="topk", width=40, steps=30, batch_size=64, params={"k": 4}, seed=7)
    result = train(cfg, world.stream(64, seed=0), d=world.d, truth=world.V, progress=False)
    m = evaluate_on_world(result.model, world, n_samples=512)
    assert 0.0 <= m["mcc"] < 0.99 and m["l0"] <= 4.0 and "f1" in m
    fitted = fit_system(SystemSpec("polysemy-topk", k=4), world, PeersConfig(budget=2048, seed=7, checkpoints=2))
    row = score(fitted, world, world.sample(256, torch.Generator().manual_seed(0)))
    assert 0.0 <= row["mcc"] <= 1.0


def test_an_sae_of_the_same_seed_does_not_start_at_a_seeded_saelens_dictionary():
    from polysemy.sae.methods.base import generator_for, unit_rows

    world = world_from_saelens(_saelens_model(seed=3))
    # SAELens drew V as unit rows of torch.randn from seed 3; our init with seed 3 is another draw
    init = unit_rows(generator_for(3), world.n, world.d)
    best = (init @ world.V.T).abs().max(1).values
    assert float(best.max()) < 0.99


def test_world_to_saelens_and_back_keeps_dictionary_frequencies_and_support():
    world = World(WorldConfig(n=30, d=10, s=3, seed=4))
    model = world_to_saelens(world)
    assert torch.equal(model.feature_dict.feature_vectors.detach(), world.V)
    torch.manual_seed(0)
    x, h = model.sample_with_features(2000)
    assert torch.equal((h > 0).sum(1), torch.full((2000,), 3))       # exact-s support kept in memory
    torch.testing.assert_close(x, h @ world.V)
    assert float(h[h > 0].min()) >= 0.5 - 1e-6 and float(h.max()) <= 1.5 + 1e-6  # U[0.5, 1.5] coefficients
    back = world_from_saelens(model)
    assert torch.equal(back.V, world.V)
    np.testing.assert_allclose(back.expected_frequencies, world.expected_frequencies, atol=1e-7)


def test_a_saved_export_keeps_dictionary_and_frequencies(tmp_path):
    world = World(WorldConfig(n=24, d=8, support="bernoulli", frequency_profile="zipf", f_max=0.4, f_min=0.05))
    world_to_saelens(world).save(tmp_path / "w")
    back = world_from_saelens(tmp_path / "w")
    assert torch.equal(back.V, world.V)
    np.testing.assert_allclose(back.expected_frequencies, world.expected_frequencies, atol=1e-7)
    assert back.expected_l0 == pytest.approx(world.expected_l0, rel=1e-6)


def test_a_noisy_world_has_no_saelens_counterpart():
    with pytest.raises(ConfigError):
        world_to_saelens(World(WorldConfig(n=8, d=4, s=1, noise=0.1)))
