"""benchmarks/readme_numbers.py: the README's demo table is checked against a demo report, within the
stated tolerances, and can be rewritten from it."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rn():
    spec = importlib.util.spec_from_file_location("readme_numbers", ROOT / "benchmarks" / "readme_numbers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(frr, mcc, l0, dead, sec):
    return {"frr": {"0.8": frr[0], "0.9": frr[1], "0.99": frr[2]}, "mcc": mcc, "l0": l0, "dead_fraction": dead,
            "seconds": sec}


def _report(dead=0.025, frr99=0.809):
    return {"eval_samples": 8192, "true_l0": 3.0, "width": 512, "steps": 5000, "models": {
        "oracle (true V)": _row((1, 1, 1), 1.0, 3.0, 0.0, None),
        "GBA (defaults)": _row((1, 1, frr99), 0.991, 2.6, dead, 10.6)}}


def _readme(tmp_path, rn, report):
    path = tmp_path / "README.md"
    path.write_text("intro\n\n```\n" + rn.format_table(report) + "\n```\n\nmore text\n")
    return path


def test_the_readme_table_is_the_demo_formatter_output(rn):
    table = rn.format_table(_report())
    assert table.splitlines()[0] == "== Recovery on 8192 fresh samples (true L0 = 3, width 512, 5000 steps) =="
    assert "GBA (defaults)" in table and "80.9%" in table and "0.025" in table


def test_differences_beyond_tolerance_are_reported_and_small_ones_are_not(rn):
    base = rn.format_table(_report())
    assert rn.compare(base, rn.format_table(_report(frr99=0.811))) == []          # 0.2 points: within 0.5
    problems = rn.compare(rn.format_table(_report(dead=0.031)), base)
    assert problems == ["GBA (defaults) dead: README 0.031, fresh 0.025 (tolerance 0.005)"]


def test_check_exits_1_on_a_stale_readme_and_write_fixes_it(rn, tmp_path, capsys):
    readme = _readme(tmp_path, rn, _report(dead=0.031))
    fresh = tmp_path / "report.json"
    fresh.write_text(json.dumps(_report()))
    assert rn.main(["--readme", str(readme), "--report", str(fresh)]) == 1
    assert "dead: README 0.031" in capsys.readouterr().out
    assert rn.main(["--readme", str(readme), "--report", str(fresh), "--write"]) == 0
    assert rn.main(["--readme", str(readme), "--report", str(fresh)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("more text\n") and "0.031" not in text
