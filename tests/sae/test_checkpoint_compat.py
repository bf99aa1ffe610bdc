"""Checkpoints written before issue 10 moved method-specific state into each method's own model class
(tests/fixtures/checkpoints-v1, saved by tests/fixtures/make_checkpoints_v1.py with that code): every
method's checkpoint still loads, encodes and decodes as it did, and resumes training exactly."""

import json
from pathlib import Path

import pytest
import torch

from polysemy.sae import train
from polysemy.sae.checkpoint import load_checkpoint
from polysemy.simulate import World, WorldConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints-v1"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
METHODS = sorted(k for k in EXPECTED if k != "x")


@pytest.mark.parametrize("method", METHODS)
def test_old_checkpoint_loads_and_encodes_as_before(method):
    back = load_checkpoint(FIXTURES / method)
    x = torch.tensor(EXPECTED["x"])
    assert back.model.method == method and back.config.method == method
    assert torch.allclose(back.model.encode(x), torch.tensor(EXPECTED[method]["encode"]), atol=1e-6)
    assert torch.allclose(back.model(x), torch.tensor(EXPECTED[method]["x_hat"]), atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_old_checkpoint_resumes_exactly(method):
    """9 saved steps + 9 resumed steps == 18 steps in one go (the same stream, the current code)."""
    back = load_checkpoint(FIXTURES / method)
    world = World(WorldConfig(n=8, d=6, s=1))
    stream = world.stream(16, seed=0)
    for _ in range(back.steps):
        next(stream)
    cfg = back.config.replace(steps=18)
    resumed = train(cfg, stream, 6, progress=False, resume=back)
    full = train(cfg, world.stream(16, seed=0), 6, progress=False)
    a, b = full.model.stack.state_dict(), resumed.model.stack.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
