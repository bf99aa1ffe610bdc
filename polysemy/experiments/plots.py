"""Drawing the figures from sweep results (DataFrames from :func:`~polysemy.experiments.load_results`).

Each ``draw_*`` is a pure function: it takes ``frames`` (sweep name -> DataFrame, one row per cell) and
``quick`` and returns a :class:`Drawn`: the matplotlib figure, the table of the numbers it shows (saved as
CSV; means and standard deviations over seeds) and optional text to print (the toy table). Columns are
named through the accessors of :mod:`~polysemy.experiments.store` (``param_col("world.d")``,
``metric_col("frr.0.9")``, ``world_col("n")``), never spelled out here. The figures and the sweeps they
read are registered in :mod:`~polysemy.experiments.figures`. None trains anything (``draw_dynamics``
reads the snapshots the ``dynamics`` sweep stored).

Conventions (our choice): "recovered" means FRR at tau = 0.9 (docs/paper.md section 6). A phase diagram's
"success" at a grid point is the mean FRR(0.9) over seeds, i.e. the fraction of features recovered,
and its 50% contour is where half of the features are recovered.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import matplotlib

if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..theory import bands
from .dynamics import DynamicsRecord
from .store import column, metric_col, param_col, world_col  # noqa: E402
from .sweeps import TOY_PAPER, TOY_VARIANTS

# Every column is named through the accessors of ``store`` (the one place that knows the flattening).
FRR90 = metric_col("frr.0.9")
FRR99 = metric_col("frr.0.99")
FRR80 = metric_col("frr.0.8")
L0 = metric_col("l0")
DEAD = metric_col("dead_fraction")
PAPER80 = column("paper", "frr", "0.8")   # the toy table's paper columns (TOY_PAPER)
PAPER90 = column("paper", "frr", "0.9")


@dataclass
class Drawn:
    figure: "plt.Figure"
    table: pd.DataFrame
    text: str = ""


def summarise(df: pd.DataFrame, by: list[str], metrics: tuple[str, ...] = (FRR90, FRR99)) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds of ``metrics`` for each combination of ``by``."""
    metrics = tuple(m for m in metrics if m in df.columns)
    agg = df.groupby(by, sort=False, dropna=False)[list(metrics)].agg(["mean", "std", "count"])
    agg.columns = [column(m, stat) for m, stat in agg.columns]
    return agg.reset_index()


def _first(df: pd.DataFrame, column: str):
    return df[column].iloc[0]


