"""LLMBenchConfig in sections (issue 10): each section validates itself, the flat names and the old JSON
are still read, the content-addressed unit keys did not move, and the llm-bench flags are generated
from the sections' field metadata."""

import dataclasses
import hashlib
import json
import types
from pathlib import Path

import pytest

from polysemy.cli import build_parser, main
from polysemy.errors import ConfigError
from polysemy.llm.bench import LR_UNIT, _Bench, _data_key, _store_key
from polysemy.llm.cli import config_from_args
from polysemy.llm.config import (FLAT, SECTIONS, ActivationSource, LLMBenchConfig, MethodPlan, SAETraining,
                                 TokenBudget)

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = "packaged:SmolLM2-135M-Instruct"


# -- sections -------------------------------------------------------------------------------------------

def test_every_flat_name_belongs_to_one_section_and_to_dict_is_nested():
    cfg = LLMBenchConfig.quick()
    assert set(cfg.to_dict()) == {*SECTIONS, "normalize"}
    leaves = [name for section in SECTIONS for name in cfg.to_dict()[section]]
    assert sorted(leaves) == sorted(FLAT) and len(set(leaves)) == len(leaves)
    assert cfg.training.width == 1152 and cfg.source.layer == 6 and cfg.plan.sweep_for("topk") == (16, 64)


@pytest.mark.parametrize("build, message", [
    (lambda: SAETraining(seeds=2, arm_seeds=3), "arm_seeds must be an integer in [1, 2], got 3"),
    (lambda: TokenBudget(eval_tokens=0), "eval_tokens must be an integer in [1, inf), got 0"),
    (lambda: ActivationSource(context_length=2), "context_length must be an integer in [3, 8192], got 2"),
    (lambda: MethodPlan(sweeps={"jumprelu": (1,)}), "method 'jumprelu' has no bench axis"),
    (lambda: LLMBenchConfig.quick(tokens=100), "tokens must be at least batch_size (256)"),
    (lambda: LLMBenchConfig.quick(width=8), "sweeps['topk'] (k=16)"),
])
def test_each_section_validates_its_fields_and_the_config_what_spans_two(build, message):
    with pytest.raises(ConfigError) as info:
        build()
    assert message in str(info.value)


def test_flat_names_sections_and_old_fields_are_accepted():
    cfg = LLMBenchConfig.quick(width=64, batch_size=32, topk_ks=(4,), gba_params={"decoder": "tied"})
    assert cfg.training.width == 64 and cfg.plan.sweeps["topk"] == (4,) and cfg.plan.params_for("gba") == {
        "decoder": "tied"}
    assert cfg.plan.sweeps["relu-l1"] == (0.03, 0.1)          # the preset's other sweeps are kept
    stacked = cfg.replace(stack_seeds=True)
    assert stacked.training.stack_seeds and stacked.training.width == 64 and stacked.source == cfg.source
    other = cfg.replace(training=dataclasses.replace(cfg.training, seeds=3))
    assert other.training.seeds == 3 and cfg.replace(training={"seeds": 3}) == other
    assert LLMBenchConfig.full(layer=4) == LLMBenchConfig().replace(layer=4)
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['widht'\]"):
        LLMBenchConfig.quick(widht=64)
    with pytest.raises(ConfigError, match=r"training: unknown field\(s\) \['layer'\]"):
        cfg.replace(training={"layer": 3})


# -- old JSON --------------------------------------------------------------------------------------------

def _committed(path: str) -> dict:
    return json.loads((ROOT / path).read_text())


def test_the_committed_medium_run_is_read_and_finds_its_store():
    report = _committed("figures/llm-medium/results.json")
    assert "topk_ks" in report["config"] and "source" not in report["config"]    # flat, with old fields
    old = LLMBenchConfig.from_dict(report["config"])
    assert old.plan.sweeps["gba"] == (0.3,) and old.plan.sweeps["batchtopk"] == () and old.budget.tokens == 1_048_576
    assert _store_key(old, report["model"]) == Path(report["store"]).name == "L6-resid-f467b3e22d"
    assert old.settings() == LLMBenchConfig.medium().settings()
    assert LLMBenchConfig.from_json(old.to_json()) == old


@pytest.mark.parametrize("path", ["figures/llm-quick/results.json", "benchmarks/results/llm-quick-20261201.json"])
def test_other_committed_results_are_read(path):
    data = _committed(path)
    cfg = LLMBenchConfig.from_dict(data["config"])
    assert cfg.source.layer == data["config"]["layer"] and cfg.training.width == data["config"]["width"]


def test_an_old_flat_dict_is_read():
    old = {"layer": 3, "width": 64, "batch_size": 32, "tokens": 4096, "methods": ["gba", "topk", "batchtopk"],
           "topk_ks": [8, 16], "batchtopk_k": None, "gba_target_scales": [0.5], "gba_params": {"htf": 0.2},
           "ce_contexts": 4, "context_length": 64, "normalize": {"center": False}}
    cfg = LLMBenchConfig.from_dict(old)
    assert cfg.plan.methods == ("gba", "topk", "batchtopk") and cfg.plan.sweeps == {
        "topk": (8, 16), "batchtopk": (), "gba": (0.5,)}
    assert cfg.plan.params_for("gba") == {"htf": 0.2} and cfg.budget.ce_tokens == 4 * 63
    assert cfg.normalize.center is False and cfg.source.layer == 3
    with pytest.raises(ConfigError, match="unknown field"):
        LLMBenchConfig.from_dict({**old, "colour": "red"})


