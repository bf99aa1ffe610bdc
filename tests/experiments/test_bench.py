"""Tests of ``polysemy bench`` and its measurements (CI-sized: tiny shapes, short trials).

Speed itself is not asserted (the machine is shared and noisy; speed is reported by ``benchmarks/``);
what is asserted is the FLOP accounting, the JSON contract and the input checks.
"""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polysemy.cli import main
from polysemy.errors import ConfigError
from polysemy.experiments import throughput
from polysemy.experiments.throughput import (BenchConfig, ReferenceStep, classify_limit, count_matmul_flops,
                                             nominal_step_flops)


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 16), d=st.integers(1, 12), width=st.integers(1, 24))
def test_reference_step_runs_exactly_the_five_products_of_a_plain_step(batch, d, width):
    # Law: forward (encode, decode) + backward (dW_dec, dacts, dW_enc; x needs no gradient) = 10·B·d·M.
    assert count_matmul_flops(ReferenceStep(batch, d, width)) == nominal_step_flops(batch, d, width)


def test_library_steps_count_their_products():
    # Dense path: encode, decode and backpropagate: >= 10·B·d·M matrix FLOPs. Sparse path: at least the
    # encoder product 2·B·d·M (decode and gradients run in embedding_bag kernels, not matrix products).
    from polysemy.sae import sparse

    for method in ("gba", "topk", "relu-l1"):
        with sparse.forced_decode_mode("dense"):
            step = throughput.library_step(method, 8, 64, 32)
            assert count_matmul_flops(step) >= nominal_step_flops(32, 8, 64), method
    for method in ("gba", "topk"):
        with sparse.forced_decode_mode("sparse"):
            step = throughput.library_step(method, 8, 64, 32)
            assert count_matmul_flops(step) >= 2 * 32 * 8 * 64, method


def test_forced_dead_latents_make_auxk_run_and_adapted_gba_is_sparse():
    pool = throughput.batch_pool(16, 256, 64)
    dead = torch.arange(0, 256, 2)
    topk = throughput.LibraryStep("topk", 16, 256, 64, pool=pool, dead=dead, params={"k": 4})
    for _ in range(3):
        out = topk()
        assert float(out.extras["aux_loss"]) > 0          # AuxK ran at every step
    gba = throughput.LibraryStep("gba", 16, 256, 64, pool=pool)
    out = gba()
    assert float(out.fired_GM.sum()) / 64 < 256 / 8         # adapted biases: a sparse code (L0 << M)


def test_alternate_times_every_contender():
    calls = {"a": 0, "b": 0}

    def bump(name):
        def fn():
            calls[name] += 1
        return fn

    secs = throughput.alternate({"a": bump("a"), "b": bump("b")}, repeats=3, min_seconds=0.001, warmup=1)
    assert set(secs) == {"a", "b"} and all(v > 0 for v in secs.values())
    assert calls["a"] >= 4 and calls["b"] >= 4


def test_classify_limit_follows_its_stated_rule():
    peak = 100.0
    assert classify_limit(1.0, 0.9, 0.5, 90.0, peak) == "python-overhead"
    assert classify_limit(1.0, 0.9, 0.01, 90.0, peak) == "arithmetic"
    assert classify_limit(1.0, 0.9, 0.01, 20.0, peak) == "memory-traffic (products)"
    assert classify_limit(1.0, 0.2, 0.01, 90.0, peak) == "memory-traffic (element-wise)"


def test_matmul_rate_is_positive_and_finite():
    rate = throughput.measure_matmul_gflops(64, min_seconds=0.01, trials=2)
    assert 0 < rate < 1e6  # GFLOP/s; 1 PFLOP/s would mean a broken timer


def test_bench_config_rejects_bad_shapes():
    with pytest.raises(ConfigError, match="width"):
        BenchConfig(shapes=((16, 0),))
    with pytest.raises(ConfigError, match="batch"):
        BenchConfig(batch=0)


def test_bench_json_quick_has_the_contract_keys(capsys, one_thread):
    status = main(["bench", "--json", "--quick", "--shapes", "8x64", "--batch", "32", "--threads", "1",
                   "--no-sparsify"])
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("shapes", "limits", "goals", "datagen_fraction", "sparsify"):
        assert key in result
    assert result["sparsify"] is False
    assert {r["method"] for r in result["shapes"]} == {"gba", "topk"}
    for row in result["shapes"]:
        for key in ("d", "width", "method", "samples_per_second", "limit_samples_per_second", "limit_fraction",
                    "sparsify_samples_per_second", "l0", "path", "dead_latents", "step_flops"):
            assert key in row
        assert (row["d"], row["width"]) == (8, 64)
        assert row["samples_per_second"] > 0 and row["limit_samples_per_second"] > 0
        assert row["limit_fraction"] == pytest.approx(row["samples_per_second"] / row["limit_samples_per_second"])
        assert row["sparsify_samples_per_second"] is None
    assert result["datagen_fraction"] > 0


def test_bench_bad_shape_is_a_one_line_error(capsys):
    assert main(["bench", "--shapes", "64by512"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polysemy: error: argument --shapes: must be DxWIDTH") and "\n" not in err


def test_bench_writes_json_and_csv(tmp_path, one_thread):
    assert main(["bench", "--json", "--quick", "--shapes", "8x64", "--batch", "16", "--methods", "topk", "--no-sparsify",
                 "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["shapes"][0]["method"] == "topk"
    header = (tmp_path / "bench.csv").read_text().splitlines()[0]
    assert header.startswith("d,width,batch,method,samples_per_second")
    assert not list(tmp_path.glob("*.tmp-*"))  # atomic writes leave no temp files


def test_seconds_per_call_rejects_a_zero_window():
    with pytest.raises(ConfigError, match="min_seconds"):
        throughput.seconds_per_call(lambda: None, min_seconds=0)
