"""The runner: grouping, resume, parallel and Dask execution give the same store as a plain run."""

import pytest

from polysemy.experiments.evaluation import dry_run_group
from polysemy.experiments.runner import plan_groups, run_sweep
from polysemy.experiments.spec import Axis, SweepSpec
from polysemy.experiments.store import ResultStore, load_results
from polysemy.sae import TrainConfig
from polysemy.simulate import WorldConfig

CALLS: list[list[str]] = []


def recording_evaluator(cells):
    """A stand-in for training: deterministic fake metrics from the config, and a log of the groups."""
    CALLS.append([c.cell_id for c in cells])
    return [{"metrics": {"frr": {"0.9": c.world.d / 100 + c.seed / 1000}}, "seconds": 0.0} for c in cells]


def _spec(seeds=(0, 1, 2)):
    return SweepSpec(name="unit", world=WorldConfig(n=32, d=8, s=2),
                     train=TrainConfig(method="gba", width=16, steps=10, batch_size=64, params={"ltf": 0.01}),
                     axes=(Axis("world.d", values=(6, 8, 10)), Axis("train.lr", values=(1e-3, 3e-3))),
                     seeds=seeds, eval_samples=128)


def test_groups_share_a_shape_and_are_capped():
    cells = _spec().expand()
    groups = plan_groups(cells, max_group=4)
    assert sum(len(g) for g in groups) == len(cells) == 18
    assert all(len(g) <= 4 for g in groups)
    for g in groups:
        assert len({c.shape_key for c in g}) == 1
    # 3 shapes (one per d), 6 cells each -> 4 + 2 per shape
    assert sorted(len(g) for g in groups) == [2, 2, 2, 4, 4, 4]


def test_resume_computes_only_missing_cells_and_complete_sweep_returns_at_once(tmp_path):
    spec = _spec()
    CALLS.clear()
    first = run_sweep(spec, tmp_path, evaluate_group=recording_evaluator, progress=False, max_group=6)
    assert (first.cells_total, first.cells_done, first.cells_computed) == (18, 18, 18)
    full = load_results(tmp_path)
    # lose two cells, as if a run had died before writing them
    victims = sorted(ResultStore(tmp_path).done_ids())[:2]
    for v in victims:
        ResultStore(tmp_path).cell_path(v).unlink()
    CALLS.clear()
    second = run_sweep(spec, tmp_path, evaluate_group=recording_evaluator, progress=False)
    assert second.cells_computed == 2 and second.cells_done == 18
    assert sorted(cid for call in CALLS for cid in call) == victims
    again = load_results(tmp_path)
    cols = ["cell_id", "metrics.frr.0.9", "world.d", "train.lr", "seed"]
    assert again[cols].equals(full[cols])
    CALLS.clear()
    third = run_sweep(spec, tmp_path, evaluate_group=recording_evaluator, progress=False)
    assert third.cells_computed == 0 and third.cells_done == 18 and CALLS == []
    assert third.seconds < 1.0


def test_rows_hold_config_results_and_versions(tmp_path):
    run_sweep(_spec(seeds=(0,)), tmp_path, evaluate_group=recording_evaluator, progress=False)
    row = ResultStore(tmp_path).rows()[0]
    assert {"cell_id", "seed", "params", "world", "train", "metrics", "seconds", "versions"} <= set(row)
    assert set(row["versions"]) == {"polysemy", "torch", "numpy", "python"}
    assert WorldConfig.from_dict(row["world"]).d == row["params"]["world.d"]
    assert TrainConfig.from_dict(row["train"]).to_dict() == row["train"]


def test_joblib_processes_match_a_plain_run(tmp_path):
    spec = _spec(seeds=(0,))
    plain = run_sweep(spec, tmp_path / "plain", evaluate_group=dry_run_group, progress=False)
    parallel = run_sweep(spec, tmp_path / "par", jobs=2, evaluate_group=dry_run_group, progress=False)
    assert plain.cells_done == parallel.cells_done == 6 and parallel.groups == 3
    a, b = load_results(tmp_path / "plain"), load_results(tmp_path / "par")
    assert list(a["cell_id"]) == list(b["cell_id"])
    assert list(a["theory.f"]) == list(b["theory.f"])


def test_local_dask_cluster_runs_the_same_sweep(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = _spec(seeds=(0,))
    plain = run_sweep(spec, tmp_path / "plain", evaluate_group=recording_evaluator, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        on_dask = run_sweep(spec, tmp_path / "dask", dask_address=cluster.scheduler_address,
                            evaluate_group=recording_evaluator, progress=False)
    assert on_dask.cells_computed == plain.cells_computed == 6
    cols = ["cell_id", "metrics.frr.0.9"]
    assert load_results(tmp_path / "dask")[cols].equals(load_results(tmp_path / "plain")[cols])


def test_unreachable_dask_scheduler_is_a_config_error(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from polysemy.errors import ConfigError
    from polysemy.experiments import runner

    monkeypatch.setattr(runner, "DASK_CONNECT_TIMEOUT_S", 1)
    with pytest.raises(ConfigError, match="dask"):
        run_sweep(_spec(seeds=(0,)), tmp_path, dask_address="tcp://127.0.0.1:9",
                  evaluate_group=recording_evaluator, progress=False)


def test_a_corrupt_cell_is_recomputed_with_a_warning(tmp_path, capsys):
    spec = _spec(seeds=(0,))
    first = run_sweep(spec, tmp_path, evaluate_group=recording_evaluator, progress=False)
    store = ResultStore(tmp_path)
    victim = sorted(store.done_ids())[0]
    store.cell_path(victim).write_text("{truncated")
    CALLS.clear()
    again = run_sweep(spec, tmp_path, evaluate_group=recording_evaluator, progress=False)
    assert "corrupt" in capsys.readouterr().err and victim in CALLS[0]
    assert again.cells_computed == 1 and again.cells_done == first.cells_done == first.cells_total
    assert len(load_results(tmp_path)) == first.cells_total
