"""Side by side against the peers: one world, one stream, one sample budget, every system.

For each world, every system reads the same samples in the same order (the world's stream with one
data seed, regrouped to each system's own batch size; polysemy's TopK at the TopK peers' 1024, so the
TopK clocks compare like for like) up to the same budget, and is then scored on
one held-out evaluation set (``eval_samples`` = 8192 samples by default, seed ``EVAL_SEED``) with
``polysemy.theory.metrics.recovery_metrics``: FRR at τ = 0.9 and 0.99, MCC, L0, dead fraction (a
latent is dead if it never fired on the evaluation set: the stated window) and explained variance.
Along training, FRR is measured at sample checkpoints (geometrically spaced, our choice) to give
the number of samples needed to reach FRR(0.9) ≥ 0.95 ("never" if not within the budget) and the
recovery-against-wall-clock figure. Wall-clock seconds are training time only, evaluations excluded.
On a shared machine one run's clock is noisy (±15% here), so with ``timing_rounds`` R > 1 the TopK-type
systems given the same k on a world are trained R times, one after another in alternating order
(forward, then reversed, ...), and their ``seconds`` is the median of the R rounds (all of them in
``seconds_rounds``); the curve and the scores are those of the first round (the same training again).

Systems (TopK-type ones get the true k = round(expected L0) and a wrong k = 4 × true k):
``polysemy-gba`` (defaults), ``polysemy-topk``, ``saelens-topk``, ``saelens-batchtopk``,
``saelens-jumprelu``, ``saelens-relu-l1``, ``sparsify-topk``, ``sklearn-mbdl`` (best α of a grid),
and a ``random-init`` reference row (Gaussian decoder rows, no training). On request, any other
registered method as ``polysemy-<method>`` (:func:`system_families`; TopK-type if it has a ``k``).

The runs are an experiment spec (:class:`PeersSpec`, one unit of work per world and system) that the
experiment runner executes into a result store, so an interrupted ``polysemy peers`` resumes where it
stopped; ``runner.run_experiment(PeersSpec(cfg), store)`` gives the rows as a DataFrame.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..io import save_figure_atomic, write_text_atomic
from ..configs import Config
from ..errors import ConfigError, require, require_int_range
from ..sae import TrainConfig
from ..sae.registry import get_method, list_methods
from ..simulate import World, WorldConfig, get_preset
from ..theory import metrics
from .peer_adapters import ours, saelens_peer, sklearn_peer, sparsify_peer
from .peer_adapters.base import FittedSystem, PeerUnavailable, RecoveryMonitor, rebatch, samples_to_recovery
from .runner import run_units, unit_result
from .spec import Unit

WORLDS = ("uniform", "paper-toy")
SYSTEM_FAMILIES = ("polysemy-gba", "polysemy-topk", "saelens-topk", "saelens-batchtopk",
                   "saelens-jumprelu", "saelens-relu-l1", "sparsify-topk", "sklearn-mbdl", "random-init")
STREAM_CHUNK = 256      # the world is sampled in chunks of this size, then regrouped per system
EVAL_SEED = 12345
RECOVERY_TARGET = 0.95  # samples_to_recovery: first checkpoint with FRR(0.9) >= this
WRONG_K_FACTOR = 4      # the wrong k given to TopK-type systems (our choice: a 4x overestimate)


@dataclass(frozen=True)
class PeersConfig(Config):
    """What ``polysemy peers`` runs. ``budget`` is training samples per system and world."""

    worlds: tuple = WORLDS
    systems: tuple = SYSTEM_FAMILIES
    budget: int = 1_000_000
    width_ratio: int = 2            # width = width_ratio * n (the paper uses 2n)
    seed: int = 0                   # model initialisation seed (same for every system)
    data_seed: int = 0              # the stream's seed (same for every system)
    checkpoints: int = 12           # FRR evaluations along training, geometrically spaced
    sklearn_alphas: tuple = (0.03, 0.1, 0.3)
    sklearn_max_seconds: float = 120.0  # per α: sparse coding is slow, so it is capped in time
    eval_samples: int = 8192        # held-out evaluation set; also the dead-latent window
    device: str = "cpu"             # where polysemy and sparsify train (the others: CPU only)
    timing_rounds: int = 1          # > 1: TopK-type systems given the same k retrain alternately, median seconds

    def validate(self) -> None:
        require(len(self.worlds) >= 1, "worlds must name at least one world")
        for w in self.worlds:
            require(w in WORLDS, f"worlds must be among {list(WORLDS)}, got {w!r}")
        require(len(self.systems) >= 1, "systems must name at least one system")
        for s in self.systems:
            require(s in system_families(), f"systems must be among {list(system_families())}, got {s!r}")
        require_int_range("budget", self.budget, 1024, 10**10)
        require_int_range("width_ratio", self.width_ratio, 1, 64)
        require_int_range("seed", self.seed, 0)
        require_int_range("data_seed", self.data_seed, 0)
        require_int_range("checkpoints", self.checkpoints, 1, 1000)
        require(len(self.sklearn_alphas) >= 1 and all(float(a) > 0 for a in self.sklearn_alphas),
                f"sklearn_alphas must be positive numbers, got {self.sklearn_alphas!r}")
        require_int_range("eval_samples", self.eval_samples, 64, 1 << 20)
        require(self.sklearn_max_seconds > 0,
                f"sklearn_max_seconds must be > 0, got {self.sklearn_max_seconds!r}")
        require(isinstance(self.device, str) and self.device.split(":")[0] in ("cpu", "cuda"),
                f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        require_int_range("timing_rounds", self.timing_rounds, 1, 9)

    @classmethod
    def quick(cls, **changes) -> "PeersConfig":
        """A few minutes in all: a small budget, a short sklearn cap, fewer checkpoints."""
        base = dict(budget=65_536, checkpoints=6, sklearn_alphas=(0.1,), sklearn_max_seconds=15.0)
        base.update(changes)
        return cls(**base)


# -- worlds -----------------------------------------------------------------------------------------
def build_world(name: str):
    """``uniform``: n = 512, d = 128, exactly s = 5 of n per sample. ``paper-toy``: the preset of that
    name, the paper's imbalanced world (n = 128, half the samples s = 3, half s = 20) as calibrated
    against the paper's TopK rows (``polysemy.simulate.presets``)."""
    if name == "uniform":
        return World(WorldConfig(n=512, d=128, s=5))
    if name == "paper-toy":
        return World(get_preset("paper-toy"))
    raise ConfigError(f"world must be one of {list(WORLDS)}, got {name!r}")