# -- 1. resonance -------------------------------------------------------------------------------------
def _geometric_edges(values: np.ndarray) -> np.ndarray:
    """Cell edges for a log-spaced axis: geometric midpoints, extended by half a step at each end."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return np.array([v[0] / 1.5, v[0] * 1.5])
    mids = np.sqrt(v[:-1] * v[1:])
    return np.concatenate([[v[0] ** 2 / mids[0]], mids, [v[-1] ** 2 / mids[-1]]])


def draw_resonance(frames: dict, quick: bool) -> Drawn:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    tables = []
    for ax, kind in zip(axes, ("light", "heavy")):
        df = frames[f"resonance-{kind}"]
        d_col, p_col = param_col("world.d"), param_col("p_over_f")
        s = summarise(df, [d_col, p_col])
        tables.append(s.assign(panel=kind))
        ds = np.sort(s[d_col].unique())
        ps = np.sort(s[p_col].unique())
        grid = s.pivot(index=p_col, columns=d_col, values=column(FRR90, "mean"))
        grid = grid.reindex(index=ps, columns=ds)
        mesh = ax.pcolormesh(_geometric_edges(ds), _geometric_edges(ps), grid.values, vmin=0, vmax=1,
                             cmap="viridis", shading="flat")
        ax.set_xscale("log")
        ax.set_yscale("log")
        n, s_ = int(_first(df, world_col("n"))), int(_first(df, world_col("s")))
        f = s_ / n
        d_edges = _geometric_edges(ds)
        d_line = np.geomspace(d_edges[0], d_edges[-1], 100)
        hi = [bands.resonance_band(f, d)[1] / f for d in d_line]
        ax.plot(d_line, np.ones_like(d_line), color="red", ls="--", lw=1.8, label="p = f (band low)")
        ax.plot(d_line, hi, color="red", lw=1.8, label="p = min(sqrt f, f d) (band high)")
        ax.axvline(math.sqrt(n), color="orange", lw=2, label="d = sqrt(n)")
        ax.set_xlim(d_edges[0], d_edges[-1])
        ax.set_xlabel("ambient dimension d")
        ax.set_ylabel("target frequency p / f")
        ax.set_title(f"{kind} preset: n={n}, s={s_}, f={f:.3g}")
        ax.legend(loc="upper left", fontsize=7, framealpha=0.6)
    fig.colorbar(mesh, ax=axes, label="FRR(0.9)")
    fig.suptitle("Neuron resonance: BA recovers features when p sits in the band")
    return Drawn(fig, pd.concat(tables, ignore_index=True))


# -- 2. co-occurrence ---------------------------------------------------------------------------------
def _lines(ax, s: pd.DataFrame, x: str, label_col: str | None, metric: str = FRR90, marker: str = "o",
           style: str = "-", label_prefix: str = "") -> None:
    groups = [(None, s)] if label_col is None else list(s.groupby(label_col, sort=False))
    for label, g in groups:
        g = g.sort_values(x)
        mean, std = g[column(metric, "mean")], g[column(metric, "std")].fillna(0)
        name = label_prefix + ("" if label is None else str(label))
        ax.errorbar(g[x], mean, yerr=std, marker=marker, ls=style, capsize=2, label=name or None)


def draw_cooccurrence(frames: dict, quick: bool) -> Drawn:
    df = frames["cooccurrence"]
    rho2, method = param_col("world.rho2"), param_col("method")
    s = summarise(df, [rho2, method])
    n = int(_first(df, world_col("n")))
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    _lines(ax, s, rho2, method, FRR90)
    _lines(ax, s, rho2, method, FRR99, marker="x", style=":", label_prefix="tau=0.99: ")
    ax.axvline(1 / math.sqrt(n), color="k", ls="--", label=f"1/sqrt(n) = {1 / math.sqrt(n):.3g}")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("co-occurrence rho2 = max P(h_j > 0 | h_i > 0)")
    ax.set_ylabel("FRR (solid: tau=0.9)")
    ax.set_title(f"Recovery against co-occurrence (n={n}, d={int(_first(df, world_col('d')))})")
    ax.legend(fontsize=7)
    return Drawn(fig, s)


# -- 3. width, imbalance, occurrence ----------------------------------------------------------------------
def draw_width(frames: dict, quick: bool) -> Drawn:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    w = summarise(frames["width"], [param_col("width_over_n"), param_col("method")])
    _lines(axes[0], w, param_col("width_over_n"), param_col("method"))
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("width M / n")
    axes[0].set_title("width")
    im = summarise(frames["imbalance"], [param_col("world.imbalance")])
    _lines(axes[1], im, param_col("world.imbalance"), None, label_prefix="GBA")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("imbalance max h / min h  (1/h^2 spans its square)")
    axes[1].set_title("coefficient imbalance")
    occ_df = frames["occurrence"].copy()
    occ_df["f_max_over_f_min"] = occ_df[world_col("f_max")] / occ_df[world_col("f_min")]
    oc = summarise(occ_df, ["f_max_over_f_min"])
    _lines(axes[2], oc, "f_max_over_f_min", None, label_prefix="GBA")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("relative occurrence f_max / f_min (Zipf)")
    axes[2].set_title("relative occurrence")
    for ax in axes:
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("FRR(0.9)")
        ax.legend(fontsize=7)
    table = pd.concat([w.assign(panel="width"), im.assign(panel="imbalance"), oc.assign(panel="occurrence")],
                      ignore_index=True)
    return Drawn(fig, table)


# -- 4. activations -------------------------------------------------------------------------------------
def draw_activations(frames: dict, quick: bool) -> Drawn:
    """FRR(0.9) (left) and FRR(0.99) (right) against s; colour = activation, solid = b_pre trained,
    dashed = b_pre fixed at the first batch's mean (full mode only)."""
    df = frames["activations"].copy()
    s_col, act_col, pre_col = param_col("world.s"), param_col("train.activation"), param_col("train.pre_bias")
    if pre_col not in df:
        df[pre_col] = "train"
    s = summarise(df, [s_col, act_col, pre_col])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True, sharey=True)
    colours = {"jumprelu": "C0", "relu": "C1", "smooth-relu": "C2"}
    for ax, metric, tau in ((axes[0], FRR90, "0.9"), (axes[1], FRR99, "0.99")):
        for (act, pre_bias), g in s.groupby([act_col, pre_col], sort=True):
            g = g.sort_values(s_col)
            ax.errorbar(g[s_col], g[column(metric, "mean")], yerr=g[column(metric, "std")].fillna(0),
                        marker="o" if pre_bias == "train" else "s", ls="-" if pre_bias == "train" else "--",
                        color=colours.get(act), capsize=2, label=f"{act}, b_pre {pre_bias}")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("active features per sample s")
        ax.set_ylabel(f"FRR({tau})")
        ax.set_title(f"FRR(tau={tau})")
        ax.legend(fontsize=7)
    n, d = int(_first(df, world_col("n"))), int(_first(df, world_col("d")))
    fig.suptitle(f"Activation functions (GBA, n={n}, d={d})")
    return Drawn(fig, s)


