"""End to end: ``polysemy llm-bench`` on a tiny saved Llama with a word-level tokenizer (no download)."""

import json

import pytest
import torch

pytest.importorskip("transformers", reason="the LLM extras (transformers) are not installed")

from polysemy.cli import main  # noqa: E402
from polysemy.errors import ConfigError  # noqa: E402
from polysemy.llm.bench import LLMBenchConfig, format_table  # noqa: E402
from polysemy.sae.methods.topk import threshold_beta_for  # noqa: E402

WORDS = [f"w{i}" for i in range(60)]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised 3-block Llama and a word-level tokenizer, saved like a local HF model."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    root = tmp_path_factory.mktemp("tiny")
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                                unk_token="<unk>")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
    transformers.LlamaForCausalLM(config).save_pretrained(root / "model")
    fast.save_pretrained(root / "model")
    gen = torch.Generator().manual_seed(0)
    docs = [" ".join(WORDS[i] for i in torch.randint(0, 60, (40,), generator=gen).tolist()) for _ in range(300)]
    (root / "corpus.txt").write_text("\n".join(docs))
    return root


def tiny_argv(root, out, *extra):
    return ["llm-bench", "--quick", "--model", str(root / "model"), "--text", str(root / "corpus.txt"),
            "--layer", "2", "--tokens", "1024", "--eval-tokens", "508", "--ce-tokens", "254", "--width", "64",
            "--batch-size", "32", "--ks", "4,8", "--l1s", "0.1", "--out", str(out), "--json", "--no-progress",
            *extra]


STANDARD = ("delta_ce", "kl", "explained_variance_raw", "alive_fraction", "ce_recovered", "ce_tokens",
            "alive_tokens", "eval_tokens", "lr", "train_tokens")


def test_llm_bench_json_on_a_tiny_local_model(tiny_model_dir, tmp_path, capsys):
    assert main(tiny_argv(tiny_model_dir, tmp_path, "--gba-scales", "0.5", "--lr-sweep", "")) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["methods"]
    k = report["l0_matched_k"]
    gba_l0 = next(r["l0"] for r in rows if (r["method"], r["setting"]) == ("gba", ""))
    assert k == round(gba_l0)
    matched = f"k={k} (L0 of gba)"
    assert [(r["method"], r["setting"], r["arm"]) for r in rows] == [
        ("gba", "", "main"), ("gba", "htf=0.05", "gba-frontier"), ("gba-tied", "", "architecture"),
        ("ba", "", "main"), ("topk", "k=4", "main"), ("topk", "k=8", "main"), ("relu-l1", "l1=0.1", "main"),
        ("jumprelu", "", "main"), ("topk", matched, "l0-matched"), ("batchtopk", matched, "l0-matched"),
        ("topk-tied", matched, "architecture")]
    # single epoch by default: every training token seen once
    assert report["steps"] == report["train_tokens"] // 32 and 0.9 < report["epochs"] <= 1.0
    for r in rows:
        for key in STANDARD:
            assert key in r and r[key] is not None, (r["method"], key)
        assert r["ce_tokens"] == 2 * 127 and r["alive_tokens"] == r["eval_tokens"] == 4 * 127
        assert r["kl"] >= 0 and 0 <= r["alive_fraction"] <= 1
        assert r["delta_ce"] == pytest.approx(r["ce_sae"] - report["ce_clean"])
        for s in r["per_seed"]:   # every seed is spliced in by default
            assert "delta_ce" in s and "kl" in s
    seeds = {(r["method"], r["arm"]): r["seeds"] for r in rows}
    assert seeds[("gba", "main")] == seeds[("topk", "l0-matched")] == 2 and seeds[("gba-tied", "architecture")] == 1
    by = {(r["method"], r["setting"]): r for r in rows}
    assert by[("gba", "")]["decoder"] == "untied" and by[("gba-tied", "")]["decoder"] == "tied"
    assert by[("gba", "")]["lr"] == 1e-2 and by[("topk", "k=4")]["lr"] == 1e-3   # each method's own lr
    assert by[("topk", matched)]["l0"] == pytest.approx(k)                         # TopK fires exactly k
    groups = by[("gba", "")]["per_seed"][0]["group_frequencies"]
    assert len(groups) == 10 and sum(g["neurons"] for g in groups) == 64
    assert "group_frequencies" not in by[("topk", "k=4")]["per_seed"][0]
    bt = by[("batchtopk", matched)]
    assert bt["params"]["threshold_beta"] == pytest.approx(threshold_beta_for(report["steps"]))
    assert report["kl_zero"] > 0
    for name in ("frontier.png", "downstream.png", "consistency.png", "snippets.html", "snippets-topk.html",
                 "results.json"):
        assert (tmp_path / name).exists(), name
    page = (tmp_path / "snippets.html").read_text()
    assert "<mark>" in page and "<svg" in page and "group target" in page
    assert "dCE" in format_table(report) and "gba groups, target -> achieved" in format_table(report)