def true_k(world) -> int:
    """The true mean number of active features per sample, rounded (≥ 1)."""
    return max(1, int(round(float(world.expected_l0))))


def checkpoint_schedule(budget: int, count: int) -> list[int]:
    """``count`` sample counts geometrically spaced from budget/64 to the budget (our choice)."""
    points = np.geomspace(max(1, budget / 64), budget, num=count)
    return sorted({int(p) for p in points})


def shared_stream(world, data_seed: int, batch_size: int):
    """The world's stream for ``data_seed``, regrouped to ``batch_size`` (same samples for all)."""
    return rebatch(world.stream(STREAM_CHUNK, seed=data_seed), batch_size)


# -- the systems ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SystemSpec:
    """One row of the comparison: a family (``saelens-topk``) and its variant (``k`` or none)."""

    family: str
    k: int | None = None
    k_label: str = ""       # "true k" / "wrong k"

    @property
    def name(self) -> str:
        return f"{self.family}-k{self.k}" if self.k is not None else self.family


PEER_TOPK_FAMILIES = ("saelens-topk", "saelens-batchtopk", "sparsify-topk")


def system_families() -> tuple:
    """Every system ``polysemy peers`` can run: the default ones and ``polysemy-<method>`` for every
    registered method (from the registry)."""
    return tuple(dict.fromkeys(SYSTEM_FAMILIES + tuple(f"polysemy-{m}" for m in list_methods())))


def is_topk_family(family: str) -> bool:
    """TopK-type systems get a true and a wrong k: the peers' TopKs and polysemy's methods with a k."""
    if family.startswith("polysemy-"):
        return get_method(family.removeprefix("polysemy-")).has_param("k")
    return family in PEER_TOPK_FAMILIES


