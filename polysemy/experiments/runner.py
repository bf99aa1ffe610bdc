"""Run an experiment spec into its result store: skip finished units, group the rest, store each unit.

An *experiment spec* is anything with (duck-typed; :class:`~polysemy.experiments.spec.SweepSpec` is the
first kind, ``peers.PeersSpec`` and ``throughput.BenchSpec`` the others):

- ``name``; ``expand()``: its units of work, each with a content address ``cell_id``, a ``shape_key``
  (units with equal keys may be evaluated together) and ``to_dict()`` (what the stored row starts from);
- ``default_evaluator(device, precision)``: a picklable function from a list of units to one result
  dict per unit (merged into the stored row); a result ``{"skipped": reason}`` stores nothing, so a
  later run tries that unit again (a peer library that is not installed);
- ``to_json(indent)``: written to the store's ``spec.json``;
- optional ``in_process = True``: every group runs in this process, one after another, whatever
  ``jobs`` or ``dask_address`` say (timings, which other processes would disturb);
- optional ``frame(rows) -> DataFrame``: the rows as a table (default: one flattened row per unit).

:func:`run_experiment` runs a spec and returns its DataFrame; :func:`run_sweep` runs it and returns a
:class:`SweepSummary`. For a sweep of trainings:

- Grouping: cells with the same ``Cell.shape_key`` (d, width, method, steps, batch size) are trained
  together through ``polysemy.sae.train_stacked``; a group holds at most ``max_group`` cells (default
  16) so memory stays bounded and the ETA moves often.
- Parallelism: groups are spread over ``jobs`` processes with joblib (loky), or over a Dask cluster
  through joblib's Dask backend when ``dask_address`` is given. Workers only compute and return rows;
  this process writes them, so a remote worker needs no shared filesystem.
- Resume: a cell is done iff its file exists in the store and reads back as that cell (a corrupt file
  is reported on stderr and recomputed). Each finished group's cells are written at
  once, atomically; killing the process (SIGKILL included) loses only the groups in flight. Rerunning
  recomputes only missing cells; a complete sweep returns without starting any worker.
- The evaluation of a group is pluggable (``evaluate_group``): any picklable function taking a list of
  cells and returning one dict per cell (merged into the stored row). The default trains and scores.
- One tqdm progress bar (stderr) counts cells over the whole sweep, with an ETA.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
import torch
from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from ..errors import ConfigError, require, require_int_range
from .dask_address import check_dask_address
from .dynamics import dynamics_group
from .evaluation import train_and_evaluate_group
from .spec import UNIT_KEYS, Cell, SweepSpec
from .store import ResultStore, load_results, store_or_temporary, versions

GroupEvaluator = Callable[[list[Cell]], list[dict[str, Any]]]
MAX_GROUP = 16
DASK_CONNECT_TIMEOUT_S = 10
RUNNER_KEYS = ("group_seconds", "group_size", "versions")  # what the runner adds to every stored row
SKIPPED = "skipped"   # an evaluator's result {SKIPPED: reason}: the unit could not run here; nothing stored


@dataclass
class SweepSummary:
    """What ``polysemy sweep --json`` prints."""

    name: str
    cells_total: int
    cells_done: int
    cells_computed: int
    seconds: float
    store: str
    groups: int = 0
    skipped: dict = field(default_factory=dict)   # cell id -> why the evaluator could not run it

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON values (``skipped`` only when a unit was skipped)."""
        out = asdict(self)
        if not out["skipped"]:
            del out["skipped"]
        return out


def plan_groups(cells: Iterable[Cell], max_group: int = MAX_GROUP) -> list[list[Cell]]:
    """Split ``cells`` into stackable groups: same shape key, at most ``max_group`` each.

    Deterministic: cells keep their sweep order within a key, keys appear in order of first use, so the
    groups of a rerun over the missing cells are the same groups the first run would have made for them
    whenever whole groups were finished.
    """
    require_int_range("max_group", max_group, 1)
    by_key: OrderedDict[tuple, list[Cell]] = OrderedDict()
    for c in cells:
        by_key.setdefault(c.shape_key, []).append(c)
    groups = []
    for members in by_key.values():
        for i in range(0, len(members), max_group):
            groups.append(members[i:i + max_group])
    return groups


