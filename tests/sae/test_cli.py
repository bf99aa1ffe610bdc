import json

import pytest

from polysemy.cli import main

WORLD = ["--n", "32", "--d", "16", "--s", "2", "--batch-size", "64", "--steps", "30", "--quiet",
         "--eval-samples", "512"]


def test_json_has_the_promised_keys(capsys, tmp_path):
    assert main(["train", *WORLD, "--method", "topk", "--k", "2", "--json", "--save", str(tmp_path / "ck")]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("frr", "mcc", "mmcs", "l0", "alive_fraction", "dead_fraction", "explained_variance",
                "samples", "seconds"):
        assert key in out
    assert set(out["frr"]) == {"0.8", "0.9", "0.99"}
    assert out["samples"] == 30 * 64
    assert (tmp_path / "ck" / "model.safetensors").exists() and (tmp_path / "ck" / "evaluation.json").exists()


def test_report_is_readable(capsys):
    assert main(["train", *WORLD]) == 0
    out = capsys.readouterr().out
    assert "FRR(0.9)" in out and "L0" in out and "explained variance" in out


def test_samples_sets_the_steps(capsys):
    args = [a for a in WORLD if a not in ("--steps", "30")]
    assert main(["train", *args, "--samples", "1000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 16   # ceil(1000 / 64)


@pytest.mark.parametrize("bad", [
    ["--method", "topk", "--htf", "0.3"],          # knob of another method
    ["--method", "gba", "--k", "3"],
    ["--method", "nope"],
    ["--method", "topk", "--k", "0"],
    ["--steps", "10", "--samples", "100"],
    ["--lr", "-1"],
    ["--width", "0"],
    ["--preset", "nope"],
    ["--bogus-flag"],
])
def test_bad_options_one_line_exit_2(bad, capsys):
    args = [a for a in WORLD if a not in ("--steps", "30")] if "--steps" in bad else WORLD
    assert main(["train", *args, *bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polysemy: error:") and "\n" not in err


def test_tied_options_reach_the_method_params():
    """--input-scale and --pre-bias set the tied SAEs' options; a bad value is a one-line error."""
    import argparse

    from polysemy.errors import ConfigError
    from polysemy.sae.cli import method_params_from_args
    from polysemy.sae.config import TrainConfig

    args = argparse.Namespace(input_scale="mean-norm", pre_bias="fixed")
    params = method_params_from_args("gba", args)
    assert params == {"input_scale": "mean-norm", "pre_bias": "fixed"}
    assert TrainConfig(method="gba", params=params).params["pre_bias"] == "fixed"
    with pytest.raises(ConfigError, match="pre_bias must be one of"):
        TrainConfig(method="gba", params={"pre_bias": "frozen"})
    with pytest.raises(ConfigError, match="does not apply to method 'topk'"):
        method_params_from_args("topk", argparse.Namespace(input_scale=2.0, pre_bias=None))
