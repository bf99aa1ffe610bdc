"""Exact MCC at SynthSAEBench scale: time and peak memory of polysemy's Hungarian MCC.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mcc_scale.py                 # 16,384 x 4,096, d = 768
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mcc_scale.py --n 4096 --width 1024 --d 256

Two decoders are scored against the same true features (unit Gaussian rows): a random one (every
|cos| is noise, the hardest case for the solver) and a half-trained one (half the latents are noisy
copies of true features). Each runs in a fresh child process that reports its own peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the interpreter, numpy, the inputs and the solver). Prints one JSON line per case and writes them to ``--out`` (benchmarks/results/mcc_scale.json).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_case(n: int, width: int, d: int, case: str, seed: int) -> dict:
    import numpy as np

    from polysemy.theory import metrics

    rng = np.random.default_rng(seed)
    truth = rng.standard_normal((n, d), dtype=np.float32)
    learned = rng.standard_normal((width, d), dtype=np.float32)
    if case == "half-trained":
        half = width // 2
        picks = rng.choice(n, size=half, replace=False)
        truth_u = truth[picks] / np.linalg.norm(truth[picks], axis=1, keepdims=True)
        noise = learned[:half] / np.linalg.norm(learned[:half], axis=1, keepdims=True)
        learned[:half] = truth_u + 0.3 * noise
    start = time.perf_counter()
    value = metrics.mcc(learned, truth)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # this process's peak, KiB on Linux
    return {"case": case, "n": n, "width": width, "d": d, "mcc": value, "seconds": round(seconds, 2),
            "method": "hungarian", "peak_rss_gib": round(peak_kib / 2**20, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=16_384, help="true features (16384)")
    p.add_argument("--width", type=int, default=4096, help="learned latents (4096)")
    p.add_argument("--d", type=int, default=768, help="dimension (768, as SynthSAEBench)")
    p.add_argument("--cases", default="random,half-trained")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mcc_scale.json")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(one_case(args.n, args.width, args.d, args.child, args.seed)))
        return 0
    rows = []
    for case in args.cases.split(","):
        proc = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--width", str(args.width),
                               "--d", str(args.d), "--seed", str(args.seed), "--child", case],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["threads"] = os.environ.get("OMP_NUM_THREADS", "unset")
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
