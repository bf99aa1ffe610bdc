"""Small worlds and batches shared by the sae tests (kept tiny so the suite stays CI-sized)."""

import pytest
import torch

from polysemy.simulate import World, WorldConfig

torch.set_num_threads(1)

SMALL_PARAMS = {  # method -> params that make a few dozen steps meaningful on a tiny world
    "gba": {"adapt_every": 5, "buffer": 2000},
    "gba-paper": {"adapt_every": 5, "buffer": 2000},
    "ba": {"adapt_every": 5, "buffer": 2000, "target": 0.05},
    "ba-theory": {"target": 0.05},
    "topk": {"k": 2, "dead_after_samples": 256},
    "batchtopk": {"k": 2, "dead_after_samples": 256},
    "relu-l1": {},
    "jumprelu": {},
}


@pytest.fixture(scope="session")
def tiny_world():
    return World(WorldConfig(n=32, d=16, s=2))


@pytest.fixture(scope="session")
def tiny_batches(tiny_world):
    """A fixed list of 60 batches of 64 samples (so runs can be replayed and split exactly)."""
    stream = tiny_world.stream(64, seed=3)
    return [next(stream) for _ in range(60)]
