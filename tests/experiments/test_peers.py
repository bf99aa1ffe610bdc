"""Tests of the peer harness: the shared stream, the monitor, the rows and ``polysemy peers``.

Peer libraries are optional: tests that train one call ``pytest.importorskip`` and skip with the
reason when the ``peers`` extra is not installed. Budgets are small (seconds).
"""

import json
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polysemy.cli import main
from polysemy.errors import ConfigError
from polysemy.experiments import peers
from polysemy.experiments.peer_adapters.base import RecoveryMonitor, rebatch, samples_to_recovery
from polysemy.experiments.peers import PeersConfig, SystemSpec, build_world, checkpoint_schedule, systems_for
from polysemy.experiments.runner import plan_groups

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/experiments/conftest.py


EXTRA = "the optional 'peers' extra is not installed (pip install -e '.[peers]')"


@settings(max_examples=20, deadline=None)
@given(chunk_sizes=st.lists(st.integers(1, 9), min_size=1, max_size=12), batch=st.integers(1, 10))
def test_rebatch_keeps_the_sample_order_and_sizes(chunk_sizes, batch):
    chunks, start = [], 0
    for size in chunk_sizes:
        chunks.append(torch.arange(start, start + size, dtype=torch.float32)[:, None])
        start += size
    out = list(rebatch(iter(chunks), batch))
    assert all(b.shape == (batch, 1) for b in out)
    assert len(out) == start // batch
    if out:  # the batches are exactly the first len(out) * batch samples, in order
        assert torch.equal(torch.cat(out)[:, 0], torch.arange(len(out) * batch, dtype=torch.float32))


def test_every_system_reads_the_same_samples_whatever_its_batch():
    world = build_world("paper-toy")
    a = torch.cat([next(peers.shared_stream(world, 3, 1024))])
    small = peers.shared_stream(world, 3, 256)
    b = torch.cat([next(small) for _ in range(4)])
    assert torch.equal(a, b)


def test_samples_to_recovery_is_the_first_crossing_or_none():
    curve = [{"samples": 10, "frr_0.9": 0.5}, {"samples": 20, "frr_0.9": 0.96}, {"samples": 30, "frr_0.9": 0.94}]
    assert samples_to_recovery(curve, 0.95) == 20
    assert samples_to_recovery(curve, 0.99) is None


def test_monitor_records_at_checkpoints_and_its_clock_leaves_evaluation_out():
    truth = torch.eye(4)
    monitor = RecoveryMonitor(truth, [2, 5])
    monitor.start()

    def slow_rows():
        time.sleep(0.2)  # an evaluation that must not count as training time
        return truth

    for samples in (1, 2, 3, 6):
        monitor.after_step(samples, slow_rows)
    monitor.finish(7, slow_rows)
    assert [p["samples"] for p in monitor.curve] == [2, 6, 7]
    assert all(p["frr_0.9"] == 1.0 for p in monitor.curve)
    # three sleeps of 0.2 s happened; the training clock must have excluded them (bound: < 0.1 s).
    assert monitor.training_seconds < 0.1


def test_checkpoints_are_increasing_and_end_at_the_budget():
    points = checkpoint_schedule(100_000, 10)
    assert points == sorted(set(points)) and points[-1] == 100_000 and points[0] >= 100_000 // 64


def test_topk_families_get_the_true_and_a_wrong_k():
    world = build_world("uniform")
    specs = systems_for(world, ("saelens-topk", "polysemy-gba"))
    assert [(s.name, s.k_label) for s in specs] == [
        ("saelens-topk-k5", "true k"), ("saelens-topk-k20", "wrong k"), ("polysemy-gba", "")]


def test_peers_config_names_the_bad_parameter():
    with pytest.raises(ConfigError, match="systems"):
        PeersConfig(systems=("saelens-gated",))
    with pytest.raises(ConfigError, match="budget"):
        PeersConfig(budget=10)
    with pytest.raises(ConfigError, match="worlds"):
        PeersConfig(worlds=("zipf",))


