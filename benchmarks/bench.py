"""Run ``polysemy bench`` and keep its result: benchmarks/results/bench-<date>.json and bench-latest.{json,csv}.

    .venv/bin/python benchmarks/bench.py [--threads 1] [--quick]

The JSON holds the date, the machine (platform, cores, torch version and threads) and the load
average at the end, since this machine is shared: quote ratios, not absolute numbers.
"""

import argparse
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from polysemy.experiments.throughput import BenchConfig, format_bench, run_bench, save_bench  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, short trials")
    args = parser.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = BenchConfig.quick() if args.quick else BenchConfig()
    result = run_bench(cfg)
    out = os.path.join(HERE, "results")
    paths = save_bench(result, out)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    shutil.copyfile(paths["json"], os.path.join(out, f"bench-{stamp}.json"))
    os.replace(paths["json"], os.path.join(out, "bench-latest.json"))
    os.replace(paths["csv"], os.path.join(out, "bench-latest.csv"))
    print(format_bench(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
