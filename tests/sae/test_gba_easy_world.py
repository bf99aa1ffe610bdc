"""gba recovers an easy world quickly (a statistical check with a stated bound)."""

import numpy as np
import pytest

from polysemy.sae import TrainConfig, train_stacked
from polysemy.sae.evaluate import evaluate_on_world
from polysemy.simulate import World, WorldConfig


def test_gba_recovers_an_easy_world():
    # n = 32 features in d = 32, s = 2 per sample: light superposition, low co-occurrence. Default gba,
    # width 2n, 2000 steps of 256. Observed on 2 seeds: FRR(0.9) 0.91-1.0, FRR(0.8) 1.0. Random unit
    # rows score FRR(0.8) = 0 here (the best of 64 random cosines in d = 32 is ~0.6), so the bounds
    # below (mean FRR(0.8) >= 0.85, mean FRR(0.9) >= 0.7, every seed FRR(0.8) >= 0.75) fail only if
    # recovery is broken, with ~0.1 margin for seed-to-seed spread. Alive is counted on 16384 samples:
    # a neuron at the lowest target 0.001 fires ~16 times there (P(0) < 1e-6), on 4096 only ~4.
    world = World(WorldConfig(n=32, d=32, s=2))
    cfgs = [TrainConfig(method="gba", width=64, steps=2000, batch_size=256, log_every=500, seed=s) for s in range(3)]
    results = train_stacked(cfgs, [world.stream(256, seed=s) for s in range(3)], 32, progress=False)
    metrics = [evaluate_on_world(r.model, world, n_samples=16384) for r in results]
    frr8 = np.array([m["frr"]["0.8"] for m in metrics])
    frr9 = np.array([m["frr"]["0.9"] for m in metrics])
    assert frr8.mean() >= 0.85 and frr9.mean() >= 0.7 and frr8.min() >= 0.75, (frr8, frr9)
    # GBA keeps most neurons alive without resampling. Measured with the defaults (lr 1e-2): 0.80-0.84
    # on 3 seeds; latents knocked off late in training are raised by gamma_+ rbar per adaptation and
    # some do not fire again before the run ends (lr 3e-3: 1.0). Bound 0.7: one dead latent in 5 more.
    assert all(m["alive_fraction"] >= 0.7 for m in metrics), [m["alive_fraction"] for m in metrics]


@pytest.mark.slow
def test_gba_recovers_the_theorem_world():
    # the target: n = 256, d = 64, s = 3, default gba, no knowledge of s -> FRR(0.9) >= 0.95
    world = World(WorldConfig(n=256, d=64, s=3))
    cfg = TrainConfig(method="gba", width=512, steps=5000, batch_size=512, log_every=500)
    result = train_stacked([cfg], [world.stream(512, seed=0)], 64, progress=False)[0]
    assert evaluate_on_world(result.model, world)["frr"]["0.9"] >= 0.95
