"""Training dynamics of GBA (figure 6): a sweep whose cells are each trained once and snapshotted.

The ``dynamics`` sweep (experiments/sweeps.py) declares ``evaluator="dynamics"``, so the runner computes
its cells with :func:`dynamics_group` and the result store keeps, per cell, everything the figure shows;
``plots.draw_dynamics`` only reads it (:meth:`DynamicsRecord.from_frame`) and trains nothing.

Each cell is one training run (``polysemy.sae.train_stacked``, the cells of a group stacked) with a
:class:`~polysemy.sae.callbacks.Snapshots` callback at step 0 (the initialisation), every ``log_every``
steps and the last step. The callback only reads the models, so the run, an lr schedule over its total
steps included, is the run a plain ``train`` makes; a snapshot at step k is the state of that run after k
steps (not of a run resumed in chunks, which would restart the schedule). At each snapshot we record:

- each true feature's best |cosine| with any decoder row (the feature's recovery so far;
  ``theory.metrics.cosine_matrix``);
- each neuron's activation frequency on a fixed probe batch of ``eval_samples`` samples (the fraction of
  samples with a positive activation), beside its GBA group target p_k (taken from the final model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..sae.callbacks import Snapshots
from ..sae.trainer import check_device
from ..simulate import build_world
from ..theory.metrics import cosine_matrix
from .evaluation import score_cell, train_group
from .spec import SweepSpec
from .store import column

PROBE_SEED = 424242      # the probe batch's generator seed (our choice; fixed since the first figure)
ROW_KEY = "dynamics"     # a stored cell's entry holding its DynamicsRecord.to_row()


@dataclass
class DynamicsRecord:
    steps: np.ndarray            # [T] step of each snapshot
    best_cosine_TN: np.ndarray   # [T, n] best |cos| of each true feature (float64)
    frequency_TM: np.ndarray     # [T, M] activation frequency of each neuron on the probe batch (float32)
    target_M: np.ndarray         # [M] each neuron's GBA target frequency (float32; NaN without groups)
    f: float                     # the world's mean feature frequency
    description: str

    def to_row(self) -> dict[str, Any]:
        """The record as plain JSON values (the ``dynamics`` entry of a stored cell)."""
        return {"steps": [int(s) for s in self.steps], "best_cosine": self.best_cosine_TN.tolist(),
                "frequency": self.frequency_TM.tolist(), "target": self.target_M.tolist(), "f": float(self.f),
                "description": self.description}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "DynamicsRecord":
        """Inverse of :meth:`to_row`, with the dtypes the run had (so the figure's numbers are those of
        the arrays the run computed, bit for bit)."""
        return cls(np.asarray(row["steps"], dtype=np.int64), np.asarray(row["best_cosine"], dtype=np.float64),
                   np.asarray(row["frequency"], dtype=np.float32), np.asarray(row["target"], dtype=np.float32),
                   float(row["f"]), str(row["description"]))

    @classmethod
    def from_frame(cls, df) -> "DynamicsRecord":
        """The record of the first cell (lowest seed) of a ``dynamics`` sweep's ``load_results`` frame."""
        prefix = column(ROW_KEY, "")
        if df is None or len(df) == 0 or column(ROW_KEY, "steps") not in df.columns:
            raise ConfigError("the dynamics figure needs the stored results of the 'dynamics' sweep "
                              "(polysemy sweep dynamics), found none")
        first = df.sort_values(["seed", "cell_id"]).iloc[0]
        return cls.from_row({k[len(prefix):]: first[k] for k in df.columns if k.startswith(prefix)})


def snapshot_steps(cfg) -> list[int]:
    """Step 0, every ``cfg.log_every`` steps, and the last step (the run's log points)."""
    steps = int(cfg.steps)
    return sorted({0, steps, *range(int(cfg.log_every), steps + 1, int(cfg.log_every))})


def _measure(sae, truth_ND: np.ndarray, probe_BD: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        W_MD = sae.W_dec.detach().cpu().numpy()
        cosines = np.abs(cosine_matrix(W_MD, truth_ND)).max(axis=1)
        freqs = (sae.encode(probe_BD) > 0).float().mean(0).cpu().numpy()
    return cosines, freqs


def dynamics_group(cells, device: str = "cpu", precision: str = "fp32") -> list[dict[str, Any]]:
    """The ``dynamics`` evaluator: train the cells' models stacked, snapshotting each at
    :func:`snapshot_steps`; per cell, ``dynamics`` (:meth:`DynamicsRecord.to_row`), the final model's
    ``metrics`` (as the default evaluator scores it), ``theory``, ``seconds``, ``train_seconds`` and
    ``samples``."""
    dev = check_device(device)
    wanted = [set(snapshot_steps(c.train)) for c in cells]
    worlds = [build_world(c.world) for c in cells]
    probes = [w.sample(int(c.eval_samples), torch.Generator().manual_seed(PROBE_SEED)).to(dev)
              for w, c in zip(worlds, cells)]
    truths = [w.V.detach().cpu().numpy() for w in worlds]

    def record(state) -> dict[int, tuple]:
        return {i: _measure(state.sae(g), truths[i], probes[i]) for g, i in enumerate(state.members)
                if state.step in wanted[i]}

    snaps = Snapshots(set().union(*wanted), record)
    results, share = train_group(cells, worlds, dev, precision, callbacks=[snaps])
    taken: list[dict[int, tuple]] = [{} for _ in cells]
    for run in snaps.runs:
        for step, per_cell in run.items():
            for i, values in per_cell.items():
                taken[i][step] = values
    rows = []
    for i, (cell, world, result) in enumerate(zip(cells, worlds, results)):
        cfg = cell.train
        target = getattr(result.model.stack, "target_GM", None)
        target_M = target[0].cpu().numpy() if target is not None else np.full(int(cfg.width), np.nan, np.float32)
        order = sorted(taken[i])
        record_i = DynamicsRecord(
            np.array(order), np.array([taken[i][s][0] for s in order]), np.array([taken[i][s][1] for s in order]),
            target_M, float(world.f),
            f"n={world.n}, d={world.d}, s={getattr(cell.world, 's', '?')}, width={cfg.width}, {cfg.steps} steps")
        rows.append({ROW_KEY: record_i.to_row(), **score_cell(cell, world, result, share)})
    return rows


def record_dynamics(world_cfg, train_cfg, probe_samples: int = 4096, seed: int = 0) -> DynamicsRecord:
    """One run's :class:`DynamicsRecord` without a result store: the ``dynamics`` evaluator on a single
    cell of ``world_cfg`` and ``train_cfg`` (replicate ``seed``, as a sweep resolves it)."""
    spec = SweepSpec(name="dynamics", world=world_cfg, train=train_cfg, seeds=(int(seed),),
                     eval_samples=int(probe_samples), evaluator="dynamics")
    return DynamicsRecord.from_row(dynamics_group(spec.expand())[0][ROW_KEY])
