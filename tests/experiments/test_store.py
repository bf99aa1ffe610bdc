"""The result store: atomic cell files, a pandas round trip, stale temporaries cleaned up."""

import json
import math

import pandas as pd
import pytest

from polysemy.experiments.store import ResultStore, flatten_row, load_results, versions


def _row(cell_id: str, frr: float) -> dict:
    return {"cell_id": cell_id, "seed": 0, "params": {"world.d": 8, "method": "GBA"},
            "world": {"n": 16, "d": 8}, "train": {"method": "gba", "params": {"htf": 0.1}},
            "metrics": {"frr": {"0.8": frr, "0.9": frr / 2}, "mcc": 0.5}, "theory": {"band": [0.1, 0.2]},
            "seconds": 1.5, "versions": versions()}


def test_round_trip_through_pandas(tmp_path):
    store = ResultStore(tmp_path / "s")
    assert store.done_ids() == set()
    for i, frr in enumerate((0.25, 0.5, 1.0)):
        store.write_cell(_row(f"c{i}", frr))
    assert store.done_ids() == {"c0", "c1", "c2"}
    assert store.read_cell("c1") == json.loads(json.dumps(_row("c1", 0.5)))
    df = load_results(tmp_path / "s")
    assert list(df["cell_id"]) == ["c0", "c1", "c2"]
    assert list(df["metrics.frr.0.8"]) == [0.25, 0.5, 1.0]
    assert list(df["metrics.frr.0.9"]) == [0.125, 0.25, 0.5]
    assert list(df["params.world.d"]) == [8, 8, 8]
    assert list(df["train.params.htf"]) == [0.1] * 3
    assert {"versions.polysemy", "versions.torch", "versions.numpy", "versions.python"} <= set(df.columns)
    # a subset by id, in the order asked
    assert list(load_results(tmp_path / "s", ["c2", "c0"])["cell_id"]) == ["c2", "c0"]


def test_empty_store_reads_as_empty_frame(tmp_path):
    df = load_results(tmp_path / "nothing-here")
    assert isinstance(df, pd.DataFrame) and len(df) == 0


def test_flatten_keeps_lists_and_nested_keys():
    flat = flatten_row({"a": {"b": {"c": 1}, "l": [1, 2]}, "x": None})
    assert flat == {"a.b.c": 1, "a.l": [1, 2], "x": None}


def test_stale_temporaries_are_ignored_and_removed(tmp_path):
    store = ResultStore(tmp_path)
    store.write_cell(_row("done", 1.0))
    (store.cells_dir / "half.json.tmp-12345").write_text('{"cell_id": "ha')  # a SIGKILLed writer's leftover
    assert store.done_ids() == {"done"}
    assert store.remove_stale_temporaries() == 1
    assert sorted(p.name for p in store.cells_dir.iterdir()) == ["done.json"]


def test_nan_metrics_survive(tmp_path):
    store = ResultStore(tmp_path)
    row = _row("n", 1.0)
    row["metrics"]["mcc"] = float("nan")
    store.write_cell(row)
    assert math.isnan(load_results(tmp_path)["metrics.mcc"].iloc[0])


def test_corrupt_cells_are_skipped_by_the_loader_with_a_warning(tmp_path):
    store = ResultStore(tmp_path / "s")
    for i in range(3):
        store.write_cell(_row(f"c{i}", 0.5))
    store.cell_path("c1").write_text('{"cell_id": "c1", "metr')          # cut short
    store.cell_path("c2").write_text(json.dumps(_row("other", 0.5)))     # another cell's content
    good, corrupt = store.check_cells()
    assert good == {"c0"} and set(corrupt) == {"c1", "c2"}
    with pytest.warns(UserWarning, match="corrupt cell c1"):
        df = load_results(tmp_path / "s")
    assert list(df["cell_id"]) == ["c0"]
