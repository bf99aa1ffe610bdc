"""The benchmark's figures (PNG): the sparsity frontier, Delta CE and KL against sparsity, and the
cross-seed consistency plot. Points are seed means with the standard error over seeds as bars; faint
points are single seeds."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from ..io import save_figure_atomic  # noqa: E402
from ..sae.registry import method_colors  # noqa: E402
from .config import LLMBenchConfig  # noqa: E402

COLORS = method_colors()     # each method declares its colour (Method.color); others are black


def _save(fig, path: Path) -> None:
    save_figure_atomic(fig, path, dpi=130, bbox_inches="tight")


def _readable_log_axis(axis) -> None:
    """Ticks at 1, 2 and 5 times each power of ten, labelled as plain numbers: a log axis over less than
    a decade (the usual case here) otherwise shows no major tick and overlapping minor labels."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _sparsity_panel(ax, rows: list[dict], key: str, ylabel: str, log_y: bool = True) -> None:
    """``key`` against L0 / width for every method (a line through its settings, sorted by L0)."""
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = sorted((r for r in rows if r["method"] == method and r.get(key) is not None),
                      key=lambda r: r["l0_over_width"])
        if not mine:
            continue
        color = COLORS.get(method, "black")
        for r in mine:
            for s in r["per_seed"]:
                if s.get(key) is not None:
                    ax.scatter(s["l0_over_width"], s[key], color=color, alpha=0.3, s=14, linewidths=0)
        ax.errorbar([r["l0_over_width"] for r in mine], [r[key] for r in mine],
                    yerr=[r.get(key + "_sem") or 0.0 for r in mine], fmt="o-", color=color, label=method, ms=5,
                    capsize=2)
        for r in mine:
            if r["setting"]:
                ax.annotate(r["setting"], (r["l0_over_width"], r[key]), fontsize=6,
                            textcoords="offset points", xytext=(4, 3), color=color)
    values = [r[key] for r in rows if r.get(key) is not None]
    if any(r["l0_over_width"] and r["l0_over_width"] > 0 for r in rows):
        ax.set_xscale("log")
        _readable_log_axis(ax.xaxis)
    if log_y and any(v > 0 for v in values):
        ax.set_yscale("log")
        _readable_log_axis(ax.yaxis)
    ax.set_xlabel("L0 / width (fraction of latents active per token)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)


def frontier_figure(rows: list[dict], path: str | Path, title: str) -> None:
    """Normalised MSE against L0 / width, every method and setting: GBA's frontier (its target sweep)
    beside TopK's (its k values, GBA's L0 among them)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    _sparsity_panel(ax, rows, "nmse", "normalised MSE (held-out tokens)")
    ax.set_title(title, fontsize=9)
    _save(fig, Path(path))


def downstream_figure(rows: list[dict], path: str | Path, title: str) -> None:
    """Delta CE (CE_sae - CE_clean) and KL(clean || sae), nats per token, against L0 / width."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    _sparsity_panel(ax, rows, "delta_ce", "Delta CE = CE_sae - CE_clean (nats / token)", log_y=False)
    _sparsity_panel(ax2, rows, "kl", "KL(P_clean || P_sae) (nats / token)")
    fig.suptitle(title, fontsize=9)
    _save(fig, Path(path))


def consistency_figure(rows: list[dict], random_floor: dict, path: str | Path, title: str,
                       alpha: float, threshold: float) -> None:
    """Left: the consistency score per method and setting (fraction of the top-alpha neurons whose
    cross-seed MCS exceeds the threshold). Right: the mean MCS of those neurons against nmse. Dashed:
    two independent random dictionaries of the same shape."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1.4, 1]},
                                  layout="constrained")
    labels = [r["method"] + (f" {r['setting']}" if r["setting"] else "") for r in rows]
    colors = [COLORS.get(r["method"], "black") for r in rows]
    ax.bar(range(len(rows)), [r["consistency"] or 0.0 for r in rows], color=colors,
           yerr=[r.get("consistency_sem") or 0.0 for r in rows], capsize=2)
    ax.axhline(random_floor["consistency"], color="gray", ls="--", lw=1, label="two random dictionaries")
    ax.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"fraction of top-{alpha:g} neurons with MCS > {threshold:g}")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    for r, c in zip(rows, colors):
        if r["consistency_mean_mcs"] is None:   # a single seed has no consistency
            continue
        ax2.errorbar(r["nmse"], r["consistency_mean_mcs"], yerr=r.get("consistency_mean_mcs_sem") or 0.0,
                     xerr=r.get("nmse_sem") or 0.0, fmt="o", color=c, ms=5, capsize=2)
        ax2.annotate(r["setting"], (r["nmse"], r["consistency_mean_mcs"]), fontsize=7, color=c,
                     textcoords="offset points", xytext=(4, 3))
    ax2.axhline(random_floor["consistency_mean_mcs"], color="gray", ls="--", lw=1)
    for method, color in COLORS.items():
        if any(r["method"] == method for r in rows):
            ax2.scatter([], [], color=color, label=method)
    ax2.xaxis.set_major_locator(MaxNLocator(5))     # linear: the seeded settings span a short nmse range
    ax2.set_xlabel("normalised MSE")
    ax2.set_ylabel(f"mean cross-seed MCS (top-{alpha:g} neurons)")
    ax2.set_ylim(0, 1)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    _save(fig, Path(path))


def figures_from_report(report: dict, out_dir: str | Path) -> None:
    """Redraw frontier.png and consistency.png from a results.json report (its config nested or, before
    the config had sections, flat)."""
    rule = LLMBenchConfig.from_dict(report["config"]).consistency
    rows = report["methods"]
    floor = {"consistency": report["consistency_random"], "consistency_mean_mcs": report["consistency_random_mean_mcs"]}
    frontier_figure(rows, Path(out_dir) / "frontier.png", report["title"])
    if any(r.get("delta_ce") is not None for r in rows):
        downstream_figure(rows, Path(out_dir) / "downstream.png", report["title"])
    consistency_figure(rows, floor, Path(out_dir) / "consistency.png", report["title"], rule.alpha, rule.threshold)
