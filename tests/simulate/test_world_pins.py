"""Pins: the hashes of the presets and of flat-built configs, and checksums of their samples.

The experiment store, committed results and users' ``run.json`` files are content-addressed by
``WorldConfig.config_hash()``, and a world must give the same samples whatever its code looks like
inside. These values were recorded before the worlds were rebuilt from registries (issue 10, item 5);
a change here means old results no longer match their configs.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from polysemy.simulate import PRESETS, World, WorldConfig

PRESET_HASHES = {
    "paper-toy": "10a59e773bc1030c",
    "paper-toy-literal": "127d18fd8b89955a",
    "theorem-uniform": "7bca21a20549bc22",
    "resonance-light": "7bca21a20549bc22",
    "resonance-heavy": "de2f867ef4c5c9b0",
    "realistic-1k": "396fb703e330f803",
}

# name: (flat keyword arguments, config hash, sha256 of a batch's indices + values, sha256 of its x)
CUSTOM = {
    "default": (dict(), "7bca21a20549bc22", None, None),
    "small": (dict(n=64, d=16, s=2, seed=3), "e3432581c5876bd4", None, None),
    "bernoulli zipf": (dict(n=128, d=8, s=4, support="bernoulli", frequency_profile="zipf", zipf_exponent=1.2,
                            f_min=0.001), "e8bdae4615a07430", "26fe3a1306dfd5be", "5090bbafeb6b143e"),
    "mixture": (dict(n=50, d=10, support="mixture", mixture_levels=(2, 7, 11), mixture_weights=(0.2, 0.3, 0.5)),
                "0bc456c5f18e3e1b", "0c1f1a03f30b8d9f", "1c2a7c2fde96f0d2"),
    "cooccur": (dict(n=65, d=8, s=2, support="cooccur", rho2=0.6),
                "b66372b100b57f93", "7e7c83894eb96d47", "8400780f31477815"),
    "hierarchy": (dict(n=110, d=8, s=3, support="hierarchy", hierarchy_children=4, child_probability=0.8),
                  "bbf2de2de2dd29c7", "dbbf52651d2322bb", "d93b8b557ecc3f62"),
    "structured": (dict(n=48, d=8, s=3, support="structured", hierarchy_children=3, frequency_profile="zipf",
                        f_max=0.5, f_min=0.05, correlation_rank=2, correlation_scale=0.4),
                   "ad5c0eb5c626ccd2", "b95795559ca11345", "dcac40902146c8a0"),
    "coherent": (dict(n=16, d=8, dictionary="coherent", coherence=0.6),
                 "9acdd38617dded0d", "afc4e1a6af6cd7eb", "00e74c102fb5db72"),
    "geometric": (dict(n=32, d=8, s=2, magnitude_profile="geometric", imbalance=10.0, spread=(1.0, 2.0),
                       noise=0.1, scale=2.5), "49169ae23669c44e", "c67ea4febfae1284", "2fc167262c477d43"),
    "explicit": (dict(n=4, d=3, s=1, support="bernoulli", frequency_profile="explicit",
                      frequencies=(0.1, 0.5, 0.9, 0.3), magnitude_profile="explicit", magnitudes=(1.0, 2.0, 0.5, 3.0)),
                 "0166390df1b94f51", "c855a812080ab24f", "ac6df9b73e97f1bb"),
}


def _digest(*tensors) -> str:
    m = hashlib.sha256()
    for t in tensors:
        m.update(np.ascontiguousarray(t.numpy()).tobytes())
    return m.hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(PRESET_HASHES))
def test_preset_hashes_are_pinned(name):
    assert PRESETS[name].config_hash() == PRESET_HASHES[name]


@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_flat_built_configs_keep_their_hash_and_samples(name):
    kwargs, config_hash, truth_digest, x_digest = CUSTOM[name]
    cfg = WorldConfig(**kwargs)
    assert cfg.config_hash() == config_hash
    assert WorldConfig.from_dict(cfg.to_dict()).config_hash() == config_hash
    if truth_digest is None:
        return
    batch = World(cfg).sample_with_truth(256, torch.Generator().manual_seed(11))
    assert _digest(batch.indices, batch.values) == truth_digest
    assert _digest(batch.x) == x_digest


def _world_dicts(node, found):
    if isinstance(node, dict):
        if "n" in node and "hierarchy_children" in node:
            found.append(node)
        for value in node.values():
            _world_dicts(value, found)
    elif isinstance(node, list):
        for value in node:
            _world_dicts(value, found)
    return found


def test_committed_results_keep_their_world_hashes():
    """Every world config stored in benchmarks/results (some written before later fields existed) loads
    and hashes as when it was written."""
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    found = []
    for name in ("calibrate_paper_toy", "gba_acceptance", "recovery_gba_study", "recovery_toy_table"):
        _world_dicts(json.loads((results / f"{name}.json").read_text()), found)
    hashes = sorted({WorldConfig.from_dict(d).config_hash() for d in found})
    assert (len(found), len(hashes)) == (202, 45)
    assert hashlib.sha256(",".join(hashes).encode()).hexdigest()[:16] == "0076284a793748f3"
