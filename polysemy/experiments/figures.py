"""The paper's figures: a registry of figure name -> (the sweeps it reads, its draw function).

A figure is a pure function ``draw(frames, quick) -> plots.Drawn`` from DataFrames to a matplotlib
figure: ``frames`` maps each sweep the figure reads to its results (one row per cell, flattened
columns, named through the accessors of :mod:`polysemy.experiments.store`: ``param_col``,
``metric_col``, ``world_col``, ``train_col``, ``column``); ``Drawn`` holds the figure, the table of the numbers it
shows (saved as CSV) and optional text to print. A figure is registered with the sweeps it reads::

    register_figure(FigureDef("width", ("width", "imbalance"), draw_width, "FRR against width M/n ..."))

``draw`` is the function itself, or its name in :mod:`polysemy.experiments.plots`, or ``"module:function"``
(a name is imported only when the figure is drawn, so ``polysemy --help`` does not load matplotlib).
``polysemy figures`` lists :data:`FIGURES`. ``make_figure(name, out, quick)`` runs (or reuses) each
sweep through the experiment runner, draws, and writes ``out/NAME.png``, ``out/NAME.pdf`` and
``out/NAME.csv`` (the numbers the figure shows: one row per plotted point, means and spreads over
seeds), each atomically. The dynamics figure reads the ``dynamics`` sweep, whose cells store snapshots
taken during training (experiments/dynamics.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, require
from ..io import save_figure_atomic, write_text_atomic
from .runner import run_experiment
from .sweeps import SWEEPS, get_sweep, store_dir_for


@dataclass(frozen=True)
class FigureDef:
    """A registered figure: its name, the sweeps it reads, how it is drawn and what it shows."""

    name: str
    sweeps: tuple[str, ...]
    draw: Callable | str  # draw(frames, quick) -> plots.Drawn; or its name in plots.py, or "module:function"
    what: str             # one sentence: what the figure shows

    def draw_function(self) -> Callable:
        """The draw function (a name is imported now)."""
        if callable(self.draw):
            return self.draw
        module, _, name = self.draw.rpartition(":")
        return getattr(importlib.import_module(module or f"{__package__}.plots"), name)


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
    FigureDef("dynamics", ("dynamics",), "draw_dynamics",
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


def register_figure(fig_def: FigureDef) -> FigureDef:
    """Add (or replace) a figure in :data:`FIGURES`; ``polysemy figures`` draws it from then on.
    ConfigError if its name is not a plain word or it reads a sweep that ``sweeps.SWEEPS`` lacks."""
    require(fig_def.name.replace("-", "").replace("_", "").isalnum(),
            f"figure name must be letters, digits, '-' or '_', got {fig_def.name!r}")
    unknown = [s for s in fig_def.sweeps if s not in SWEEPS]
    require(not unknown, f"figure {fig_def.name}: sweeps must be among {', '.join(SWEEPS)}; got {unknown}")
    FIGURES[fig_def.name] = fig_def
    return fig_def


def get_figure(name: str) -> FigureDef:
    """The registered figure ``name``; ConfigError naming the known ones otherwise."""
    if name not in FIGURES:
        raise ConfigError(f"figure name must be one of {', '.join(FIGURES)}; got {name!r}")
    return FIGURES[name]


def figure_frames(fig_def: FigureDef, quick: bool = False, *, store_root: Path | str = "runs/sweeps",
                  **run_options) -> dict:
    """Run or reuse each sweep ``fig_def`` reads (its store: ``store_root/NAME[-quick]``); return
    {sweep name: its DataFrame}, what ``draw`` is given. ``run_options``: those of ``runner.run_sweep``."""
    return {s: run_experiment(get_sweep(s, quick=quick), store_dir_for(s, quick, store_root), **run_options)
            for s in fig_def.sweeps}


def make_figure(name: str, out: Path | str, quick: bool = False, *, store_root: Path | str = "runs/sweeps",
                jobs: int = 1, dask_address: str | None = None, progress: bool = True) -> list[Path]:
    """Run or reuse the sweeps of figure ``name`` and write its PNG, PDF and CSV into ``out``."""
    fig_def = get_figure(name)
    frames = figure_frames(fig_def, quick, store_root=store_root, jobs=jobs, dask_address=dask_address,
                           progress=progress)
    drawn = fig_def.draw_function()(frames, quick)
    if drawn.text:
        print(drawn.text)
    return save_drawn(drawn, Path(out), name)


def save_drawn(drawn, out: Path, name: str) -> list[Path]:
    """Write the figure as PNG and PDF and its numbers as CSV, each atomically."""
    import matplotlib.pyplot as plt  # lazy: CLI start-up

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