def _run_group(evaluate_group: GroupEvaluator, cells: list[Cell], threads: int | None) -> list[dict]:
    """Worker side: evaluate one group and build its stored rows (config + results + versions)."""
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    results = evaluate_group(cells)
    require(len(results) == len(cells),
            f"evaluate_group returned {len(results)} results for {len(cells)} cells")
    elapsed = time.perf_counter() - start
    vers = versions()
    rows = []
    for cell, result in zip(cells, results):
        row = cell.to_dict()
        row.update(result)
        row.setdefault("seconds", elapsed / len(cells))
        row["group_seconds"] = elapsed
        row["group_size"] = len(cells)
        row["versions"] = vers
        rows.append(row)
    return rows


def default_evaluator(device: str = "cpu", precision: str = "fp32", evaluator: str = "train") -> GroupEvaluator:
    """Train each group stacked on ``device`` (evaluation runs on the CPU); ``evaluator`` (a sweep's
    ``SweepSpec.evaluator``): "train" scores each model, "dynamics" snapshots it over training."""
    evaluate = dynamics_group if evaluator == "dynamics" else train_and_evaluate_group
    if device == "cpu" and precision == "fp32":
        return evaluate
    return functools.partial(evaluate, device=device, precision=precision)


def run_sweep(
    spec,
    store_dir: Path | str,
    *,
    jobs: int = 1,
    dask_address: str | None = None,
    evaluate_group: GroupEvaluator | None = None,
    max_group: int = MAX_GROUP,
    progress: bool = True,
    device: str = "cpu",
    precision: str = "fp32",
) -> SweepSummary:
    """Compute every missing unit of ``spec`` (a SweepSpec or another experiment spec, see the module
    docstring) into the store at ``store_dir``; return a summary. ``device``/``precision``: where and
    how the default evaluator of a sweep trains (see ``polysemy.sae.train``)."""
    require_int_range("jobs", jobs, 1, 256)
    if getattr(spec, "in_process", False):
        jobs, dask_address = 1, None
    start = time.perf_counter()
    store = ResultStore(store_dir)
    cells = spec.expand()
    total_ids = {c.cell_id for c in cells}
    done, corrupt = store.check_cells()
    for cell_id, reason in sorted(corrupt.items()):
        action = "recomputing it" if cell_id in total_ids else "not part of this sweep, left as it is"
        print(f"polysemy: warning: cell {cell_id} in {store.root} is corrupt ({reason}); {action}",
              file=sys.stderr)
    missing = [c for c in cells if c.cell_id not in done]
    unique_missing = list(OrderedDict((c.cell_id, c) for c in missing).values())
    if not unique_missing:
        return SweepSummary(spec.name, len(total_ids), len(total_ids & done), 0,
                            time.perf_counter() - start, str(store.root))

    client = _connect_dask(dask_address) if dask_address is not None else None  # before the store is touched
    try:
        store.remove_stale_temporaries()
        store.write_spec(spec)
        evaluate_group = evaluate_group or spec.default_evaluator(device, precision)
        groups = plan_groups(unique_missing, max_group)
        computed = 0
        skipped: dict[str, str] = {}
        sweep = isinstance(spec, SweepSpec)
        bar = tqdm(total=len(unique_missing), desc=f"sweep {spec.name}" if sweep else spec.name,
                   unit="cell" if sweep else "unit", file=sys.stderr, disable=not progress, dynamic_ncols=True)
        try:
            for rows in _execute(groups, evaluate_group, jobs, client):
                for row in rows:
                    if SKIPPED in row:
                        skipped[row["cell_id"]] = str(row[SKIPPED])
                    else:
                        store.write_cell(row, sort_keys=sweep)   # a unit's row keeps its evaluator's order
                        computed += 1
                bar.update(len(rows))
        finally:
            bar.close()
    finally:
        if client is not None:
            client.close()
    done, _ = store.check_cells()
    return SweepSummary(spec.name, len(total_ids), len(total_ids & done), computed,
                        time.perf_counter() - start, str(store.root), len(groups), skipped)