# -- 5. toy table -------------------------------------------------------------------------------------
def toy_table(df: pd.DataFrame) -> pd.DataFrame:
    s = summarise(df, [param_col("variant")], (FRR80, FRR90, FRR99))
    order = [v["label"] for v in TOY_VARIANTS]
    s["order"] = s[param_col("variant")].map({k: i for i, k in enumerate(order)})
    s = s.sort_values("order").drop(columns="order")
    s[PAPER80] = s[param_col("variant")].map(lambda k: TOY_PAPER[k][0] / 100)
    s[PAPER90] = s[param_col("variant")].map(lambda k: TOY_PAPER[k][1] / 100)
    return s.rename(columns={param_col("variant"): "method"})


def format_toy_table(t: pd.DataFrame) -> str:
    def pct(mean, std):
        return f"{100 * mean:5.1f} ± {100 * (0 if pd.isna(std) else std):4.1f}"

    lines = [f"{'method':34s} | {'FRR(0.8) ours':15s} | paper  | {'FRR(0.9) ours':15s} | paper  | "
             f"{'FRR(0.99) ours':15s} | seeds",
             "-" * 112]
    for _, r in t.iterrows():
        lines.append(f"{r['method']:34s} | {pct(r[column(FRR80, 'mean')], r[column(FRR80, 'std')]):15s} | "
                     f"{100 * r[PAPER80]:5.1f}% | {pct(r[column(FRR90, 'mean')], r[column(FRR90, 'std')]):15s} | "
                     f"{100 * r[PAPER90]:5.1f}% | {pct(r[column(FRR99, 'mean')], r[column(FRR99, 'std')]):15s} | "
                     f"{int(r[column(FRR90, 'count')])}")
    return "\n".join(lines)