def systems_for(world, families) -> list[SystemSpec]:
    k_true = true_k(world)
    k_wrong = WRONG_K_FACTOR * k_true
    specs = []
    for family in families:
        if is_topk_family(family):
            specs.append(SystemSpec(family, k_true, "true k"))
            specs.append(SystemSpec(family, k_wrong, "wrong k"))
        else:
            specs.append(SystemSpec(family))
    return specs


def availability(family: str) -> tuple[bool, str]:
    """Whether a family can run here, and the library version or the reason it cannot."""
    if family.startswith("polysemy-"):
        return ours.available()
    if family.startswith("saelens-"):
        return saelens_peer.available()
    if family.startswith("sparsify-"):
        return sparsify_peer.available()
    if family.startswith("sklearn-"):
        return sklearn_peer.available()
    return True, "reference"


def fit_system(spec: SystemSpec, world, cfg: PeersConfig) -> FittedSystem:
    """Train one system on the shared stream of ``world``; raises PeerUnavailable if not installed."""
    d, width = world.d, cfg.width_ratio * world.n
    truth_ND = world.V
    checkpoints = checkpoint_schedule(cfg.budget, cfg.checkpoints)
    common = dict(d=d, width=width, budget=cfg.budget, seed=cfg.seed)

    def stream(batch):
        return shared_stream(world, cfg.data_seed, batch)

    family = spec.family
    if family == "random-init":
        # numpy's generator, not torch's: a torch draw with the world's seed could replay the world's
        # own Gaussian dictionary and "recover" it.
        rows = torch.from_numpy(np.random.default_rng(cfg.seed).standard_normal((width, d))).float()
        return FittedSystem(W_dec=rows, encode_fn=lambda x: torch.relu(x @ rows.T), samples=0,
                            params={"note": "Gaussian decoder rows, untrained reference"})
    if family.startswith("polysemy-"):
        # TopK systems train at one batch size (sparsify's), so their clocks compare like for like
        # (our choice); GBA at its own default.
        batch = (sparsify_peer.DEFAULT_BATCH if is_topk_family(family)
                 else TrainConfig(method=family.removeprefix("polysemy-"), width=width).batch_size)
        return ours.fit(family.removeprefix("polysemy-"), stream(batch), monitor=RecoveryMonitor(truth_ND, checkpoints),
                        truth_ND=truth_ND, k=spec.k, device=cfg.device, batch_size=batch, **common)
    if family.startswith("saelens-"):
        arch = {"saelens-topk": "topk", "saelens-batchtopk": "batchtopk",
                "saelens-jumprelu": "jumprelu", "saelens-relu-l1": "standard"}[family]
        return saelens_peer.fit(arch, stream(saelens_peer.DEFAULT_BATCH),
                                monitor=RecoveryMonitor(truth_ND, checkpoints), k=spec.k, **common)
    if family == "sparsify-topk":
        return sparsify_peer.fit(stream(sparsify_peer.DEFAULT_BATCH),
                                 monitor=RecoveryMonitor(truth_ND, checkpoints), k=spec.k, device=cfg.device, **common)
    if family == "sklearn-mbdl":
        return _fit_sklearn_grid(world, cfg, checkpoints, stream, common)
    raise ConfigError(f"systems must be among {list(system_families())}, got {family!r}")


def _fit_sklearn_grid(world, cfg, checkpoints, stream, common) -> FittedSystem:
    """Fit every α of the grid; keep the best by final FRR(0.9), then MCC (tuned fairly, and said so)."""
    best, best_key, grid = None, None, []
    for alpha in cfg.sklearn_alphas:
        fitted = sklearn_peer.fit(stream(sklearn_peer.DEFAULT_BATCH), alpha=float(alpha),
                                  max_seconds=cfg.sklearn_max_seconds,
                                  monitor=RecoveryMonitor(world.V, checkpoints), **common)
        frr09 = metrics.frr(fitted.W_dec, world.V, taus=(0.9,))["0.9"]
        key = (frr09, metrics.mcc(fitted.W_dec, world.V))
        grid.append({"alpha": float(alpha), "frr_0.9": frr09, "mcc": key[1],
                     "seconds": fitted.seconds, "samples": fitted.samples})
        if best_key is None or key > best_key:
            best, best_key = fitted, key
    best.params["alpha_grid"] = grid
    best.params["tuning"] = "best alpha of the grid by FRR(0.9), then MCC"
    return best


