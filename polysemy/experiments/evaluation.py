"""The default cell evaluation: train a group of cells stacked, then score each on its own world.

For a group of cells of one shape (see ``runner.plan_groups``):

1. build each cell's world (``build_world(cell.world)``: a ``World``, or a saved SAELens world) and its data stream, seeded with the cell's seed;
2. train all of them at once with ``polysemy.sae.train_stacked`` (one data stream per cell);
3. score each model with ``polysemy.sae.evaluate.evaluate_on_world`` on ``cell.eval_samples`` fresh
   samples (evaluation seed fixed, distinct from every training seed);
4. attach the theory's prediction for the cell's world (``polysemy.theory.bands.predict``).

Returns one dict per cell with ``metrics``, ``theory``, ``seconds`` (the group's training time shared
equally, plus the cell's own evaluation time), ``train_seconds`` and ``samples``.

``extra_metrics`` ({name: fn(model, world) -> JSON value}, default none) adds an experiment's own metrics
to each cell's ``metrics`` beside ``recovery_metrics``'s; pass it with ``functools.partial`` as a sweep's
``evaluate_group`` (docs/extending.md, "Adding a metric"). The cell ids do not depend on it.
"""

from __future__ import annotations

import time
from typing import Any

from ..io import to_jsonable
from ..sae import train_stacked
from ..sae.evaluate import evaluate_on_world
from ..sae.trainer import check_device, to_cpu
from ..simulate import build_world
from ..theory import bands
from .spec import Cell

EVAL_SEED = 987654321  # our choice: far from every replicate seed used by sweeps


def train_and_evaluate_group(cells: list[Cell], device: str = "cpu", precision: str = "fp32",
                             extra_metrics: dict | None = None) -> list[dict[str, Any]]:
    dev = check_device(device)
    worlds = [build_world(c.world) for c in cells]
    results, share = train_group(cells, worlds, dev, precision)
    return [score_cell(cell, world, result, share, extra_metrics) for cell, world, result in zip(cells, worlds, results)]


def train_group(cells: list[Cell], worlds: list, dev, precision: str, callbacks=()) -> tuple[list, float]:
    """Steps 1-2: train the cells' models stacked on their worlds' streams (each seeded with its cell's
    seed), with ``callbacks``; (the results on the CPU, each cell's share of the training seconds)."""
    datas = [w.stream(int(c.train.batch_size), seed=int(c.seed), device=dev) for w, c in zip(worlds, cells)]
    start = time.perf_counter()
    results = train_stacked([c.train for c in cells], datas, int(cells[0].world.d), progress=False, device=dev,
                            precision=precision, callbacks=list(callbacks))
    if dev.type != "cpu":
        results = [to_cpu(r) for r in results]
    return results, (time.perf_counter() - start) / len(cells)


def score_cell(cell: Cell, world, result, train_share: float, extra_metrics: dict | None = None) -> dict[str, Any]:
    """Steps 3-4 for one cell: ``metrics``, ``theory``, ``train_seconds`` (its share), ``seconds`` (that
    plus its own evaluation) and ``samples``."""
    t0 = time.perf_counter()
    metrics = evaluate_on_world(result.model, world, n_samples=int(cell.eval_samples), seed=EVAL_SEED)
    for name, fn in (extra_metrics or {}).items():
        metrics[name] = fn(result.model, world)
    return {"metrics": to_jsonable(metrics), "theory": _theory(cell.world), "train_seconds": train_share,
            "seconds": train_share + time.perf_counter() - t0, "samples": int(getattr(result, "samples", 0) or 0)}


def _theory(world_cfg) -> dict[str, Any]:
    """The theory's prediction for a WorldConfig; none for a saved SAELens world (no config to predict from)."""
    if getattr(world_cfg, "fixed_dictionary", False):
        return {}
    return to_jsonable(bands.predict(world_cfg))


def dry_run_group(cells: list[Cell]) -> list[dict[str, Any]]:
    """Evaluate nothing: store each cell's theory prediction only (no training, milliseconds).

    Useful to inspect a sweep's grid and the theory's view of it before paying for training
    (``polysemy sweep NAME --dry-run``), and to test the sweep machinery.
    """
    return [{"metrics": {}, "theory": _theory(c.world), "seconds": 0.0} for c in cells]
