"""The dynamics figure is a sweep: its cells are trained once with a Snapshots callback and stored, and the
drawing only reads the store (a second draw trains nothing). CI-sized: the quick sweep cut to 60 steps."""

import numpy as np
import pandas as pd
import pytest

from polysemy.cli import main
from polysemy.errors import ConfigError
from polysemy.experiments import figures, load_results, sweeps
from polysemy.experiments.dynamics import DynamicsRecord, record_dynamics, snapshot_steps
from polysemy.experiments.spec import SweepSpec, cell_id_for


def _short(name, quick=False):
    spec = sweeps.get_sweep(name, quick)
    return spec.replace(train=spec.train.replace(steps=60, log_every=20), eval_samples=512)


def test_dynamics_figure_reads_the_store_and_trains_nothing_to_redraw(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "get_sweep", _short)
    out, store = tmp_path / "figs", tmp_path / "store"
    assert main(["figures", "dynamics", "--quick", "--out", str(out), "--store", str(store)]) == 0
    table = pd.read_csv(out / "dynamics.csv")
    assert list(table["step"]) == [0, 20, 40, 60]
    assert table["frr.0.9"].between(0, 1).all()

    frame = load_results(store / "dynamics-quick")
    assert len(frame) == 1 and "metrics.frr.0.9" in frame       # a stored cell like any sweep's
    rec = DynamicsRecord.from_frame(frame)
    assert rec.best_cosine_TN.shape == (4, 64) and rec.frequency_TM.shape == (4, 128)
    assert np.allclose(table["frr.0.9"], (rec.best_cosine_TN >= 0.9).mean(axis=1), rtol=0, atol=0)

    def no_training(*args, **kwargs):
        raise AssertionError("drawing the dynamics figure trained a model")

    import polysemy.sae
    import polysemy.sae.trainer

    monkeypatch.setattr(polysemy.sae, "train_stacked", no_training)
    monkeypatch.setattr(polysemy.sae.trainer, "_train_stack", no_training)
    assert main(["figures", "dynamics", "--quick", "--out", str(tmp_path / "again"), "--store", str(store)]) == 0
    assert (tmp_path / "again" / "dynamics.csv").read_text() == (out / "dynamics.csv").read_text()


def test_record_dynamics_is_the_sweep_evaluator_on_one_cell():
    spec = _short("dynamics", quick=True)
    rec = record_dynamics(spec.world, spec.train, probe_samples=spec.eval_samples)
    assert list(rec.steps) == snapshot_steps(spec.train) == [0, 20, 40, 60]
    again = DynamicsRecord.from_row(rec.to_row())        # the JSON round trip keeps every number
    for name in ("steps", "best_cosine_TN", "frequency_TM", "target_M"):
        a, b = getattr(rec, name), getattr(again, name)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    assert rec.frequency_TM.dtype == np.float32 and rec.best_cosine_TN.dtype == np.float64


def test_snapshot_steps_are_zero_the_log_points_and_the_end():
    spec = sweeps.get_sweep("dynamics", quick=True)
    assert snapshot_steps(spec.train) == [0, *range(166, 2000, 166), 2000]   # the figure's 14 points
    assert snapshot_steps(sweeps.get_sweep("dynamics").train) == list(range(0, 4001, 200))


def test_the_evaluator_is_part_of_a_cell_id_only_when_not_the_default():
    spec = _short("dynamics", quick=True)
    cell = spec.expand()[0]
    assert cell.cell_id == cell_id_for(cell.world, cell.train, cell.seed, cell.eval_samples, "dynamics")
    plain = spec.replace(evaluator="train").expand()[0]
    assert plain.cell_id == cell_id_for(cell.world, cell.train, cell.seed, cell.eval_samples) != cell.cell_id
    with pytest.raises(ConfigError, match="evaluator must be one of"):
        SweepSpec(name="x", evaluator="nope")


def test_drawing_without_stored_results_says_what_to_run():
    from polysemy.experiments.plots import draw_dynamics

    with pytest.raises(ConfigError, match="polysemy sweep dynamics"):
        draw_dynamics({"dynamics": pd.DataFrame()}, quick=True)