# -- evaluation and the rows ------------------------------------------------------------------------
def evaluation_set(world, samples: int = 8192):
    gen = torch.Generator().manual_seed(EVAL_SEED)
    return world.sample(samples, gen)


def score(fitted: FittedSystem, world, x_eval_BD: torch.Tensor) -> dict:
    """Recovery metrics of a fitted system on the evaluation set (``recovery_metrics``)."""
    acts = fitted.encode(x_eval_BD)
    x_hat = fitted.decode(acts)
    return metrics.recovery_metrics(fitted.W_dec, world.V, acts=acts, x=x_eval_BD, x_hat=x_hat)


def make_row(spec: SystemSpec, world_name: str, world, fitted: FittedSystem, m: dict,
             library: str) -> dict:
    reached = samples_to_recovery(fitted.curve, RECOVERY_TARGET)
    trained = spec.family != "random-init"
    return {
        "system": spec.name, "family": spec.family, "world": world_name, "library": library,
        "k": spec.k, "k_label": spec.k_label or None, "true_l0": float(world.expected_l0),
        "frr": {"0.9": m["frr"]["0.9"], "0.99": m["frr"]["0.99"]},
        "frr_0.9": m["frr"]["0.9"], "frr_0.99": m["frr"]["0.99"], "mcc": m["mcc"],
        "l0": m.get("l0"), "dead_fraction": m.get("dead_fraction"),
        "explained_variance": m.get("explained_variance"),
        "seconds": fitted.seconds, "samples": fitted.samples,
        "samples_to_recovery": reached if reached is not None else ("never" if trained else None),
        "width": fitted.width, "curve": fitted.curve, "params": fitted.params,
    }


# -- the experiment spec: one unit per (world, system) -------------------------------------------------
UNIT_KIND = "peers"
# PeersConfig fields a system's result depends on (the sklearn ones only for sklearn); ``worlds`` and
# ``systems`` only choose which units exist.
UNIT_FIELDS = ("budget", "width_ratio", "seed", "data_seed", "checkpoints", "eval_samples", "device")
SKLEARN_FIELDS = ("sklearn_alphas", "sklearn_max_seconds")


@functools.lru_cache(maxsize=len(WORLDS))
def _world(name: str):
    return build_world(name)


@dataclass(frozen=True)
class PeersSpec:
    """``polysemy peers`` as an experiment spec for the runner (``runner`` module docstring): one unit of
    work per (world, system), run in this process one after another (their clocks are reported).

    ``families``: the system families to run (default ``config.systems``; ``run_peers`` passes the
    installed ones). A unit's key is its world, family and k, and the config fields its result depends
    on, so the store of an interrupted run resumes it, and a changed budget or seed makes new units.
    """

    config: PeersConfig
    families: tuple | None = None
    name = "peers"
    in_process = True

    def systems(self) -> list[tuple[str, SystemSpec]]:
        """(world name, system) of every unit, in run order: per world, the systems given the true k
        one after another, then those given the wrong k, then the rest, so that the clocks of systems
        compared with each other are read minutes apart at most on a shared machine (our choice)."""
        families = self.config.systems if self.families is None else self.families
        rank = {"true k": 0, "wrong k": 1}
        return [(w, s) for w in self.config.worlds
                for s in sorted(systems_for(_world(w), families), key=lambda s: rank.get(s.k_label, 2))]

    def expand(self) -> list:
        cfg = self.config.to_dict()
        units = []
        rounds = self.config.timing_rounds
        systems = self.systems()
        timed_together: dict[str, list] = {}   # group -> the families timed in it
        for world_name, system in systems:
            if rounds > 1 and is_topk_family(system.family):
                timed_together.setdefault(f"{world_name}:{system.k_label}", []).append(system.family)
        for world_name, system in systems:
            fields = UNIT_FIELDS + (SKLEARN_FIELDS if system.family == "sklearn-mbdl" else ())
            key = {"world": world_name, "family": system.family, "k": system.k, "k_label": system.k_label,
                   **{f: cfg[f] for f in fields}}
            group = f"{world_name}:{system.k_label}"
            timed = rounds > 1 and is_topk_family(system.family)
            if timed:   # only then part of the key, so the stores of single-round runs stay valid; the
                # group's members too, so a store never mixes rounds timed in different company
                key["timing_rounds"] = rounds
                key["timed_with"] = sorted(timed_together[group])
            units.append(Unit.make(UNIT_KIND, key, group=group if timed else None))
        return units

    def default_evaluator(self, device: str = "cpu", precision: str = "fp32"):
        return functools.partial(evaluate_units, self.config)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps({"experiment": self.name, "config": self.config.to_dict(), "families": self.families},
                          indent=indent, sort_keys=True)


