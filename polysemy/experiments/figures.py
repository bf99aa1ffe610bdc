"""The paper's figures: each runs (or reuses) its sweeps, draws one figure, and saves PNG, PDF and CSV.

``make_figure(name, out, quick)`` writes ``out/NAME.png``, ``out/NAME.pdf`` and ``out/NAME.csv`` (the
numbers the figure shows: one row per plotted point, means and spreads over seeds). Every file is
written atomically. The drawing code is in :mod:`polysemy.experiments.plots`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..io import save_figure_atomic, write_text_atomic
from ..errors import ConfigError
from .runner import run_sweep
from .store import load_results
from .sweeps import get_sweep


@dataclass(frozen=True)
class FigureDef:
    name: str
    sweeps: tuple[str, ...]
    draw: str       # name of the function in plots.py: draw(frames, quick) -> plots.Drawn
    what: str       # one sentence: what the figure shows


FIGURES: dict[str, FigureDef] = {f.name: f for f in (
    FigureDef("resonance", ("resonance-light", "resonance-heavy"), "draw_resonance",
              "FRR(0.9) of BA over (d, p/f) for light and heavy superposition, with the resonance band "
              "f <~ p <~ min(sqrt f, f d) and the line d = sqrt n."),
    FigureDef("cooccurrence", ("cooccurrence",), "draw_cooccurrence",
              "FRR(0.9) against the planted co-occurrence rho2, with 1/sqrt(n) marked."),
    FigureDef("width", ("width", "imbalance", "occurrence"), "draw_width",
              "FRR against SAE width M/n, coefficient imbalance, and relative occurrence (Zipf range)."),
    FigureDef("activations", ("activations",), "draw_activations",
              "GBA with JumpReLU, ReLU and smooth ReLU, against sparsity s."),
    FigureDef("toy", ("toy",), "draw_toy",
              "The paper's toy table (imbalanced world): TopK across K, GBA full and wrong range."),
    FigureDef("dynamics", (), "draw_dynamics",
              "Training dynamics of GBA: each true feature's best cosine over steps, and neuron "
              "frequencies against their group targets over time."),
    FigureDef("phase", ("phase",), "draw_phase",
              "Compressed-sensing phase diagrams over (delta = d/n, rho = s/d): 50% contours of FRR(0.9) "
              "for GBA, TopK (true and wrong k), ReLU+L1, with the theorem's region, sqrt(d)/(mu log d) "
              "and the Donoho-Tanner curve."),
    FigureDef("sensitivity", ("sensitivity",), "draw_sensitivity",
              "Recovery against each method's own knob: GBA's HTF and LTF, TopK's k, L1's lambda, "
              "JumpReLU's threshold."),
)}


def make_figure(name: str, out: Path | str, quick: bool = False, *, store_root: Path | str = "runs/sweeps",
                jobs: int = 1, dask_address: str | None = None, progress: bool = True) -> list[Path]:
    """Run or reuse the sweeps of figure ``name`` and write its PNG, PDF and CSV into ``out``."""
    if name not in FIGURES:
        raise ConfigError(f"figure name must be one of {', '.join(FIGURES)}; got {name!r}")
    fig_def = FIGURES[name]
    frames = {}
    for sweep_name in fig_def.sweeps:
        spec = get_sweep(sweep_name, quick=quick)
        store = Path(store_root) / (f"{sweep_name}-quick" if quick else sweep_name)
        run_sweep(spec, store, jobs=jobs, dask_address=dask_address, progress=progress)
        frames[sweep_name] = load_results(store, [c.cell_id for c in spec.expand()])
    from . import plots  # matplotlib is imported only when a figure is drawn

    drawn = getattr(plots, fig_def.draw)(frames, quick)
    if drawn.text:
        print(drawn.text)
    return save_drawn(drawn, Path(out), name)


def save_drawn(drawn, out: Path, name: str) -> list[Path]:
    """Write the figure as PNG and PDF and its numbers as CSV, each atomically."""
    import matplotlib.pyplot as plt

    paths = []
    for ext in ("png", "pdf"):
        paths.append(save_figure_atomic(drawn.figure, out / f"{name}.{ext}", close=False, format=ext, dpi=150,
                                        bbox_inches="tight"))
    plt.close(drawn.figure)
    csv_path = out / f"{name}.csv"
    write_text_atomic(csv_path, drawn.table.to_csv(index=False))
    paths.append(csv_path)
    if drawn.text:
        write_text_atomic(out / f"{name}.txt", drawn.text + "\n")
        paths.append(out / f"{name}.txt")
    return paths