def draw_toy(frames: dict, quick: bool) -> Drawn:
    df = frames["toy"]
    t = toy_table(df)
    n, d = int(_first(df, world_col("n"))), int(_first(df, world_col("d")))
    fig, ax = plt.subplots(figsize=(9, 4), constrained_layout=True)
    x = np.arange(len(t))
    for offset, (metric, paper, label) in enumerate(((FRR80, PAPER80, "0.8"),
                                                       (FRR90, PAPER90, "0.9"))):
        xs = x + (offset - 0.5) * 0.38
        ax.bar(xs, t[column(metric, "mean")], width=0.36, yerr=t[column(metric, "std")].fillna(0), capsize=3,
               label=f"ours FRR({label})", alpha=0.85)
        ax.scatter(xs, t[paper], marker="D", color="k", zorder=3, s=18,
                   label="paper" if offset == 0 else None)
    ax.set_xticks(x)
    ax.set_xticklabels(t["method"], rotation=15, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("FRR")
    ax.set_title(f"Toy table on the calibrated imbalanced world (n={n}, d={d}): ours (bars, mean ± sd) vs paper (diamonds)")
    ax.legend(fontsize=7, loc="lower left")
    return Drawn(fig, t, f"Toy table (calibrated imbalanced world n={n}, d={d}; percent, mean ± sd over seeds)\n"
                 + format_toy_table(t))


# -- 6. training dynamics ----------------------------------------------------------------------------
def draw_dynamics(frames: dict, quick: bool) -> Drawn:
    """From the stored snapshots of the ``dynamics`` sweep (its first cell); trains nothing."""
    rec = DynamicsRecord.from_frame(frames["dynamics"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    cos_SN = rec.best_cosine_TN  # [snapshots, n]
    steps = rec.steps
    for i in range(cos_SN.shape[1]):
        axes[0].plot(steps, cos_SN[:, i], color="tab:blue", alpha=0.25, lw=0.8)
    axes[0].plot(steps, np.median(cos_SN, axis=1), color="k", lw=2, label="median feature")
    axes[0].plot(steps, (cos_SN >= 0.9).mean(axis=1), color="tab:red", lw=2, label="FRR(0.9)")
    axes[0].set_ylim(0, 1.02)
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("best |cos| with any neuron")
    axes[0].set_title("each true feature's best cosine")
    axes[0].legend(fontsize=7)
    freq_TM, target_M = rec.frequency_TM, rec.target_M
    groups = np.unique(target_M)
    colors = plt.cm.plasma(np.linspace(0, 0.9, len(groups)))
    for color, t in zip(colors, groups):
        member = target_M == t
        med = np.median(freq_TM[:, member], axis=1)
        axes[1].plot(steps, med, color=color, lw=1.5)
        axes[1].axhline(t, color=color, ls=":", lw=1)
    axes[1].axhline(rec.f, color="k", ls="--", lw=1.2, label=f"feature frequency f = {rec.f:.3g}")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel("neuron activation frequency (median per group)")
    axes[1].set_title("group frequencies (solid) against their targets (dotted): a ceiling")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"GBA training dynamics ({rec.description})")
    rows = []
    for t_idx, step in enumerate(steps):
        row = {"step": int(step), "frr.0.9": float((cos_SN[t_idx] >= 0.9).mean()),
               "median_best_cosine": float(np.median(cos_SN[t_idx]))}
        for t in groups:
            row[f"median_frequency_target_{t:.3g}"] = float(np.median(freq_TM[t_idx, target_M == t]))
        rows.append(row)
    return Drawn(fig, pd.DataFrame(rows))


# -- 7. phase diagram -----------------------------------------------------------------------------------
def _theory_overlays(ax, n: int, deltas: np.ndarray) -> None:
    """Theorem region (band non-empty), classical sqrt(d)/(mu log d) and Donoho-Tanner, in (delta, rho)."""
    dl = np.linspace(max(2 / n, deltas.min() * 0.8), min(1.0, deltas.max() * 1.1), 60)
    rl = np.linspace(0.01, 1.0, 100)
    region = np.zeros((len(rl), len(dl)))
    for j, delta in enumerate(dl):
        d = max(2, int(round(delta * n)))
        for i, rho in enumerate(rl):
            s = max(1.0, rho * d)
            lo, hi = bands.theorem_band(n, d, s)
            region[i, j] = 1.0 if lo <= hi else 0.0
    if region.any():
        ax.contourf(dl, rl, region, levels=[0.5, 1.5], colors=["tab:green"], alpha=0.12)
        ax.contour(dl, rl, region, levels=[0.5], colors=["tab:green"], linewidths=1)
    classical, dt = [], []
    for delta in dl:
        d = max(2, int(round(delta * n)))
        mu = math.sqrt(2 * math.log(n * n) / d)  # Gaussian coherence (docs/paper.md section 2)
        classical.append(min(1.0, bands.classical_sparsity_limit(d, min(mu, 1.0)) / d))
        dt.append(bands.donoho_tanner_rho(delta))
    ax.plot(dl, classical, color="tab:orange", lw=1.5, label="sqrt(d)/(mu log d)")
    ax.plot(dl, dt, color="tab:red", lw=1.5, ls="--", label="Donoho-Tanner l1")
    ax.plot([], [], color="tab:green", lw=6, alpha=0.3, label="theorem band non-empty")


def draw_phase(frames: dict, quick: bool) -> Drawn:
    df = frames["phase"]
    n_col, method_col = param_col("world.n"), param_col("method")
    delta_col, rho_col = param_col("delta"), param_col("rho")
    s = summarise(df, [n_col, method_col, delta_col, rho_col])
    methods = list(dict.fromkeys(s[method_col]))
    ns = sorted(s[n_col].unique())
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4), constrained_layout=True,
                             squeeze=False)
    styles = ["-", "--", ":", "-."]
    mesh = None
    for ax, method in zip(axes[0], methods):
        sm = s[s[method_col] == method]
        for k, n in enumerate(ns):
            g = sm[sm[n_col] == n].pivot(index=rho_col, columns=delta_col,
                                         values=column(FRR90, "mean")).sort_index().sort_index(axis=1)
            X, Y = np.meshgrid(g.columns.values.astype(float), g.index.values.astype(float))
            if k == len(ns) - 1:
                mesh = ax.pcolormesh(X, Y, g.values, vmin=0, vmax=1, cmap="Greys_r", shading="nearest", alpha=0.8)
            if g.shape[0] > 1 and g.shape[1] > 1 and np.nanmin(g.values) < 0.5 < np.nanmax(g.values):
                ax.contour(X, Y, g.values, levels=[0.5], colors=["tab:blue"], linestyles=styles[k % 4],
                           linewidths=2)
            ax.plot([], [], color="tab:blue", ls=styles[k % 4], lw=2, label=f"50% contour, n={n}")
        _theory_overlays(ax, int(ns[-1]), np.array(sorted(s[delta_col].unique()), dtype=float))
        ax.set_title(method)
        ax.set_xlabel("delta = d / n")
        ax.set_ylabel("rho = s / d")
        ax.set_ylim(0, min(1.0, float(s[rho_col].max()) * 1.15))
        ax.legend(fontsize=6, loc="upper left")
    if mesh is not None:
        fig.colorbar(mesh, ax=axes[0].tolist(), label=f"FRR(0.9), n={ns[-1]}")
    fig.suptitle("Phase diagrams: fraction of features recovered over (delta, rho)")
    return Drawn(fig, s)


