"""polysemy.experiments: declarative sweeps, their runner and result store, the paper's figures.

    from polysemy.experiments import SweepSpec, Axis, run_sweep, load_results, get_sweep
    spec = get_sweep("width", quick=True)          # or SweepSpec(name=..., world=..., train=..., axes=...)
    summary = run_sweep(spec, "runs/sweeps/width-quick", jobs=2)
    df = load_results(summary.store)               # one row per cell, flattened columns

Any experiment spec runs the same way into a content-addressed, resumable store and comes back as a
DataFrame (``run_experiment(spec, store)``): sweeps of trainings (``SweepSpec``), the peers comparison
(``peers.PeersSpec``) and the throughput bench (``throughput.BenchSpec``); see the ``runner`` docstring.

Modules: ``spec`` (SweepSpec, Axis, Cell, Unit, content ids), ``store`` (ResultStore, load_results, the
column accessors), ``runner`` (grouping, joblib/Dask, resume, run_experiment), ``evaluation`` (train a
group stacked, score each cell), ``sweeps`` (the named sweeps), ``figures`` (the registry: figure ->
sweeps it reads, draw function) and ``plots`` (the draw functions), ``dynamics`` (figure 6), ``peers``
and ``throughput`` (``polysemy peers``, ``polysemy bench``), ``cli`` (``polysemy sweep``,
``polysemy figures``). Docs: docs/experiments.md.
"""

from .runner import SweepSummary, plan_groups, run_experiment, run_sweep
from .spec import Axis, Cell, SweepSpec, Unit
from .store import ResultStore, load_results
from .sweeps import SWEEPS, get_sweep

__all__ = ["Axis", "Cell", "SweepSpec", "Unit", "ResultStore", "load_results", "run_sweep", "run_experiment",
           "plan_groups", "SweepSummary", "SWEEPS", "get_sweep"]
