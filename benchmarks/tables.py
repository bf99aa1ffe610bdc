"""Render the latest results as README-ready markdown tables.

    .venv/bin/python benchmarks/tables.py [--bench results/bench-latest.json] [--peers results/peers-latest.json]
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _f(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def bench_tables(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['processor']}, {m['cpu_count']} cores, torch {m['torch']} with {m['torch_threads']} "
             f"thread(s), device {result['config']['device']}, decode {result.get('decode_mode', 'auto')}; "
             f"load average at the end {result.get('load_average')}; {result['date']}; medians of "
             f"{result['config']['repeats']} alternating trials, batch {result['config']['batch']}.", "",
             "| d | width | method | samples/s | limit samples/s | of the limit | sparsify TopK samples/s "
             "| vs sparsify | L0 | path | dead latents |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in result["shapes"]:
        lines.append(f"| {r['d']} | {r['width']} | {r['method']} | {r['samples_per_second']:.0f} | "
                     f"{r['limit_samples_per_second']:.0f} | {r['limit_fraction']:.2f} | "
                     f"{_f(r['sparsify_samples_per_second'], 0) if r['sparsify_samples_per_second'] is None else format(r['sparsify_samples_per_second'], '.0f')} | "
                     f"{_f(r['vs_sparsify'], 2)} | {r['l0']:.1f} | {r['path']} | {r['dead_latents']} |")
    if result.get("stacked"):
        lines += ["", "| stacked models | d | width | batch | stacked ms/step | sequential ms/step | speed-up |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for s in result["stacked"]:
            lines.append(f"| {s['models']} × {s['method']} | {s['d']} | {s['width']} | {s['batch']} | "
                         f"{s['stacked_step_seconds'] * 1e3:.1f} | {s['sequential_step_seconds'] * 1e3:.1f} | "
                         f"{s['speedup']:.2f} |")
    lines += ["", "| data generation | n | s | ms per batch | fraction of the gba step |", "|---|---:|---:|---:|---:|"]
    for g in result["datagen"]:
        lines.append(f"| d={g['d']}, batch {g['batch']} | {g['n']} | {g['s']} | {g['sample_seconds'] * 1e3:.2f} | "
                     f"{g['fraction']:.3f} |")
    return "\n".join(lines)


def peers_tables(result: dict) -> str:
    cfg = result["config"]
    lines = [f"Budget {cfg['budget']:,} samples per system, width {cfg['width_ratio']}·n, seed {cfg['seed']}, "
             f"data seed {cfg['data_seed']}; evaluation on {result['eval_samples']} held-out samples; "
             f"{result['date']}; torch threads {result['machine']['torch_threads']}.", ""]
    for world in dict.fromkeys(r["world"] for r in result["rows"]):
        lines += [f"**{world}**", "",
                  "| system | FRR(0.9) | FRR(0.99) | MCC | L0 | dead | seconds | samples | samples to FRR(0.9) ≥ 0.95 |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in (r for r in result["rows"] if r["world"] == world):
            name = r["system"]
            if r.get("k_label"):
                name += f" ({r['k_label']})"
            if r["family"] == "sklearn-mbdl":
                name += f" (best α = {r['params']['alpha']:g})"
            lines.append(f"| {name} | {_f(r['frr_0.9'])} | {_f(r['frr_0.99'])} | {_f(r['mcc'])} | {_f(r['l0'], 1)} | "
                         f"{_f(r['dead_fraction'], 2)} | {_f(r['seconds'], 1)} | {r['samples']:,} | "
                         f"{r['samples_to_recovery'] if r['samples_to_recovery'] is not None else '-'} |")
        lines.append("")
    for s in result["skipped"]:
        lines.append(f"Skipped {s['system']}: {s['reason']}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=os.path.join(HERE, "results", "bench-latest.json"))
    parser.add_argument("--peers", default=os.path.join(HERE, "results", "peers-latest.json"))
    args = parser.parse_args()
    for path, render in ((args.bench, bench_tables), (args.peers, peers_tables)):
        if os.path.exists(path):
            with open(path) as fh:
                print(render(json.load(fh)))
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
