"""polysemy.experiments: declarative sweeps, their runner and result store, the paper's figures.

    from polysemy.experiments import SweepSpec, Axis, run_sweep, load_results, get_sweep
    spec = get_sweep("width", quick=True)          # or SweepSpec(name=..., world=..., train=..., axes=...)
    summary = run_sweep(spec, "runs/sweeps/width-quick", jobs=2)
    df = load_results(summary.store)               # one row per cell, flattened columns

Modules: ``spec`` (SweepSpec, Axis, Cell, cell ids), ``store`` (ResultStore, load_results), ``runner``
(grouping, joblib/Dask, resume), ``evaluation`` (train a group stacked, score each cell), ``sweeps``
(the named sweeps), ``figures`` and ``plots`` (the paper's figures), ``dynamics`` (figure 6),
``cli`` (``polysemy sweep``, ``polysemy figures``). Docs: docs/experiments.md.
"""

from .runner import SweepSummary, plan_groups, run_sweep
from .spec import Axis, Cell, SweepSpec
from .store import ResultStore, load_results
from .sweeps import SWEEPS, get_sweep

__all__ = ["Axis", "Cell", "SweepSpec", "ResultStore", "load_results", "run_sweep", "plan_groups",
           "SweepSummary", "SWEEPS", "get_sweep"]