def run_experiment(spec, store_dir: Path | str, **run_options) -> pd.DataFrame:
    """Run ``spec`` into the store at ``store_dir`` (resuming it) and return its results as a DataFrame:
    ``spec.frame(rows)`` where the spec has one, else one flattened row per finished unit
    (``load_results``), in the order of ``spec.expand()`` (a unit listed twice, as two axis points of a
    sweep that resolve to the same config, gives two rows, as the figures have always counted it).
    ``run_options``: those of :func:`run_sweep`. The run's :class:`SweepSummary` is in
    ``frame.attrs["summary"]`` (as a dict)."""
    summary = run_sweep(spec, store_dir, **run_options)
    ids = [u.cell_id for u in spec.expand()]
    if hasattr(spec, "frame"):
        frame = spec.frame(ResultStore(store_dir).rows(ids))
    else:
        frame = load_results(store_dir, ids)
    frame.attrs["summary"] = summary.to_dict()
    return frame


def run_units(spec, store: Path | str | None = None, *, progress: bool = True, log=None,
              what: str = "units") -> tuple[list, dict[str, dict], SweepSummary]:
    """Run ``spec`` into the store at ``store`` (``None``: a temporary store, so everything runs and nothing
    is kept) and return (its units in order, {cell id: stored row}, the summary). Units found already
    done are kept, and said so on ``log`` (when given) as "N of M ``what`` were already done"."""
    units = spec.expand()
    with store_or_temporary(store) as root:
        summary = run_sweep(spec, root, progress=progress)
        stored = {row["cell_id"]: row for row in ResultStore(root).rows([u.cell_id for u in units])}
    reused = summary.cells_done - summary.cells_computed
    if reused and log is not None:
        print(f"polysemy {spec.name}: {reused} of {len(units)} {what} were already done in {store} (kept; "
              "another --out runs them anew)", file=log)
    return units, stored, summary


def unit_result(row: dict) -> dict:
    """What a :class:`~polysemy.experiments.spec.Unit`'s evaluator returned, from its stored row: the row
    without the unit's own keys and the runner's (``seconds`` stays: evaluators of units give their own)."""
    return {k: v for k, v in row.items() if k not in UNIT_KEYS + RUNNER_KEYS}


def _execute(groups: list[list[Cell]], evaluate_group: GroupEvaluator, jobs: int, client=None):
    """Yield each group's rows as soon as it finishes (in process, joblib processes, or Dask)."""
    if client is not None:
        yield from _execute_dask(groups, evaluate_group, client)
        return
    if jobs == 1 or len(groups) == 1:
        for g in groups:
            yield _run_group(evaluate_group, g, None)
        return

    threads = max(1, (os.cpu_count() or 1) // jobs)
    parallel = Parallel(n_jobs=min(jobs, len(groups)), return_as="generator_unordered")
    yield from parallel(delayed(_run_group)(evaluate_group, g, threads) for g in groups)


def _connect_dask(address: str):
    """A Dask client for the scheduler at ``address``; ConfigError (within about 15 s) when there is none.

    The address is first parsed and probed with one TCP connection (``dask_address.check_dask_address``,
    5 s), then the client handshake gets ``DASK_CONNECT_TIMEOUT_S``. Anything that fails on the way (a
    refused port, something that is not a Dask scheduler and answers garbage) is a one-line ConfigError.
    """
    check_dask_address(address)
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("--dask needs dask[distributed]: pip install 'polysemy[dask]'") from None
    try:
        return Client(address, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
    except Exception as exc:  # distributed raises OSError, TimeoutError, or whatever a non-scheduler provokes
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"--dask must be the address of a reachable Dask scheduler, got {address!r} "
                          f"({type(exc).__name__}: {first[:120]})") from None


def _execute_dask(groups, evaluate_group, client):
    """Run the groups through joblib's Dask backend on the connected ``client``."""
    with client.as_current(), parallel_config(backend="dask"):
        parallel = Parallel(n_jobs=-1, return_as="generator_unordered")
        yield from parallel(delayed(_run_group)(evaluate_group, g, 1) for g in groups)