def test_peers_cli_bad_system_is_a_one_line_error(capsys, tmp_path):
    assert main(["peers", "--systems", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polysemy: error: systems must be among") and "\n" not in err


def test_random_init_row_recovers_nothing():
    # n = 128 features in d = 42: a random unit row has cosine >= 0.9 with a given feature with
    # probability ~ exp(-42 * 0.81 / 2) ~ 4e-8, so FRR(0.9) of 256 random rows is 0 unless the rows
    # replay the world's own dictionary (the bug this guards against).
    result = peers.run_peers(PeersConfig(worlds=("paper-toy",), systems=("random-init",), budget=1024),
                             progress=False)
    (row,) = result["rows"]
    assert row["system"] == "random-init" and row["frr_0.9"] == 0.0 and row["samples_to_recovery"] is None


def test_polysemy_gba_row_through_the_harness():
    cfg = PeersConfig(worlds=("paper-toy",), systems=("polysemy-gba",), budget=4096, checkpoints=3, eval_samples=1024)
    (row,) = peers.run_peers(cfg, progress=False)["rows"]
    assert row["system"] == "polysemy-gba" and row["world"] == "paper-toy"
    assert row["samples"] == 4096 and row["width"] == 256
    assert 0.0 <= row["frr_0.9"] <= 1.0 and 0.0 <= row["dead_fraction"] <= 1.0 and row["l0"] >= 0
    assert row["curve"] and row["curve"][-1]["samples"] == 4096


def test_sparsify_topk_with_true_k_recovers_the_uniform_world_through_the_harness():
    pytest.importorskip("sparsify", reason=EXTRA)
    # Integration check of the stream, the adapter and the scoring together: measured 0.97 at
    # 200k samples (one seed); if the harness scrambled samples or scored the wrong rows, FRR would
    # stay near the random-init value 0. The bound 0.8 leaves room for library-version drift.
    cfg = PeersConfig(worlds=("uniform",), systems=("sparsify-topk",), budget=200_704, checkpoints=4)
    spec = SystemSpec("sparsify-topk", 5, "true k")
    world = build_world("uniform")
    fitted = peers.fit_system(spec, world, cfg)
    m = peers.score(fitted, world, peers.evaluation_set(world, 1024))
    assert m["frr"]["0.9"] >= 0.8
    assert abs(m["l0"] - 5) < 1e-6  # TopK fires exactly k latents per sample


def test_peers_cli_json_rows_and_files(capsys, tmp_path):
    pytest.importorskip("sae_lens", reason=EXTRA)
    status = main(["peers", "--quick", "--json", "--worlds", "paper-toy", "--budget", "4096",
                   "--systems", "saelens-topk,saelens-jumprelu,random-init", "--out", str(tmp_path)])
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    systems = [r["system"] for r in result["rows"]]
    assert systems == ["saelens-topk-k12", "saelens-topk-k48", "saelens-jumprelu", "random-init"]
    for row in result["rows"]:
        for key in ("system", "world", "frr", "mcc", "l0", "dead_fraction", "seconds", "samples_to_recovery"):
            assert key in row
        assert row["frr"].keys() == {"0.9", "0.99"}
    assert (tmp_path / "peers.csv").read_text().startswith("world,system,frr_0.9")
    assert (tmp_path / "peers_recovery_vs_time.png").stat().st_size > 1000


def test_sklearn_grid_reports_its_best_alpha():
    pytest.importorskip("sklearn", reason=EXTRA)
    cfg = PeersConfig(worlds=("paper-toy",), systems=("sklearn-mbdl",), budget=2048, checkpoints=2,
                      sklearn_alphas=(0.1, 0.3), sklearn_max_seconds=5.0, eval_samples=256)
    (row,) = peers.run_peers(cfg, progress=False)["rows"]
    grid = row["params"]["alpha_grid"]
    assert [g["alpha"] for g in grid] == [0.1, 0.3]
    best = max(grid, key=lambda g: (g["frr_0.9"], g["mcc"]))
    assert row["params"]["alpha"] == best["alpha"]


def test_a_missing_peer_is_skipped_with_its_reason(monkeypatch, capsys):
    from polysemy.experiments.peer_adapters import saelens_peer
    from polysemy.experiments.peer_adapters.base import PeerUnavailable

    def missing():
        raise PeerUnavailable("sae-lens is not installed (ImportError); install the extra")

    monkeypatch.setattr(saelens_peer, "_import", missing)
    result = peers.run_peers(PeersConfig(worlds=("paper-toy",), systems=("saelens-topk", "random-init"),
                                         budget=1024, eval_samples=256), progress=False)
    assert [r["system"] for r in result["rows"]] == ["random-init"]
    assert result["skipped"] == [{"system": "saelens-topk",
                                  "reason": "sae-lens is not installed (ImportError); install the extra"}]
    assert "skipping saelens-topk: sae-lens is not installed" in capsys.readouterr().err


# the content address 0.3 (commit 4158622) gave polysemy-topk with the true k on the uniform world
PINNED_SINGLE_ROUND_ID = "7742d8842e2d9459"


def test_timing_rounds_group_the_systems_given_the_same_k_and_leave_other_keys_alone():
    families = ("polysemy-topk", "sparsify-topk", "polysemy-gba")
    single = peers.PeersSpec(PeersConfig(worlds=("uniform",), systems=families)).expand()
    timed = peers.PeersSpec(PeersConfig(worlds=("uniform",), systems=families, timing_rounds=3)).expand()
    # run order: the true-k systems one after another, then the wrong-k ones, then the rest
    assert [(u.key["family"], u.key["k_label"]) for u in timed] == [
        ("polysemy-topk", "true k"), ("sparsify-topk", "true k"),
        ("polysemy-topk", "wrong k"), ("sparsify-topk", "wrong k"), ("polysemy-gba", "")]
    groups = plan_groups(timed)
    assert [[u.key["family"] for u in g] for g in groups] == [
        ["polysemy-topk", "sparsify-topk"], ["polysemy-topk", "sparsify-topk"], ["polysemy-gba"]]
    # single-round units keep their content address (stores of earlier runs stay valid), and so
    # does a system the rounds do not apply to
    assert {u.cell_id for u in single}.isdisjoint({u.cell_id for u in timed[:4]})
    assert single[-1].cell_id == timed[-1].cell_id
    assert all(u.group is None for u in single)
    # a single-round unit's content address is the one 0.3 stored (pinned), so old stores resume
    assert single[0].cell_id == PINNED_SINGLE_ROUND_ID
    # a timed unit names its company: timed with other systems it is another unit (a rerun with more
    # systems times them all again instead of mixing rounds from two runs)
    alone = peers.PeersSpec(PeersConfig(worlds=("uniform",), systems=("polysemy-topk",), timing_rounds=3)).expand()
    assert alone[0].cell_id != timed[0].cell_id and alone[0].key["timed_with"] == ["polysemy-topk"]


def test_timing_rounds_alternate_the_order_and_report_the_median(monkeypatch):
    cfg = PeersConfig(worlds=("uniform",), systems=("polysemy-topk", "sparsify-topk"), timing_rounds=4)
    units = peers.PeersSpec(cfg).expand()[:2]
    calls, clock = [], iter([5.0, 1.0, 7.0, 3.0, 2.0, 9.0])

    def fake_fit(spec, world, cfg_):
        calls.append(spec.family)
        return peers.FittedSystem(W_dec=torch.zeros(1, 1), encode_fn=None, seconds=next(clock))

    monkeypatch.setattr(peers, "fit_system", fake_fit)
    rows = [{"seconds": 4.0}, {"seconds": 6.0}]
    peers._retime(cfg, units, rows)
    # round 1 ran forward (the rows' own seconds), round 2 reversed, round 3 forward, round 4 reversed
    assert calls == ["sparsify-topk", "polysemy-topk", "polysemy-topk", "sparsify-topk",
                     "sparsify-topk", "polysemy-topk"]
    assert rows[0]["seconds_rounds"] == [4.0, 1.0, 7.0, 9.0]
    assert rows[1]["seconds_rounds"] == [6.0, 5.0, 3.0, 2.0]
    assert rows[0]["seconds"] == 5.5 and rows[1]["seconds"] == 4.0


def test_timing_rounds_out_of_range_is_a_one_line_error(capsys, tmp_path):
    assert main(["peers", "--timing-rounds", "0", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert "timing_rounds" in err and "[1, 9]" in err and len(err.splitlines()) == 1


def test_timing_rounds_without_a_topk_type_system_say_so(capsys):
    cfg = PeersConfig(worlds=("uniform",), systems=("random-init",), timing_rounds=3, budget=2048,
                      checkpoints=2, eval_samples=256)
    result = peers.run_peers(cfg, progress=False)
    assert [r["system"] for r in result["rows"]] == ["random-init"]
    assert "applies to TopK-type systems only" in capsys.readouterr().err
