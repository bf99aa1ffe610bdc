"""Check (or rewrite) the README's demo table against a fresh ``polysemy demo`` run.

    .venv/bin/python benchmarks/readme_numbers.py              # rerun the demo, compare, exit 1 on a mismatch
    .venv/bin/python benchmarks/readme_numbers.py --write      # rerun and write the fresh table into README.md
    .venv/bin/python benchmarks/readme_numbers.py --report R   # use a saved `polysemy demo --json` report

The README quotes the demo's recovery table verbatim (the fenced block that starts with
``== Recovery on``). This script runs ``polysemy demo --json`` with the README's settings (the demo's
defaults, one torch thread, so the numbers are reproducible), rebuilds the table with the demo's own
formatter (``polysemy.demo.format_table``) and compares it row by row with the README.

Tolerances (numbers the README may differ by without being stale): FRR columns 0.5 percentage points
(about one feature of 256), MCC 0.005, L0 0.05, dead fraction 0.005. The seconds column is wall-clock on
whatever machine ran it and is never compared; the header line (samples, true L0, width, steps) must
match exactly. A row missing on either side is a mismatch. On a mismatch the script prints each
difference (README value, fresh value, tolerance) and exits 1; with ``--write`` it replaces the block
instead and exits 0. It also prints the demo's wall time, to check the duration the README quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from polysemy.demo import format_table  # noqa: E402  (the repository's own formatter)

TOLERANCES = {"FRR.8": 0.5, "FRR.9": 0.5, "FRR.99": 0.5, "MCC": 0.005, "L0": 0.05, "dead": 0.005}
COLUMNS = ("FRR.8", "FRR.9", "FRR.99", "MCC", "L0", "dead", "seconds")
BLOCK = re.compile(r"```\n(== Recovery on .*?)\n```", re.S)


def run_demo(python: str, out_dir: Path) -> tuple[dict, float]:
    """Run ``polysemy demo --json`` in a subprocess; returns (report, wall seconds)."""
    env = dict(os.environ, POLYSEMY_THREADS="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [python, "-m", "polysemy.cli", "demo", "--json", "--no-progress", "--out", str(out_dir)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"readme_numbers: `{' '.join(cmd)}` failed with status {proc.returncode}")
    return json.loads(proc.stdout), seconds


def parse_table(block: str) -> tuple[str, dict[str, dict[str, str]]]:
    """(header line, {model name: {column: text}}) of a recovery table."""
    lines = block.strip().splitlines()
    rows = {}
    for line in lines[3:]:
        cells = line[:22].strip(), line[22:].split()
        if len(cells[1]) != len(COLUMNS):
            raise ValueError(f"unexpected table row: {line!r}")
        rows[cells[0]] = dict(zip(COLUMNS, cells[1]))
    return lines[0], rows


def _number(text: str) -> float | None:
    return None if text == "-" else float(text.rstrip("%"))


def compare(readme_block: str, fresh_block: str) -> list[str]:
    """Differences beyond the tolerances, one line each (empty: the README is up to date)."""
    old_header, old = parse_table(readme_block)
    new_header, new = parse_table(fresh_block)
    problems = []
    if old_header != new_header:
        problems.append(f"header: README {old_header!r}, fresh {new_header!r}")
    for name in sorted(set(old) | set(new)):
        if name not in old or name not in new:
            problems.append(f"row {name!r}: {'missing in the README' if name not in old else 'not in the fresh run'}")
            continue
        for col, tol in TOLERANCES.items():
            a, b = _number(old[name][col]), _number(new[name][col])
            if (a is None) != (b is None) or (a is not None and abs(a - b) > tol + 1e-9):
                problems.append(f"{name} {col}: README {old[name][col]}, fresh {new[name][col]} (tolerance {tol})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=str(ROOT / "README.md"), help="the README to check (default README.md)")
    parser.add_argument("--report", default=None, help="a saved `polysemy demo --json` report (skips the run)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the demo")
    parser.add_argument("--write", action="store_true", help="write the fresh table into the README")
    args = parser.parse_args(argv)

    readme = Path(args.readme)
    text = readme.read_text(encoding="utf-8")
    match = BLOCK.search(text)
    if match is None:
        print(f"readme_numbers: no ``` block starting with '== Recovery on' in {readme}", file=sys.stderr)
        return 2
    if args.report:
        report, seconds = json.loads(Path(args.report).read_text(encoding="utf-8")), None
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report, seconds = run_demo(args.python, Path(tmp))
    fresh = format_table(report)
    if seconds is not None:
        print(f"demo wall time: {seconds:.1f} s (the README's duration claim should cover this)")
    problems = compare(match.group(1), fresh)
    if args.write:
        from polysemy.io import write_text_atomic

        write_text_atomic(readme, text[:match.start(1)] + fresh + text[match.end(1):])
        print(f"wrote the fresh demo table into {readme} ({len(problems)} difference(s) before)")
        return 0
    if problems:
        print(f"README demo table is stale ({len(problems)} difference(s)):")
        print("\n".join(f"  {p}" for p in problems))
        print("fresh table:\n" + fresh)
        return 1
    print("README demo table matches the fresh run within the tolerances; fresh table:\n" + fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