# -- the unit keys: pinned before the split, so a finished run's store is found -------------------------

def _unit_ids(cfg: LLMBenchConfig, n_kept: int, root: Path) -> dict:
    """Every unit id of ``cfg``'s plan (GBA's L0 taken as 40): trained SAEs, lr trials, CE splices."""
    store_key = _store_key(cfg, PACKAGED)
    steps = cfg.n_steps(n_kept)
    bench = _Bench(cfg, None, types.SimpleNamespace(normalizer=None), None, None, steps,
                   _data_key(cfg, PACKAGED, store_key), root, False)
    out = {"store_key": store_key, "steps": steps, "sae": {}, "lr": {}, "ce": {}}
    for name, label, method, params, arm in cfg.settings() + cfg.matched_settings(40):
        key = f"{name}|{label}|{arm}"
        tcfgs = [bench.train_config(method, params, s, None, steps) for s in range(cfg.training.seeds_for(arm, name))]
        units = bench.sae_units(tcfgs)
        out["sae"][key] = [u.cell_id for u in units]
        out["ce"][key] = [bench.ce_unit(u.cell_id).cell_id for u in units]
        lr, trial_steps = tcfgs[0].lr, max(1, int(round(cfg.training.lr_sweep_fraction * steps)))
        out["lr"][key] = [bench.training_unit(LR_UNIT, bench.train_config(method, params, 0, float(lr * m),
                                                                           trial_steps)).cell_id
                          for m in cfg.training.lr_sweep]
    return out


@pytest.mark.parametrize("preset, n_kept, store_key, gba_seed0, digest", [
    ("quick", 131_191, "L6-resid-3855fe5c1c", "fc4bfc1bddac8c13", "c66df4cdd79577a1"),
    ("medium", 1_048_639, "L6-resid-f467b3e22d", "ffc440fafefc1989", "abac47e32fccb968"),
    ("full", 1_048_639, "L15-resid-4db1898a23", "5d36a3871996426d", "32876ee588d853b7"),
])
def test_the_unit_keys_of_the_presets_did_not_move(preset, n_kept, store_key, gba_seed0, digest, tmp_path):
    """Values computed with the flat config (commit 4158622), before the sections."""
    ids = _unit_ids(getattr(LLMBenchConfig, preset)(), n_kept, tmp_path)
    assert ids["store_key"] == store_key and ids["sae"]["gba||main"][0] == gba_seed0
    assert hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()[:16] == digest


# -- the generated flags ----------------------------------------------------------------------------------

def _args(*argv):
    return build_parser().parse_args(["llm-bench", *argv])


def test_the_flags_set_the_fields_they_are_declared_on():
    cfg = config_from_args(_args("--quick", "--context-length", "64", "--extra-texts", "kjv, shakespeare",
                                 "--lr", "gba=1e-2,topk=1e-3", "--lr-sweep", "", "--no-match-l0", "--sweep",
                                 "topk=4,8", "--sweep", "relu-l1=0.5", "--batchtopk-k", "0", "--gba-gamma", "0.2"))
    assert cfg == LLMBenchConfig.quick(context_length=64, extra_texts=("kjv", "shakespeare"),
                                       lrs={"gba": 1e-2, "topk": 1e-3}, lr_sweep=(), match_l0=False,
                                       sweeps={"topk": (4, 8), "relu-l1": (0.5,), "batchtopk": ()},
                                       gba_params={"gamma_plus": 0.2, "gamma_minus": 0.2})
    assert config_from_args(_args("--lr", "3e-4")).training.lr == 3e-4
    assert config_from_args(_args("--medium")) == LLMBenchConfig.medium()


def test_every_flagged_field_is_in_the_help(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    parser = build_parser()
    text = " ".join(parser._subparsers._group_actions[0].choices["llm-bench"].format_help().split())
    assert "--context-length CONTEXT_LENGTH tokens per context, BOS included (default 128)" in text
    assert "--gba-htf GBA_HTF GBA's htf: highest target frequency; default 0.1" in text
    assert "--no-tied-arms no tied-decoder GBA and tied TopK arms" in text and "--alpha" not in text


@pytest.mark.parametrize("argv, needle", [
    (["--context-length", "2"], "context_length must be an integer in [3, 8192], got 2"),
    (["--seeds", "2", "--arm-seeds", "5"], "arm_seeds must be an integer in [1, 2], got 5"),
    (["--seeds", "two"], "argument --seeds: invalid int value: 'two'"),
    (["--site", "attn"], "argument --site: invalid choice: 'attn'"),
    (["--sweep", "topk=a"], "argument --sweep: expected a comma-separated list of int values"),
    (["--sweep", "magic=1"], "method must be one of"),
])
def test_a_bad_generated_flag_is_one_line_naming_it(argv, needle, tmp_path, capsys):
    assert main(["llm-bench", "--quick", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polysemy: error:") and "\n" not in err and needle in err, err
    assert not (tmp_path / "out").exists()


def test_replace_with_an_old_per_method_field_changes_that_method_only():
    cfg = LLMBenchConfig.quick()
    changed = cfg.replace(topk_ks=(8,))
    assert changed.plan.sweeps["topk"] == (8,)
    assert {m: v for m, v in changed.plan.sweeps.items() if m != "topk"} == \
        {m: v for m, v in cfg.plan.sweeps.items() if m != "topk"}
    assert changed.replace(ce_contexts=4).budget.ce_tokens == 4 * (cfg.source.context_length - 1)