def evaluate_units(cfg: PeersConfig, units: list) -> list[dict]:
    """The runner's evaluator: train and score each unit's system (:func:`make_row`); a peer that turns
    out not to be installed gives ``{"skipped": reason}`` (nothing stored: a later run tries again)."""
    out = []
    for unit in units:
        world_name, spec = unit.key["world"], _system_of(unit)
        world = _world(world_name)
        try:
            fitted = fit_system(spec, world, cfg)
        except PeerUnavailable as exc:
            out.append({"skipped": str(exc)})
            continue
        m = score(fitted, world, evaluation_set(world, cfg.eval_samples))
        out.append(make_row(spec, world_name, world, fitted, m, availability(spec.family)[1]))
    if any("timing_rounds" in u.key for u in units):
        _retime(cfg, units, out)
    return out


def _system_of(unit) -> SystemSpec:
    """The system a peers unit trains (its key's family, k and k label)."""
    return SystemSpec(unit.key["family"], unit.key["k"], unit.key["k_label"])


def _retime(cfg: PeersConfig, units: list, rows: list[dict]) -> None:
    """Rounds 2 .. R of ``timing_rounds``: train the group's systems again, alternating the order (the
    first round ran forward, so the second runs reversed, ...); each row's ``seconds`` becomes the median
    of its rounds and ``seconds_rounds`` lists them in round order."""
    timed = [(u, row) for u, row in zip(units, rows) if "skipped" not in row]
    for row in (row for _, row in timed):
        row["seconds_rounds"] = [row["seconds"]]
    for r in range(1, cfg.timing_rounds):
        for unit, row in (timed[::-1] if r % 2 else timed):
            row["seconds_rounds"].append(fit_system(_system_of(unit), _world(unit.key["world"]), cfg).seconds)
    for row in (row for _, row in timed):
        row["seconds"] = float(np.median(row["seconds_rounds"]))


def run_peers(cfg: PeersConfig, *, progress: bool = True, log=None, store=None) -> dict:
    """Run every available system on every world; return ``{"rows": [...], "skipped": [...], ...}``.

    The runs go through the runner into the result store at ``store`` (``PeersSpec``): rerunning with the
    same store skips the systems already done (an interrupted run resumes); ``store=None`` uses a
    temporary one (every system runs). The rows are those of :func:`make_row`, in run order, read back
    from the store (the DataFrame of the same rows: ``runner.run_experiment(PeersSpec(cfg), store)``).
    Skipped systems (peer not installed) are listed with their reason and announced on ``log``
    (default: the current ``sys.stderr``), as are systems reused from ``store``."""
    log = log if log is not None else sys.stderr
    skipped = []
    status = {family: availability(family) for family in cfg.systems}
    for family, (ok, why) in status.items():
        if not ok:
            skipped.append({"system": family, "reason": why})
            print(f"polysemy peers: skipping {family}: {why}", file=log)
    spec = PeersSpec(cfg, tuple(f for f in cfg.systems if status[f][0]))
    if cfg.timing_rounds > 1 and not any(is_topk_family(s.family) for _, s in spec.systems()):
        print(f"polysemy peers: warning: --timing-rounds {cfg.timing_rounds} applies to TopK-type systems "
              "only, and none of those runs here", file=log)
    units, stored, summary = run_units(spec, store, progress=progress, log=log, what="systems")
    rows = []
    for (world_name, system), unit in zip(spec.systems(), units):
        if unit.cell_id in stored:
            rows.append(unit_result(stored[unit.cell_id]))
        elif unit.cell_id in summary.skipped:
            reason = summary.skipped[unit.cell_id]
            skipped.append({"system": system.name, "world": world_name, "reason": reason})
            print(f"polysemy peers: skipping {system.name}: {reason}", file=log)
    return {"config": cfg.to_dict(), "rows": rows, "skipped": skipped, "machine": machine_info(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "eval_samples": cfg.eval_samples,
            "recovery_target": RECOVERY_TARGET}


def machine_info() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version()}


