"""Training dynamics of GBA: snapshots of one run, for figure 6.

The run is one ``polysemy.sae.train`` call; its ``on_log`` hook takes a snapshot at every log point
(steps // snapshots apart), so the snapshots do not perturb training and an lr schedule runs as in any
other run. At step 0 (the initialisation) and at each log point we record:

- each true feature's best |cosine| with any decoder row (the feature's recovery so far);
- each neuron's activation frequency on a fixed probe batch (fraction of samples with a positive
  activation), beside its GBA group target p_k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class DynamicsRecord:
    steps: np.ndarray            # [T] step of each snapshot
    best_cosine_TN: np.ndarray   # [T, n] best |cos| of each true feature
    frequency_TM: np.ndarray     # [T, M] activation frequency of each neuron on the probe batch
    target_M: np.ndarray         # [M] each neuron's GBA target frequency
    f: float                     # the world's mean feature frequency
    description: str


def record_dynamics(quick: bool = False, world_cfg=None, train_cfg=None, snapshots: int | None = None,
                    probe_samples: int = 4096, progress: bool = False) -> DynamicsRecord:
    """Train GBA on ``world_cfg`` (default: the uniform world n=64, d=32, s=3 when quick, else the
    ``theorem-uniform`` preset) and snapshot it ``snapshots`` times (default 12 quick, 25 full)."""
    from ..sae import TrainConfig, train
    from ..simulate import World, WorldConfig, get_preset
    from ..theory.metrics import cosine_matrix

    if world_cfg is None:
        world_cfg = WorldConfig(n=64, d=32, s=3) if quick else get_preset("theorem-uniform")
    if train_cfg is None:
        train_cfg = TrainConfig(method="gba", width=2 * int(world_cfg.n), steps=2000 if quick else 8000,
                                batch_size=256 if quick else 512, log_every=100)   # lr: the method default
    snapshots = snapshots or (12 if quick else 25)
    world = World(world_cfg)
    data = world.stream(int(train_cfg.batch_size), seed=0)
    probe = world.sample(probe_samples, torch.Generator().manual_seed(424242))
    truth = world.V.detach().cpu().numpy()
    # One run, snapshotted at its log points (every steps // snapshots steps, and the last): resuming in
    # chunks would restart any lr schedule that depends on the total steps.
    train_cfg = train_cfg.replace(log_every=max(1, int(train_cfg.steps) // snapshots))
    steps, cosines, freqs = [], [], []

    def record(step: int, model) -> None:
        W_MD = model.W_dec.detach().cpu().numpy()
        steps.append(int(step))
        cosines.append(np.abs(cosine_matrix(W_MD, truth)).max(axis=1))
        freqs.append((model.encode(probe) > 0).float().mean(0).cpu().numpy())

    fresh = world.stream(int(train_cfg.batch_size), seed=0)  # same first batch, same init
    record(0, train(train_cfg.replace(steps=0), fresh, int(world_cfg.d), progress=False).model)
    result = train(train_cfg, data, int(world_cfg.d), progress=progress,
                   on_log=lambda step, results: record(step, results()[0].model))
    stack = result.model.stack
    target = getattr(stack, "target_GM", None)
    target_M = (target[0].cpu().numpy() if target is not None else np.full(int(train_cfg.width), np.nan))
    desc = (f"n={world_cfg.n}, d={world_cfg.d}, s={world_cfg.s}, width={train_cfg.width}, "
            f"{train_cfg.steps} steps")
    return DynamicsRecord(np.array(steps), np.array(cosines), np.array(freqs), target_M,
                          float(World(world_cfg).f), desc)
