"""Issue 12: every bad input is one line on stderr naming the option, exit status 2, no traceback, and
nothing left on disk; --save never touches a user's files; --json stdout holds exactly one object."""

import json
import os
import socket
from pathlib import Path

import pytest

from polysemy.cli import main

TRAIN = ["train", "--n", "32", "--d", "16", "--s", "2", "--batch-size", "256", "--steps", "20", "--quiet",
         "--eval-samples", "256"]


def _fails(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polysemy: error:") and "\n" not in err, err
    assert needle in err, err
    return err


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("user data")
    return path


# -- output paths: every command, before any work --------------------------------------------------------

def _commands(out):
    return [
        ["demo", "--steps", "5", "--out", out],
        [*TRAIN, "--save", out],
        ["sweep", "width", "--quick", "--out", out],
        ["figures", "width", "--quick", "--out", out],
        ["bench", "--quick", "--out", out],
        ["peers", "--quick", "--out", out],
        ["llm-bench", "--quick", "--out", out],
    ]


@pytest.mark.parametrize("index", range(7))
def test_an_output_path_that_is_a_file_is_refused(index, a_file, capsys):
    argv = _commands(str(a_file))[index]
    _fails(capsys, argv, "existing file")
    assert a_file.read_text() == "user data"
    assert sorted(p.name for p in a_file.parent.iterdir()) == ["a-file"]


@pytest.mark.parametrize("index", range(7))
def test_an_unwritable_output_path_is_refused(index, capsys):
    _fails(capsys, _commands("/proc/polysemy-test/out")[index], "writable")


def test_an_output_below_a_file_is_refused(a_file, capsys):
    _fails(capsys, ["demo", "--out", str(a_file / "sub")], "existing file")


# -- --save: no data loss ------------------------------------------------------------------------------

def test_save_into_a_folder_of_user_files_keeps_them(tmp_path, capsys):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    _fails(capsys, [*TRAIN, "--save", str(user)], "--save")
    assert [p.name for p in user.iterdir()] == ["notes.txt"] and (user / "notes.txt").read_text() == "precious"


def test_replacing_a_checkpoint_needs_overwrite(tmp_path, capsys):
    ck = tmp_path / "ck"
    assert main([*TRAIN, "--save", str(ck), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    _fails(capsys, [*TRAIN, "--save", str(ck), "--seed", "1"], "--overwrite")
    assert json.loads((ck / "evaluation.json").read_text())["mcc"] == first["mcc"]
    assert main([*TRAIN, "--save", str(ck), "--seed", "1", "--overwrite"]) == 0
    assert json.loads((ck / "evaluation.json").read_text())["train_config"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


# -- memory estimates before allocation -------------------------------------------------------------------

@pytest.mark.parametrize("extra, needle", [
    (["--n", "10000000", "--d", "100000"], "--n"),
    (["--width", "400000"], "--width"),
    (["--batch-size", "100000000"], "--batch-size"),
])
def test_oversized_runs_are_refused_before_allocating(extra, needle, capsys):
    argv = ["train", "--steps", "5", "--quiet", *extra]
    err = _fails(capsys, argv, needle)
    assert "available" in err and "iB" in err


def test_memory_guard_names_the_largest_term():
    from polysemy.errors import ConfigError
    from polysemy.memory import require_memory

    require_memory({"--a": 10, "--b": 20}, available=100)
    with pytest.raises(ConfigError, match=r"--b needs about 2\.0 KiB .* 100 B available"):
        require_memory({"--a": 1024, "--b": 2048}, available=100)


# -- Dask -------------------------------------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address, needle", [
    ("garbage", "--dask must be a scheduler address"),
    ("tcp://127.0.0.1:99999", "--dask must be a scheduler address"),
    (None, "not reachable"),
])
def test_bad_dask_addresses_fail_fast_and_create_no_store(address, needle, tmp_path, capsys):
    import time

    address = address or f"tcp://127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    _fails(capsys, ["sweep", "width", "--quick", "--out", str(tmp_path / "store"), "--dask", address], needle)
    assert time.monotonic() - t0 < 10
    assert not (tmp_path / "store").exists()


# -- numeric guards that name the real cause ----------------------------------------------------------------

def test_huge_spread_is_refused(capsys):
    _fails(capsys, [*TRAIN, "--spread", "1e15", "1e16"], "spread")


def test_large_inputs_for_a_tied_sae_point_at_input_scale(capsys):
    # gba-paper trains on raw inputs (gba itself scales them by default, see methods/gba.py)
    _fails(capsys, [*TRAIN, "--method", "gba-paper", "--spread", "50", "150"], "--input-scale mean-norm")


def test_demo_needs_a_step(capsys, tmp_path):
    _fails(capsys, ["demo", "--steps", "0", "--out", str(tmp_path / "d")], "--steps")
    assert not (tmp_path / "d").exists()


def test_bench_blames_shapes(capsys):
    _fails(capsys, ["bench", "--shapes", "0x0"], "--shapes")


def test_divergence_on_huge_inputs_names_the_data():
    import torch

    from polysemy.sae import TrainConfig, train
    from polysemy.sae.trainer import NonFiniteError

    xs = [torch.rand(8, 4, generator=torch.Generator().manual_seed(i)) * 1e20 for i in range(4)]
    cfg = TrainConfig(method="relu-l1", width=8, steps=3, batch_size=8)
    with pytest.raises(NonFiniteError, match="rescale the data"):
        train(cfg, iter(xs), 4, progress=False)


def test_bad_thread_setting_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("POLYSEMY_THREADS", "zero")
    _fails(capsys, ["check", "--n", "16", "--d", "8", "--s", "2"], "POLYSEMY_THREADS")


# -- --json: exactly one JSON object on stdout -------------------------------------------------------------

def test_json_stdout_holds_one_object_even_when_a_library_prints(capsys, monkeypatch):
    from polysemy.sae import trainer

    original = trainer.train

    def chatty(*args, **kwargs):
        print("Triton not installed, using eager implementation of sparse decoder.")
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "train", chatty)
    assert main([*TRAIN, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["steps"] == 20 and out.count("\n") == 1
    assert "Triton not installed" in err


def test_json_error_is_one_object_too(capsys):
    assert main([*TRAIN, "--lr", "-1", "--json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == 2 and err.startswith("polysemy: error:")


def test_json_error_on_an_unknown_option_is_one_object(capsys):
    assert main([*TRAIN, "--json", "--bogus"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == 2 and "--bogus" in err


def test_sweep_refuses_a_folder_of_other_files_and_figures_checks_its_store(tmp_path, a_file, capsys):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    _fails(capsys, ["sweep", "width", "--quick", "--out", str(user)], "holds other files")
    assert [p.name for p in user.iterdir()] == ["notes.txt"]
    _fails(capsys, ["figures", "width", "--quick", "--out", str(tmp_path / "f"), "--store", str(a_file)],
           "--store")
    assert not (tmp_path / "f").exists()
