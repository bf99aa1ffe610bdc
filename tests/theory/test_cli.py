"""``polysemy check``: the report, the --json object, and one-line errors with exit status 2."""

import json
import os
import subprocess
import sys

import pytest

from polysemy.cli import main


def _run(capsys, *argv):
    status = main(["check", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_json_has_the_promised_keys(capsys):
    status, out, err = _run(capsys, "--n", "64", "--d", "48", "--s", "2", "--samples", "2000", "--json")
    assert status == 0 and err == ""
    data = json.loads(out)
    for key in ("f", "rho2", "coherence", "band", "regime", "conditions", "theorem_band", "width_requirement"):
        assert key in data, key
    assert data["f"] == pytest.approx(2 / 64)
    assert data["rho2"] == pytest.approx(1 / 63)
    lo, hi = data["band"]
    assert lo == pytest.approx(2 / 64) and lo <= hi
    assert data["regime"] == "light"
    assert set(data["conditions"]) == {"H1", "H2", "H3", "V1"}
    for entry in data["conditions"].values():
        assert {"value", "threshold", "holds"} <= set(entry)
        assert isinstance(entry["holds"], bool)
        assert entry["source"] == "measured" and entry["predicted"]["source"] == "predicted"
    assert data["config"]["n"] == 64 and data["samples"] == 2000


def test_json_without_samples_is_predicted_only_and_heavy_regime(capsys):
    status, out, _ = _run(capsys, "--preset", "resonance-heavy", "--samples", "0", "--json")
    data = json.loads(out)
    assert status == 0 and data["regime"] == "heavy"
    assert all(e["measured"] is None and e["source"] == "predicted" for e in data["conditions"].values())


def test_readable_report(capsys):
    status, out, _ = _run(capsys, "--preset", "theorem-uniform", "--samples", "1000")
    assert status == 0
    for text in ("Regime", "Resonance band", "Theorem 6.1 band", "Width needed", "H1", "H2", "H3", "V1",
                 "measured (1000 samples)"):
        assert text in out, text


@pytest.mark.parametrize("argv, names", [
    (["--n", "10", "--s", "11"], "s"),                                  # s > n
    (["--d", "0"], "d"),                                                # d < 1
    (["--frequency", "1.5"], "frequency"),                              # frequency outside (0, 1]
    (["--frequency", "0"], "frequency"),
    (["--n", "256", "--d", "16", "--coherence", "0.01"], "coherence"),  # unreachable coherence
    (["--samples", "-5"], "samples"),
    (["--preset", "no-such-world"], "preset"),
    (["--n", "ten"], "--n"),                                            # argparse error
])
def test_impossible_input_is_one_line_and_exit_2(capsys, argv, names):
    status, out, err = _run(capsys, *argv)
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("polysemy: error:") and names in lines[0]


@pytest.mark.slow  # two interpreter start-ups (~10 s each on 2 busy cores); main() is tested in-process above
def test_console_script_exit_status():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    bad = subprocess.run([sys.executable, "-m", "polysemy.cli", "check", "--n", "5", "--s", "9"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    good = subprocess.run([sys.executable, "-m", "polysemy.cli", "check", "--n", "32", "--d", "8",
                           "--samples", "500", "--json"], capture_output=True, text=True, env=env)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["regime"] == "light"
