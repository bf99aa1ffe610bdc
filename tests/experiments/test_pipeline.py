"""Peers and the throughput bench as experiment specs: run by the runner into the result store, resumed
after an interruption without redoing finished units, and read back as DataFrames."""

import io
import json

import pytest
import torch

from polysemy.cli import main
from polysemy.experiments import peers, throughput
from polysemy.experiments.peer_adapters.base import PeerUnavailable
from polysemy.experiments.peers import PeersConfig, PeersSpec
from polysemy.experiments.runner import run_experiment
from polysemy.experiments.spec import Unit, unit_id_for
from polysemy.experiments.store import ResultStore
from polysemy.experiments.throughput import BENCH_CSV_COLUMNS, BenchConfig, BenchSpec


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/experiments/conftest.py


def _counting(monkeypatch, module, name, fail_on_call=None, exc=KeyboardInterrupt):
    """Wrap ``module.name`` to count its calls; call number ``fail_on_call`` raises ``exc`` instead
    (a Ctrl-C, or a kill, between two units)."""
    real = getattr(module, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(args)
        if fail_on_call is not None and len(calls) == fail_on_call:
            raise exc("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _timeless(rows):
    """Rows without wall-clock fields (they differ between any two runs)."""
    def scrub(o):
        if isinstance(o, dict):
            return {k: scrub(v) for k, v in o.items() if k != "seconds"}
        if isinstance(o, list):
            return [scrub(v) for v in o]
        return o
    return scrub(rows)


PEERS = PeersConfig(worlds=("paper-toy",), systems=("random-init", "polysemy-gba"), budget=2048, checkpoints=2,
                    eval_samples=256)


def test_units_are_content_addressed():
    a = Unit.make("peers", {"world": "paper-toy", "budget": 2048})
    assert a.cell_id == Unit.make("peers", {"budget": 2048, "world": "paper-toy"}).cell_id
    assert a.cell_id == unit_id_for("peers", {"world": "paper-toy", "budget": 2048})
    assert a.cell_id != Unit.make("peers", {"world": "paper-toy", "budget": 4096}).cell_id
    assert a.cell_id != Unit.make("bench", {"world": "paper-toy", "budget": 2048}).cell_id
    # what a system's result does not depend on does not change its unit
    ids = [u.cell_id for u in PeersSpec(PEERS).expand()]
    assert ids == [u.cell_id for u in PeersSpec(PEERS.replace(sklearn_alphas=(0.5,))).expand()]
    assert ids != [u.cell_id for u in PeersSpec(PEERS.replace(seed=1)).expand()]


def test_interrupted_peers_run_resumes_without_redoing_finished_systems(tmp_path, monkeypatch):
    store = tmp_path / "store"
    calls = _counting(monkeypatch, peers, "fit_system", fail_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        peers.run_peers(PEERS, progress=False, store=store)
    (done,) = ResultStore(store).done_ids()              # the first system finished and was kept
    stamp = ResultStore(store).cell_path(done).stat().st_mtime_ns
    monkeypatch.undo()

    calls = _counting(monkeypatch, peers, "fit_system")
    resumed = peers.run_peers(PEERS, progress=False, store=store)
    assert [spec.name for spec, *_ in calls] == ["polysemy-gba"]      # only the missing system ran
    assert ResultStore(store).cell_path(done).stat().st_mtime_ns == stamp
    assert [r["system"] for r in resumed["rows"]] == ["random-init", "polysemy-gba"]
    assert not [p for p in (store / "cells").iterdir() if ".tmp-" in p.name]

    calls.clear()
    again = peers.run_peers(PEERS, progress=False, store=store)       # complete: nothing runs
    assert calls == [] and again["rows"] == resumed["rows"]
    fresh = peers.run_peers(PEERS, progress=False)                     # a temporary store: all run
    assert len(calls) == 2 and _timeless(fresh["rows"]) == _timeless(resumed["rows"])


def test_peers_dataframe_has_one_row_per_system_with_named_columns(tmp_path):
    frame = run_experiment(PeersSpec(PEERS), tmp_path / "store", progress=False)
    assert list(frame["system"]) == ["random-init", "polysemy-gba"]
    assert {"cell_id", "kind", "unit.world", "unit.family", "unit.budget", "world", "family", "frr_0.9",
            "frr.0.9", "frr.0.99", "mcc", "l0", "dead_fraction", "seconds", "samples", "curve",
            "versions.polysemy"} <= set(frame.columns)
    assert frame["frr_0.9"].between(0, 1).all() and set(frame["kind"]) == {"peers"}
    assert frame.attrs["summary"]["cells_computed"] == 2


def test_a_peer_missing_at_run_time_is_skipped_stored_nowhere_and_tried_again(tmp_path, monkeypatch):
    store = tmp_path / "store"
    real = peers.fit_system

    def missing_random_init(spec, world, cfg):
        if spec.family == "random-init":
            raise PeerUnavailable("not here today")
        return real(spec, world, cfg)

    monkeypatch.setattr(peers, "fit_system", missing_random_init)
    result = peers.run_peers(PEERS, progress=False, store=store, log=io.StringIO())
    assert [r["system"] for r in result["rows"]] == ["polysemy-gba"]
    assert result["skipped"] == [{"system": "random-init", "world": "paper-toy", "reason": "not here today"}]
    assert len(ResultStore(store).done_ids()) == 1
    monkeypatch.undo()
    calls = _counting(monkeypatch, peers, "fit_system")
    result = peers.run_peers(PEERS, progress=False, store=store)
    assert [spec.name for spec, *_ in calls] == ["random-init"] and result["skipped"] == []


BENCH = BenchConfig(shapes=((8, 32), (8, 64)), batch=16, methods=("topk",), repeats=1, min_seconds=0.005,
                    sparsify=False, stacked_d=8, stacked_width=32, stacked_batches=(16,), matmul_size=64)


def test_interrupted_bench_resumes_and_keeps_the_rounds_already_timed(tmp_path, monkeypatch):
    store = tmp_path / "store"
    calls = _counting(monkeypatch, throughput, "bench_shape", fail_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        throughput.run_bench(BENCH, progress=False, store=store)
    (first,) = ResultStore(store).rows()
    monkeypatch.undo()

    calls = _counting(monkeypatch, throughput, "bench_shape")
    result = throughput.run_bench(BENCH, progress=False, store=store)
    assert [(d, w) for _, d, w, _ in calls] == [(8, 64)]              # only the missing round ran
    assert [(r["d"], r["width"]) for r in result["shapes"]] == [(8, 32), (8, 64)]
    assert result["shapes"][0] == first["methods"][0]                 # the kept round, exactly
    assert result["limits"][0] == first["limit"] and result["datagen"][0] == first["datagen"]


def test_bench_units_pair_every_ratio_in_one_round_and_change_with_the_threads():
    units = BenchSpec(BENCH.replace(stacked_models=2)).expand()
    assert [u.kind for u in units] == ["bench-shape", "bench-shape", "bench-stacked"]
    assert units[0].key["methods"] == ["topk"] and units[0].key["threads"] == 1
    torch.set_num_threads(2)
    assert [u.cell_id for u in BenchSpec(BENCH.replace(stacked_models=2)).expand()] != [u.cell_id for u in units]


def test_bench_dataframe_has_one_row_per_shape_and_method(tmp_path):
    frame = run_experiment(BenchSpec(BENCH.replace(methods=("topk", "relu-l1"))), tmp_path / "s", progress=False)
    assert set(BENCH_CSV_COLUMNS) <= set(frame.columns)
    assert list(zip(frame["width"], frame["method"])) == [(32, "topk"), (32, "relu-l1"), (64, "topk"),
                                                           (64, "relu-l1")]
    assert (frame["samples_per_second"] > 0).all()


def test_bench_cli_with_out_resumes_and_says_so(tmp_path, capsys):
    argv = ["bench", "--json", "--quick", "--shapes", "8x32", "--batch", "16", "--methods", "topk",
            "--no-sparsify", "--threads", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "1 of 1 timing rounds were already done" in captured.err
    assert json.loads(captured.out)["shapes"] == first["shapes"]
    assert (tmp_path / "bench-store" / "cells").is_dir()


def test_an_out_folder_holding_other_files_as_its_store_is_refused(tmp_path, capsys):
    (tmp_path / "peers-store").mkdir()
    (tmp_path / "peers-store" / "notes.txt").write_text("mine")
    assert main(["peers", "--systems", "random-init", "--budget", "1024", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polysemy: error: --out must be a new or empty folder") and "\n" not in err
    assert (tmp_path / "peers-store" / "notes.txt").read_text() == "mine"
