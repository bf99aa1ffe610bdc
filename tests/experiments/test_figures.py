"""One ``--quick`` figure end to end: the sweep runs, and PNG, PDF and the CSV behind it are written.

To stay CI-sized the test keeps the quick grid of the ``activations`` figure but trains each cell for
only 100 steps (the full quick run trains 1500); everything else is the real path.
"""

import pandas as pd
import pytest

from polysemy.cli import main
from polysemy.errors import ConfigError
from polysemy.experiments import figures, sweeps


def _short(name, quick=False):
    spec = sweeps.get_sweep(name, quick)
    return spec.replace(train=spec.train.replace(steps=100), eval_samples=512)


def test_quick_activations_figure_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(figures, "get_sweep", _short)
    out, store = tmp_path / "figs", tmp_path / "store"
    assert main(["figures", "activations", "--quick", "--out", str(out), "--store", str(store)]) == 0
    assert (out / "activations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "activations.pdf").read_bytes()[:5] == b"%PDF-"
    table = pd.read_csv(out / "activations.csv")
    # 3 sparsities x 3 activations, each point a mean FRR in [0, 1]
    assert len(table) == 9
    assert set(table["params.train.activation"]) == {"jumprelu", "relu", "smooth-relu"}
    assert table["metrics.frr.0.9.mean"].between(0, 1).all()
    assert "activations.png" in capsys.readouterr().out
    # drawing again reuses the stored sweep: no cell is trained twice
    before = {p: p.stat().st_mtime_ns for p in (store / "activations-quick" / "cells").iterdir()}
    assert main(["figures", "activations", "--quick", "--out", str(out), "--store", str(store)]) == 0
    assert {p: p.stat().st_mtime_ns for p in (store / "activations-quick" / "cells").iterdir()} == before


def test_every_registered_figure_reads_known_sweeps_and_resolves_its_draw_function():
    for name, fig_def in figures.FIGURES.items():
        assert fig_def.name == name and set(fig_def.sweeps) <= set(sweeps.SWEEPS)
        assert callable(fig_def.draw_function())


def test_a_registered_figure_is_listed_and_drawn_by_polysemy_figures(tmp_path, monkeypatch, capsys):
    import matplotlib.pyplot as plt

    from polysemy.experiments.plots import Drawn, summarise
    from polysemy.experiments.store import param_col

    def draw_smoke(frames, quick):  # a pure function of the sweep's DataFrame
        table = summarise(frames["smoke"], [param_col("world.d")])
        fig, ax = plt.subplots()
        ax.plot(table[param_col("world.d")], table["metrics.frr.0.9.mean"])
        return Drawn(fig, table)

    monkeypatch.setattr(figures, "FIGURES", dict(figures.FIGURES))
    figures.register_figure(figures.FigureDef("smoke-frr", ("smoke",), draw_smoke, "FRR of the smoke sweep"))
    with pytest.raises(ConfigError, match="sweeps must be among"):
        figures.register_figure(figures.FigureDef("bad", ("no-such-sweep",), draw_smoke, "-"))
    out, store = tmp_path / "figs", tmp_path / "store"
    assert main(["figures", "smoke-frr", "--quick", "--out", str(out), "--store", str(store)]) == 0
    table = pd.read_csv(out / "smoke-frr.csv")
    assert list(table["params.world.d"]) == [8, 12] and list(table["metrics.frr.0.9.count"]) == [2, 2]
    assert "smoke-frr" in capsys.readouterr().out