def test_lr_sweep_is_recorded_and_used(tiny_model_dir, tmp_path, capsys):
    argv = tiny_argv(tiny_model_dir, tmp_path, "--methods", "gba,topk", "--ks", "4", "--no-match-l0",
                     "--no-tied-arms", "--gba-scales", "", "--seeds", "1", "--lr-sweep", "0.5,2",
                     "--snippet-features", "0")
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["lr_sweep"]) == {"gba", "topk"}
    for row in report["methods"]:
        sweep = report["lr_sweep"][row["method"]]
        assert len(sweep["nmse_by_lr"]) == 2
        best = min(sweep["nmse_by_lr"], key=sweep["nmse_by_lr"].get)
        assert row["lr"] == pytest.approx(float(best)) == pytest.approx(sweep["chosen"])


def test_batchtopk_threshold_beta_forgets_the_first_batch():
    assert threshold_beta_for(800) ** 800 == pytest.approx(1e-3)
    assert threshold_beta_for(10**7) == 0.999


def test_bad_options_are_one_line_config_errors(tmp_path, capsys):
    assert main(["llm-bench", "--quick", "--width", "8", "--out", str(tmp_path)]) == 2   # k=16 > width
    assert "sweeps['topk'] (k=16)" in capsys.readouterr().err   # the k values of topk (formerly topk_ks)
    assert main(["llm-bench", "--quick", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["llm-bench", "--quick", "--gba-htf", "2", "--out", str(tmp_path)]) == 2
    assert "htf" in capsys.readouterr().err
    assert main(["llm-bench", "--quick", "--lr", "gba=fast", "--out", str(tmp_path)]) == 2
    assert "--lr" in capsys.readouterr().err
    assert main(["llm-bench", "--quick", "--extra-texts", "austen", "--out", str(tmp_path)]) == 2
    assert "extra_texts" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="methods"):
        LLMBenchConfig.full(methods=("gba", "sparse-magic"))
    if not torch.cuda.is_available():
        assert main(["llm-bench", "--quick", "--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "device" in capsys.readouterr().err


def test_config_json_round_trip_and_presets():
    cfg = LLMBenchConfig.quick(layer=3, topk_ks=(8, 16))
    assert LLMBenchConfig.from_json(cfg.to_json()) == cfg
    assert [s[0] for s in cfg.settings()].count("topk") == 2
    assert cfg.training.lr_sweep and LLMBenchConfig().training.lr_sweep == ()   # the presets sweep each method's lr
    medium = LLMBenchConfig.medium()
    assert medium.training.width >= 8 * 576 and medium.budget.tokens >= 1_000_000 and medium.training.steps is None
    assert medium.training.seeds_for("main", "gba") == 3 and medium.training.seeds_for("l0-matched", "topk") == 3
    full = LLMBenchConfig()
    assert full.budget.ce_tokens >= 50_000 and full.budget.ce_seeds is None and full.training.steps is None
    # the defaults fit the packaged Wikipedia summaries (1,058,313 SmolLM2 tokens) without extra texts
    budget = full.budget
    assert budget.tokens + budget.eval_tokens + budget.ce_tokens < 1_058_313 and full.source.extra_texts == ()


def test_stacked_seeds_train_the_same_saes_as_one_by_one(tiny_model_dir, tmp_path):
    from polysemy.llm.bench import run_llm_bench

    cfg = LLMBenchConfig.quick(model=str(tiny_model_dir / "model"), text=str(tiny_model_dir / "corpus.txt"),
                               layer=2, tokens=1024, eval_tokens=508, ce_tokens=254, width=64, batch_size=32,
                               methods=("gba", "topk"), topk_ks=(4,), match_l0=False, tied_arms=False,
                               gba_target_scales=(), snippet_features=0, shuffle_tokens=1)
    one = run_llm_bench(cfg, tmp_path / "one", progress=False)
    stacked = run_llm_bench(cfg.replace(stack_seeds=True), tmp_path / "stacked", progress=False)
    for a, b in zip(one["methods"], stacked["methods"]):
        assert a["method"] == b["method"] and a["seeds"] == b["seeds"] == 2
        for sa, sb in zip(a["per_seed"], b["per_seed"]):
            assert sa["nmse"] == pytest.approx(sb["nmse"], rel=1e-4) and sa["l0"] == pytest.approx(sb["l0"], rel=1e-4)


def test_the_architecture_arm_takes_the_other_decoder():
    names = lambda cfg: [(n, p.get("decoder")) for n, _, m, p, arm in cfg.settings() if arm == "architecture"]  # noqa: E731
    assert names(LLMBenchConfig.quick()) == [("gba-tied", "tied")]
    assert names(LLMBenchConfig.quick(gba_params={"decoder": "tied"})) == [("gba-untied", "untied")]


def test_matryoshka_batchtopk_runs_in_llm_bench(tiny_model_dir, tmp_path, capsys):
    """A method added as one file (polysemy/sae/methods/matryoshka_batchtopk.py) runs here on request,
    with its plan from the registry: its k axis (--sweep) and the row at GBA's L0."""
    argv = tiny_argv(tiny_model_dir, tmp_path, "--methods", "gba,matryoshka-batchtopk", "--sweep",
                     "matryoshka-batchtopk=4", "--no-tied-arms", "--gba-scales", "", "--seeds", "1",
                     "--lr-sweep", "", "--snippet-features", "0")
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["methods"]
    k = next(r for r in rows if r["method"] == "gba")["l0"]
    assert [(r["method"], r["setting"], r["arm"]) for r in rows] == [
        ("gba", "", "main"), ("matryoshka-batchtopk", "k=4", "main"),
        ("matryoshka-batchtopk", f"k={round(k)} (L0 of gba)", "l0-matched")]
    for r in rows[1:]:
        assert r["params"]["threshold_beta"] < 0.999 and r["nmse"] < 1.0   # batchtopk's bench decay; it fits


def _numbers(report):
    """The report without what differs between two runs of the same settings: timings and paths."""
    skip = {"seconds", "samples_per_second", "throughput", "store", "figures"}
    if isinstance(report, dict):
        return {k: _numbers(v) for k, v in report.items() if k not in skip}
    if isinstance(report, list):
        return [_numbers(v) for v in report]
    return report


def test_a_killed_run_resumes_from_the_store_without_retraining(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """Kill the bench (KeyboardInterrupt) after 5 trainings: the rerun loads the finished units from
    <out>/saes (checkpoints untouched, not trained again), says so, and reports what an uninterrupted
    run reports; a third run trains nothing."""
    import polysemy.llm.bench as bench

    cfg = LLMBenchConfig.quick(model=str(tiny_model_dir / "model"), text=str(tiny_model_dir / "corpus.txt"),
                               layer=2, tokens=1024, eval_tokens=508, ce_tokens=254, width=64, batch_size=32,
                               methods=("gba", "topk"), topk_ks=(4,), tied_arms=False, gba_target_scales=(),
                               lr_sweep=(0.5, 2.0), snippet_features=2)
    whole, frame = bench.run_llm_bench(cfg, tmp_path / "whole", progress=False, return_frame=True)
    assert len(frame) == sum(r["seeds"] for r in whole["methods"]) and {"method", "seed", "nmse", "cell_id"} <= set(frame)

    real_train, calls = bench.train, []

    def counting(limit):
        def fake(tcfg, *args, **kwargs):
            if len(calls) == limit:
                raise KeyboardInterrupt
            calls.append(tcfg)
            return real_train(tcfg, *args, **kwargs)
        return fake

    monkeypatch.setattr(bench, "train", counting(5))   # 4 lr trials, then one SAE
    with pytest.raises(KeyboardInterrupt):
        bench.run_llm_bench(cfg, tmp_path / "run", progress=False)
    checkpoints = tmp_path / "run" / bench.STORE_DIR / bench.CHECKPOINTS
    saved = {p.name: p.stat().st_mtime_ns for p in checkpoints.iterdir()}
    assert len(saved) == 1 and not (tmp_path / "run" / "results.json").exists()
    capsys.readouterr()

    calls.clear()
    monkeypatch.setattr(bench, "train", counting(-1))
    resumed = bench.run_llm_bench(cfg, tmp_path / "run", progress=False)
    assert len(calls) == frame["cell_id"].nunique() - 1   # every SAE but the one saved; no lr trial again
    assert {p.name: p.stat().st_mtime_ns for p in checkpoints.iterdir() if p.name in saved} == saved
    assert "reused 5 finished units" in capsys.readouterr().err
    assert _numbers(resumed) == _numbers(whole)

    calls.clear()
    again = bench.run_llm_bench(cfg, tmp_path / "run", progress=False)
    assert calls == [] and _numbers(again) == _numbers(whole)
    err = capsys.readouterr().err
    assert "of 4 lr trials" in err and "trained SAEs" in err and "CE splices" in err


def test_the_store_folder_must_be_a_store(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "saes").mkdir()
    (tmp_path / "saes" / "notes.txt").write_text("mine")
    assert main(tiny_argv(tiny_model_dir, tmp_path)) == 2
    assert "holds other files" in capsys.readouterr().err
    assert (tmp_path / "saes" / "notes.txt").read_text() == "mine"
