"""Run ``polysemy peers`` and keep its result: benchmarks/results/peers-<date>.json, peers-latest.{json,csv,png}.

    .venv/bin/python benchmarks/peers.py [--quick] [--budget N] [--threads 1]

Every system is trained on the same stream with the same sample budget; see docs/benchmarks.md.
"""

import argparse
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from polysemy.experiments.peers import PeersConfig, format_table, run_peers, save_outputs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small budget (a few minutes)")
    parser.add_argument("--budget", type=int, default=None, help="training samples per system")
    parser.add_argument("--sklearn-max-seconds", type=float, default=None, help="time cap per alpha")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    changes = {}
    if args.budget:
        changes["budget"] = args.budget
    if args.sklearn_max_seconds:
        changes["sklearn_max_seconds"] = args.sklearn_max_seconds
    cfg = PeersConfig.quick(**changes) if args.quick else PeersConfig(**changes)
    result = run_peers(cfg)
    out = os.path.join(HERE, "results")
    tag = "peers-quick" if args.quick else "peers"
    work = os.path.join(out, f".{tag}-work")
    paths = save_outputs(result, work)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    shutil.copyfile(paths["json"], os.path.join(out, f"{tag}-{stamp}.json"))
    for kind, path in paths.items():
        ext = os.path.splitext(path)[1]
        os.replace(path, os.path.join(out, f"{tag}-latest{ext}"))
    os.rmdir(work)
    print(format_table(result["rows"]))
    for s in result["skipped"]:
        print(f"skipped {s['system']}: {s['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