# -- 8. sensitivity ---------------------------------------------------------------------------------------
def draw_sensitivity(frames: dict, quick: bool) -> Drawn:
    df = frames["sensitivity"].copy()
    label = df[param_col("variant")].astype(str)
    df["knob"] = label.str.split("=").str[0]
    df["value"] = label.str.split("=").str[1].astype(float)
    s = summarise(df, ["knob", "value"], (FRR90, FRR99, L0, DEAD))
    knobs = list(dict.fromkeys(s["knob"]))
    fig, axes = plt.subplots(1, len(knobs), figsize=(3.3 * len(knobs), 3.6), constrained_layout=True,
                             squeeze=False)
    for ax, knob in zip(axes[0], knobs):
        g = s[s["knob"] == knob].sort_values("value")
        for metric, style, name in ((FRR90, "o-", "FRR(0.9)"), (FRR99, "x:", "FRR(0.99)")):
            ax.errorbar(g["value"], g[column(metric, "mean")], yerr=g[column(metric, "std")].fillna(0),
                        fmt=style, capsize=2, label=name)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(knob, fontsize=9)
        ax.set_xlabel(knob.split(" ", 1)[1] if " " in knob else knob)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("FRR")
    fig.suptitle("Sensitivity: recovery against each method's own knob")
    return Drawn(fig, s)