# -- output -----------------------------------------------------------------------------------------
TABLE_COLUMNS = ("world", "system", "frr_0.9", "frr_0.99", "mcc", "l0", "dead_fraction",
                 "seconds", "samples", "samples_to_recovery")


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def format_table(rows: list[dict]) -> str:
    """A plain fixed-width table of the headline columns."""
    cells = [list(TABLE_COLUMNS)] + [[_fmt(r.get(c)) for c in TABLE_COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str) -> None:
    columns = list(TABLE_COLUMNS) + ["k", "k_label", "true_l0", "explained_variance", "width",
                                     "library", "family"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c) for c in columns})
    write_text_atomic(path, buf.getvalue())


def write_json(result: dict, path: str) -> None:
    write_text_atomic(path, json.dumps(result, indent=1, default=str))


def draw_recovery_vs_time(frame):
    """FRR(0.9) against training wall-clock seconds, one panel per world, one line per system: a figure
    drawn from a table with the columns ``world``, ``system``, ``family`` and ``curve`` (the peers'
    rows, or their DataFrame), in row order. Returns the matplotlib figure."""
    import matplotlib  # lazy: CLI start-up (pyplot costs ~0.5 s)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: CLI start-up

    rows = pd.DataFrame(frame).to_dict("records")
    worlds = list(dict.fromkeys(r["world"] for r in rows))
    fig, axes = plt.subplots(1, max(1, len(worlds)), figsize=(6.5 * max(1, len(worlds)), 4.8),
                             squeeze=False)
    colours = plt.get_cmap("tab20").colors
    for ax, world in zip(axes[0], worlds):
        for i, r in enumerate(r for r in rows if r["world"] == world):
            curve = [p for p in r["curve"] if p["seconds"] == p["seconds"] and p["seconds"] > 0]
            if not curve:
                continue
            style = "-" if r["family"].startswith("polysemy-") else "--"
            ax.plot([p["seconds"] for p in curve], [p["frr_0.9"] for p in curve], style,
                    marker="o", ms=3, label=r["system"], color=colours[i % len(colours)])
        ax.axhline(RECOVERY_TARGET, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("training wall-clock seconds (evaluations excluded)")
        ax.set_ylabel("FRR(0.9)")
        ax.set_title(f"recovery against time: {world}")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_recovery_vs_time(rows: list[dict], path: str) -> None:
    """Draw :func:`draw_recovery_vs_time` from ``rows`` and save it as ``path`` (PNG), atomically."""
    save_figure_atomic(draw_recovery_vs_time(rows), path, dpi=120)


def save_outputs(result: dict, out_dir: str) -> dict:
    """Write peers.json, peers.csv and peers_recovery_vs_time.png under ``out_dir``; return paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "peers.json"), "csv": os.path.join(out_dir, "peers.csv"),
             "figure": os.path.join(out_dir, "peers_recovery_vs_time.png")}
    write_json(result, paths["json"])
    write_csv(result["rows"], paths["csv"])
    if result["rows"]:
        plot_recovery_vs_time(result["rows"], paths["figure"])
    else:
        paths.pop("figure")
    return paths
