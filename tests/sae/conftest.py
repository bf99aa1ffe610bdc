"""Small worlds and batches shared by the sae tests (kept tiny so the suite stays CI-sized)."""

import pytest
import torch

from polysemy.sae import TrainConfig
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


def cfg_for(method, **kw):
    """A tiny TrainConfig for ``method`` (width 48, 40 steps of 64, a log every 10) with its SMALL_PARAMS."""
    base = dict(method=method, width=48, steps=40, batch_size=64, log_every=10, params=SMALL_PARAMS[method])
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def tiny_world():
    return World(WorldConfig(n=32, d=16, s=2))


@pytest.fixture(scope="session")
def tiny_batches(tiny_world):
    """A fixed list of 60 batches of 64 samples (so runs can be replayed and split exactly)."""
    stream = tiny_world.stream(64, seed=3)
    return [next(stream) for _ in range(60)]
