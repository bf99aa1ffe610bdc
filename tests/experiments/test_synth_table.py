"""benchmarks/synth_table.py at a tiny size: every method gets a row, matched knobs, resumable."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from polysemy.sae import get_method, list_methods
from polysemy.sae.models import topk_acts

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "synth_table.py"
TINY = ["--preset", "theorem-uniform", "--n", "32", "--d", "8", "--width", "32", "--steps", "6",
        "--sweep-steps", "3", "--lrs", "1e-3,3e-3", "--seeds", "2", "--eval-samples", "256", "--batch-size", "64"]


def _script():
    spec = importlib.util.spec_from_file_location("synth_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_table_has_every_method_and_resumes(tmp_path, capsys):
    table = _script()
    out = tmp_path / "t.jsonl"
    assert table.main(TINY + ["--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    methods = list_methods()
    # the sweep covers --lrs and the method's own default lr (1e-2 for gba and ba), then 2 seeds each
    sweeps = sum(len({1e-3, 3e-3, get_method(m).default_lr}) for m in methods)
    assert len(rows) == sweeps + 2 * len(methods)
    assert {r["lr"] for r in rows if r["phase"] == "sweep" and r["method"] == "gba"} == {1e-3, 3e-3, 1e-2}
    by = {(r["phase"], r["method"], r["seed"]): r for r in rows}
    assert by[("main", "topk", 0)]["params"] == {"k": 3} and by[("main", "topk", 0)]["l0"] <= 3
    assert by[("main", "ba-theory", 0)]["params"]["target"] == pytest.approx(3 / 32)
    summary = json.loads((tmp_path / "t.json").read_text())
    assert {e["method"] for e in summary["table"]} == set(methods)
    for e in summary["table"]:
        best = max((r for r in rows if r["phase"] == "sweep" and r["method"] == e["method"]), key=lambda r: r["mcc"])
        assert e["lr"] == best["lr"]
    md = (tmp_path / "t.md").read_text()
    assert "| MCC | F1 | precision | recall | uniqueness | EV | L0 | dead |" in md and "oracle" in md
    capsys.readouterr()
    assert table.main(TINY + ["--out", str(out)]) == 0          # everything done: nothing retrained
    assert len(out.read_text().splitlines()) == len(rows)
    assert "seed=" not in capsys.readouterr().out


def test_bad_options_exit_2(tmp_path):
    table = _script()
    assert table.main(TINY + ["--methods", "nope", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert table.main(TINY + ["--width", "0", "--out", str(tmp_path / "x.jsonl")]) == 2


def test_topk_fires_exactly_k_when_the_top_k_are_positive_and_never_more():
    # Gao et al.'s TopK (and SAELens's) applies a ReLU after the top-k, so non-positive pre-activations
    # among the top k are zeroed: L0 <= k, with equality exactly when the k-th largest is positive.
    pre = torch.tensor([[[3.0, 2.0, 1.0, -1.0], [0.5, -0.2, -0.3, -4.0]]])
    acts = topk_acts(pre, torch.tensor([3]))
    assert (acts != 0).sum(-1).tolist() == [[3, 1]]
