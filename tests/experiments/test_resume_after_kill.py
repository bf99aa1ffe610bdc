"""Kill a real sweep process with SIGKILL mid-run, rerun it, and get exactly an uninterrupted run's store."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from polysemy.experiments.store import ResultStore

# A real (tiny) sweep: 6 cells of actual GBA training, one cell per group so cells land one at a time.
SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from polysemy.experiments.runner import run_sweep
from polysemy.experiments.spec import Axis, SweepSpec
from polysemy.sae import TrainConfig
from polysemy.simulate import WorldConfig
spec = SweepSpec(name="kill", world=WorldConfig(n=16, d=8, s=1),
                 train=TrainConfig(method="gba", width=32, steps=150, batch_size=64, log_every=50,
                                   params={"ltf": 0.01}),
                 axes=(Axis("world.d", values=(6, 8, 10)),), seeds=(0, 1), eval_samples=256)
run_sweep(spec, sys.argv[1], max_group=1, progress=False)
"""


def _run(store: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(store)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _metrics(store: Path) -> dict:
    s = ResultStore(store)
    return {cid: json.dumps(s.read_cell(cid)["metrics"], sort_keys=True) for cid in s.done_ids()}


def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = _run(killed)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not ResultStore(killed).done_ids():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = ResultStore(killed).done_ids()
    assert 1 <= len(done_at_kill) < 6, "the kill must land mid-run (some cells done, not all)"
    for p in ResultStore(killed).cells_dir.iterdir():  # no half-written cell survives as a .json
        if p.name.endswith(".json"):
            json.loads(p.read_text())

    stamps = {cid: ResultStore(killed).cell_path(cid).stat().st_mtime_ns for cid in done_at_kill}
    assert _run(killed).wait() == 0   # resume
    # finished cells are neither recomputed nor rewritten
    assert {cid: ResultStore(killed).cell_path(cid).stat().st_mtime_ns for cid in done_at_kill} == stamps
    assert _run(clean).wait() == 0    # reference: never interrupted
    resumed, reference = _metrics(killed), _metrics(clean)
    assert len(reference) == 6
    assert set(resumed) == set(reference)
    assert resumed == reference       # same cells, same metrics: training is deterministic per seed
    assert not [p for p in ResultStore(killed).cells_dir.iterdir() if ".tmp-" in p.name]
