"""`polysemy train --checkpoint-every N --save DIR`, killed with SIGKILL, then `--resume DIR`, ends with
exactly the metrics of an uninterrupted run (issue 12)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polysemy.cli import main

ROOT = Path(__file__).resolve().parents[2]
WORLD = ["--n", "32", "--d", "16", "--s", "2", "--batch-size", "64", "--quiet", "--eval-samples", "512",
         "--log-every", "50"]


def _checkpoint_step(folder: Path) -> int:
    try:
        return int(json.loads((folder / "config.json").read_text())["steps"])
    except (OSError, ValueError, KeyError):
        return 0


def _compare(a: dict, b: dict) -> None:
    for key in ("seconds", "saved", "resumed_from_step"):
        a.pop(key), b.pop(key)
    assert a == b


def test_killed_after_second_checkpoint_then_resumed_equals_uninterrupted(tmp_path, capsys):
    steps = 2500
    assert main(["train", *WORLD, "--steps", str(steps), "--json"]) == 0
    full = json.loads(capsys.readouterr().out)

    ck = tmp_path / "ck"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "polysemy.cli", "train", *WORLD, "--steps", str(steps),
                             "--checkpoint-every", "50", "--save", str(ck), "--json"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _checkpoint_step(ck) < 100 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # (the kill may land between a save's two renames: --resume then finishes that save first)
    assert not (ck / "evaluation.json").exists()      # a periodic checkpoint, not the final save

    assert main(["train", "--resume", str(ck), "--quiet", "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    at = resumed["resumed_from_step"]
    assert 100 <= at < steps, f"the run was not killed mid-way (checkpoint at step {at})"
    _compare(full, resumed)
    assert json.loads((ck / "evaluation.json").read_text())["steps"] == steps


def test_resume_of_a_finished_run_gives_the_same_report(tmp_path, capsys):
    args = ["train", *WORLD, "--steps", "100", "--method", "topk", "--k", "2", "--json"]
    assert main([*args, "--checkpoint-every", "50", "--save", str(tmp_path / "ck")]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["train", "--resume", str(tmp_path / "ck"), "--json"]) == 0
    _compare(first, json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("extra, needle", [
    (["--n", "64"], "--n"),
    (["--steps", "99"], "--steps"),
    (["--k", "3"], "--k"),
])
def test_resume_refuses_settings_that_would_be_ignored(tmp_path, capsys, extra, needle):
    assert main(["train", *WORLD, "--steps", "50", "--method", "topk", "--k", "2",
                 "--save", str(tmp_path / "ck"), "--checkpoint-every", "50"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "ck"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polysemy: error: " + needle) and "\n" not in err


def test_interrupt_message_tells_the_truth():
    from polysemy.cli import _interrupt_message, build_parser

    parser = build_parser()
    plain = parser.parse_args(["train"])
    assert "nothing was saved" in _interrupt_message(plain)
    ck = parser.parse_args(["train", "--save", "d", "--checkpoint-every", "100"])
    assert "--resume d" in _interrupt_message(ck)
    sweep = parser.parse_args(["sweep", "width"])
    assert "resume" in _interrupt_message(sweep)
