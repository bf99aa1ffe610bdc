"""The benchmark's figures: the sparsity frontier and the cross-seed consistency plot (PNG)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"gba": "tab:red", "ba": "tab:orange", "topk": "tab:blue", "batchtopk": "tab:cyan",
          "relu-l1": "tab:green", "jumprelu": "tab:purple"}


def _save(fig, path: Path) -> None:
    tmp = Path(f"{path}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=130, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def frontier_figure(rows: list[dict], path: str | Path, title: str) -> None:
    """Normalised MSE against L0 / width, every method and setting (seeds faint, their mean bold)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["l0_over_width"])
        color = COLORS.get(method, "black")
        for r in mine:
            for s in r["per_seed"]:
                ax.scatter(s["l0_over_width"], s["nmse"], color=color, alpha=0.3, s=14, linewidths=0)
        ax.plot([r["l0_over_width"] for r in mine], [r["nmse"] for r in mine], "o-", color=color,
                label=method, ms=6)
        for r in mine:
            if r["setting"]:
                ax.annotate(r["setting"], (r["l0_over_width"], r["nmse"]), fontsize=7,
                            textcoords="offset points", xytext=(4, 3), color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("L0 / width (fraction of latents active per token)")
    ax.set_ylabel("normalised MSE (held-out tokens)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(fig, Path(path))


def consistency_figure(rows: list[dict], random_floor: dict, path: str | Path, title: str,
                       alpha: float, threshold: float) -> None:
    """Left: the consistency score per method and setting (fraction of the top-alpha neurons whose
    cross-seed MCS exceeds the threshold). Right: the mean MCS of those neurons against nmse. Dashed:
    two independent random dictionaries of the same shape."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1.4, 1]})
    labels = [r["method"] + (f" {r['setting']}" if r["setting"] else "") for r in rows]
    colors = [COLORS.get(r["method"], "black") for r in rows]
    ax.bar(range(len(rows)), [r["consistency"] or 0.0 for r in rows], color=colors)
    ax.axhline(random_floor["consistency"], color="gray", ls="--", lw=1, label="two random dictionaries")
    ax.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"fraction of top-{alpha:g} neurons with MCS > {threshold:g}")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    for r, c in zip(rows, colors):
        if r["consistency_mean_mcs"] is None:   # a single seed has no consistency
            continue
        ax2.scatter(r["nmse"], r["consistency_mean_mcs"], color=c, s=30)
        ax2.annotate(r["setting"], (r["nmse"], r["consistency_mean_mcs"]), fontsize=7, color=c,
                     textcoords="offset points", xytext=(4, 3))
    ax2.axhline(random_floor["consistency_mean_mcs"], color="gray", ls="--", lw=1)
    for method, color in COLORS.items():
        if any(r["method"] == method for r in rows):
            ax2.scatter([], [], color=color, label=method)
    ax2.set_xscale("log")
    ax2.set_xlabel("normalised MSE")
    ax2.set_ylabel(f"mean cross-seed MCS of the top-{alpha:g} neurons")
    ax2.set_ylim(0, 1)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    _save(fig, Path(path))


def figures_from_report(report: dict, out_dir: str | Path) -> None:
    """Redraw frontier.png and consistency.png from a results.json report."""
    cfg = report["config"]
    rows = report["methods"]
    floor = {"consistency": report["consistency_random"], "consistency_mean_mcs": report["consistency_random_mean_mcs"]}
    frontier_figure(rows, Path(out_dir) / "frontier.png", report["title"])
    consistency_figure(rows, floor, Path(out_dir) / "consistency.png", report["title"], cfg["alpha"], cfg["threshold"])
