"""Declarative sweeps: a base world, a base training config, axes to vary, seeds -> cells.

A :class:`SweepSpec` expands into the Cartesian product of its axes times its seeds. Each product point
is a :class:`Cell` whose world and training config are fully resolved, so a cell can be regenerated
exactly from what the store keeps. Its id is a hash of that resolved config (world + train + seed +
evaluation sample count), so it does not depend on the sweep's name, on the axis order or on which
other cells the sweep holds: the same experiment gets the same id wherever it appears.

Parameter names an axis may vary (our choice of vocabulary):

- ``world.<field>``: any :class:`~polysemy.simulate.WorldConfig` field (``world.d``, ``world.s`` ...).
- ``train.<field>``: a :class:`~polysemy.sae.TrainConfig` field or a method parameter, set through
  ``TrainConfig.with_param`` (``train.lr``, ``train.width``, ``train.htf``, ``train.k`` ...).
  Setting ``train.method`` resets the method parameters, lr and lr schedule to the new method's defaults
  first (a ``train.lr`` in the same point still wins).
- Derived parameters, resolved after the world (see :data:`DERIVED_PARAMETERS`):
  ``delta`` (d = round(delta * n)), ``rho`` (s = max(1, round(rho * d))) for compressed-sensing phase
  diagrams at fixed n; ``p_over_f`` (BA's target frequency p = p_over_f * f, f the world's mean
  occurrence frequency); ``width_over_n`` (width = round(width_over_n * n)); ``k_over_s``
  (TopK's k = max(1, round(k_over_s * expected L0))).
- A *bundle*: an axis whose values are dicts of several of the above (e.g. ``{"train.method": "topk",
  "train.k": 20}``). The axis name is then only a label; a bundle's ``"label"`` key names it in figures.

Evaluators: a sweep names how its cells are computed (``SweepSpec.evaluator``, one of :data:`EVALUATORS`):
``"train"`` (default) trains each cell's model and scores it on its world; ``"dynamics"`` trains it once
and keeps snapshots of it over training (figure 6). A cell's id covers a non-default evaluator, since the
same configs then give other results.

Seeds (our choice): replicate ``r`` trains with ``train.seed = r`` on the data stream seeded ``r`` and
on a fresh dictionary, ``world.seed = base world seed + r``, so replicates average over dictionaries too.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..configs import Config
from ..errors import require, require_int_range
from ..io import to_jsonable
from ..sae import TrainConfig
from ..sae.registry import get_method
from ..simulate import WorldConfig, build_world
from ..simulate.saelens import world_config_from_dict

DERIVED_PARAMETERS = {
    "delta": "undersampling d/n of a compressed-sensing phase diagram: sets world.d = round(delta * n)",
    "rho": "sparsity s/d of a compressed-sensing phase diagram: sets world.s = max(1, round(rho * d))",
    "p_over_f": "BA's target frequency as a multiple of the world's mean frequency f: p = p_over_f * f",
    "width_over_n": "SAE width as a multiple of the number of true features: width = round(w * n)",
    "k_over_s": "TopK's k as a multiple of the world's expected L0: k = max(1, round(k_over_s * L0))",
}
WORLD_DERIVED = ("delta", "rho")
TRAIN_DERIVED = ("p_over_f", "width_over_n", "k_over_s")
BUNDLE_LABEL = "label"

# Name of BA's target-frequency parameter in the sae method registry (see polysemy.sae).
BA_TARGET_PARAM = "target"

SCALES = ("linear", "log")

EVALUATORS = {   # SweepSpec.evaluator -> what the runner's default evaluation of a group does
    "train": "train each cell's model (stacked) and score it on its world (evaluation.train_and_evaluate_group)",
    "dynamics": "train each cell's model once, snapshotting it at step 0 and every log_every steps "
                "(dynamics.dynamics_group)",
}
DEFAULT_EVALUATOR = "train"


def _is_known_name(name: str) -> bool:
    return name.startswith("world.") or name.startswith("train.") or name in DERIVED_PARAMETERS


@dataclass(frozen=True)
class Axis(Config):
    """One parameter to vary: explicit ``values``, or a grid of ``num`` points from ``start`` to ``stop``.

    ``scale="log"`` spaces the grid geometrically (``numpy.geomspace``), ``"linear"`` evenly. With
    ``integer=True`` grid points are rounded to integers and duplicates dropped (e.g. ``world.d``).
    """

    name: str = "world.d"
    values: tuple = ()
    start: float | None = None
    stop: float | None = None
    num: int = 0
    scale: str = "linear"
    integer: bool = False

    def validate(self) -> None:
        require(isinstance(self.name, str) and self.name != "", "axis name must be a non-empty string")
        require(self.scale in SCALES, f"axis {self.name}: scale must be one of {SCALES}, got {self.scale!r}")
        has_grid = self.start is not None or self.stop is not None or self.num
        require(bool(self.values) != bool(has_grid),
                f"axis {self.name}: give either values or a grid (start, stop, num), not both or neither")
        if has_grid:
            require(self.start is not None and self.stop is not None,
                    f"axis {self.name}: a grid needs both start and stop")
            require_int_range(f"axis {self.name}: num", self.num, 1)
            if self.scale == "log":
                require(self.start > 0 and self.stop > 0,
                        f"axis {self.name}: a log grid needs start > 0 and stop > 0, got {self.start}, {self.stop}")
        bundles = [v for v in self.values if isinstance(v, dict)]
        require(len(bundles) in (0, len(self.values)),
                f"axis {self.name}: values must be all bundles (dicts) or all plain values")
        names = [k for b in bundles for k in b if k != BUNDLE_LABEL] if bundles else [self.name]
        for name in names:
            require(_is_known_name(name),
                    f"axis parameter must be world.<field>, train.<field> or one of "
                    f"{sorted(DERIVED_PARAMETERS)}, got {name!r}")

    def points(self) -> list:
        """The axis values, in order (grids are computed here)."""
        if self.values:
            return list(self.values)
        if self.scale == "log":
            grid = np.geomspace(self.start, self.stop, self.num)
        else:
            grid = np.linspace(self.start, self.stop, self.num)
        if self.integer:
            out: list = []
            for g in grid:
                v = int(round(float(g)))
                if v not in out:
                    out.append(v)
            return out
        return [float(g) for g in grid]


@dataclass(frozen=True)
class Cell:
    """One resolved experiment: a world, a training config, a replicate seed and its axis values."""

    cell_id: str
    world: Any           # WorldConfig (or a SAELensWorldConfig)
    train: Any           # TrainConfig
    seed: int
    eval_samples: int
    params: dict = field(default_factory=dict)   # axis name -> value (bundle label for bundles)

    @property
    def shape_key(self) -> tuple:
        """Cells with equal keys can be trained stacked: the same data dimension d and the same
        ``structure_key`` of their method (the one rule, ``Method.structure_key``: method, width,
        steps, batch size, ... and the structural parameters)."""
        return (int(self.world.d),) + get_method(self.train.method).structure_key(self.train)

    def to_dict(self) -> dict:
        return {"cell_id": self.cell_id, "seed": self.seed, "eval_samples": self.eval_samples,
                "params": dict(self.params), "world": self.world.to_dict(), "train": self.train.to_dict()}


def cell_id_for(world, train, seed: int, eval_samples: int, evaluator: str = DEFAULT_EVALUATOR) -> str:
    """Stable 16-hex-digit id: SHA-256 of the canonical JSON of the resolved configs (our choice), and of
    the evaluator when it is not the default (so every default cell keeps its id)."""
    payload = {"world": world.to_dict(), "train": train.to_dict(), "seed": int(seed), "eval_samples": int(eval_samples)}
    if evaluator != DEFAULT_EVALUATOR:
        payload["evaluator"] = evaluator
    return _content_id(payload)


def _content_id(payload: dict) -> str:
    text = json.dumps(to_jsonable(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Unit:
    """One unit of work of an experiment that is not a sweep of trainings (``polysemy peers``: one system
    on one world; ``polysemy bench``: one alternated timing round at one shape).

    ``key`` says everything the unit's result depends on (JSON values); ``cell_id`` is its content
    address, the hash of ``kind`` and ``key`` (:func:`unit_id_for`), so a rerun with the same settings
    finds the unit done and a changed setting makes a new unit. A unit runs alone (its own group) unless
    its spec gives it a ``group``. Build one with :meth:`make`. The stored row is ``to_dict()`` plus the
    evaluator's result.
    """

    cell_id: str
    kind: str
    key: dict
    group: str | None = None

    @classmethod
    def make(cls, kind: str, key: dict, group: str | None = None) -> "Unit":
        key = to_jsonable(key)
        return cls(unit_id_for(kind, key), kind, key, group)

    @property
    def shape_key(self) -> tuple:
        """Units with the same ``group`` (not part of the content address) reach their evaluator together,
        in one call (``polysemy peers --timing-rounds``: systems timed alternately); else a unit runs alone."""
        return ("unit-group", self.group) if self.group is not None else ("unit", self.cell_id)

    def to_dict(self) -> dict:
        return {"cell_id": self.cell_id, "kind": self.kind, "unit": dict(self.key)}


UNIT_KEYS = ("cell_id", "kind", "unit")   # the keys of Unit.to_dict()


def unit_id_for(kind: str, key: dict) -> str:
    """Stable 16-hex-digit id of a :class:`Unit`: SHA-256 of the canonical JSON of ``kind`` and ``key``."""
    return _content_id({"kind": kind, "key": key})


@dataclass(frozen=True)
class SweepSpec(Config):
    """A declarative sweep.

    Fields: ``name``; ``world`` (base WorldConfig) and ``train`` (base TrainConfig), both default to the
    library defaults when ``None``; ``axes`` (tuple of :class:`Axis`, expanded as a Cartesian product,
    the first axis varying slowest); ``seeds`` (replicate seeds); ``eval_samples`` (samples drawn by
    ``evaluate_on_world`` for each cell); ``description`` (one line shown by ``polysemy sweep``);
    ``evaluator`` (how the runner computes a cell by default: a key of :data:`EVALUATORS`).
    """

    name: str = "sweep"
    world: Any = None
    train: Any = None
    axes: tuple = ()
    seeds: tuple = (0,)
    eval_samples: int = 8192
    description: str = ""
    evaluator: str = DEFAULT_EVALUATOR

    def validate(self) -> None:
        require(isinstance(self.name, str) and self.name.replace("-", "").replace("_", "").isalnum(),
                f"sweep name must be letters, digits, '-' or '_', got {self.name!r}")
        require(len(self.seeds) >= 1, "seeds must hold at least one seed")
        for s in self.seeds:
            require_int_range("seeds[i]", s, 0)
        require(len(set(self.seeds)) == len(self.seeds), f"seeds must be distinct, got {self.seeds}")
        require_int_range("eval_samples", self.eval_samples, 64)
        require(self.evaluator in EVALUATORS,
                f"evaluator must be one of {list(EVALUATORS)}, got {self.evaluator!r}")
        for a in self.axes:
            require(isinstance(a, Axis), f"axes must hold Axis objects, got {type(a).__name__}")
        names = [a.name for a in self.axes]
        require(len(set(names)) == len(names), f"axis names must be distinct, got {names}")

    # Nested configs are typed Any (so this module imports without simulate/sae): rebuild them here.
    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["world"] = None if self.world is None else self.world.to_dict()
        d["train"] = None if self.train is None else self.train.to_dict()
        d["axes"] = [a.to_dict() for a in self.axes]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SweepSpec":
        data = dict(data)
        if data.get("world") is not None:
            data["world"] = world_config_from_dict(data["world"])
        if data.get("train") is not None:
            data["train"] = TrainConfig.from_dict(data["train"])
        data["axes"] = tuple(Axis.from_dict(a) if isinstance(a, dict) else a for a in data.get("axes", ()))
        return super().from_dict(data)

    def default_evaluator(self, device: str = "cpu", precision: str = "fp32"):
        """What the runner evaluates a group of cells with unless told otherwise: train them stacked on
        ``device`` and score each on its world (``evaluation.train_and_evaluate_group``), or, with
        ``evaluator="dynamics"``, snapshot each over training (``dynamics.dynamics_group``)."""
        from .runner import default_evaluator  # lazy: import cycle (spec -> runner -> spec)

        return default_evaluator(device, precision, self.evaluator)

    def base_world(self):
        return self.world if self.world is not None else WorldConfig()

    def base_train(self):
        return self.train if self.train is not None else TrainConfig()

    def size(self) -> int:
        return math.prod(len(a.points()) for a in self.axes) * len(self.seeds)

    def expand(self) -> list[Cell]:
        """All cells, axes in order (first slowest), then seeds. Raises ConfigError on a bad point."""
        cells = []
        point_lists = [a.points() for a in self.axes]
        for combo in itertools.product(*point_lists):
            assignments: dict[str, Any] = {}
            labels: dict[str, Any] = {}
            for axis, value in zip(self.axes, combo):
                if isinstance(value, dict):
                    assignments.update({k: v for k, v in value.items() if k != BUNDLE_LABEL})
                    labels[axis.name] = value.get(BUNDLE_LABEL, json.dumps(value, sort_keys=True))
                else:
                    assignments[axis.name] = value
                    labels[axis.name] = value
            for seed in self.seeds:
                world, train = resolve(self.base_world(), self.base_train(), assignments, seed)
                cid = cell_id_for(world, train, seed, self.eval_samples, self.evaluator)
                cells.append(Cell(cid, world, train, int(seed), int(self.eval_samples), labels))
        return cells


def resolve(base_world, base_train, assignments: dict[str, Any], seed: int):
    """Apply ``assignments`` (parameter name -> value) and the replicate ``seed`` to the base configs.

    Order: ``world.*``, then the world-derived ``delta``/``rho``, then the seed's world offset. Then all
    training changes at once (``train.*``, the train-derived parameters, ``train.seed = seed``), so a new
    method is validated together with its own knobs; a new ``train.method`` starts from that method's
    default parameters. Returns ``(world, train)``, both validated.
    """
    world_changes = {k[len("world."):]: _plain(v) for k, v in assignments.items() if k.startswith("world.")}
    fixed = getattr(base_world, "fixed_dictionary", False)  # a saved SAELens world: nothing to vary
    require(not fixed or not (world_changes or "delta" in assignments or "rho" in assignments),
            "world.<field>, delta and rho axes need a WorldConfig; a SAELens world is fixed "
            "(vary train.* or the seeds)")
    world = base_world.replace(**world_changes) if world_changes else base_world
    if "delta" in assignments or "rho" in assignments:
        n = int(world.n)
        d = int(world.d)
        if "delta" in assignments:
            delta = float(assignments["delta"])
            require(0 < delta <= 1, f"delta must be in (0, 1], got {delta}")
            d = max(1, int(round(delta * n)))
        changes = {"d": d}
        if "rho" in assignments:
            rho = float(assignments["rho"])
            require(0 < rho <= 1, f"rho must be in (0, 1], got {rho}")
            changes["s"] = max(1, int(round(rho * d)))
        world = world.replace(**changes)
    if not fixed:
        world = world.replace(seed=int(base_world.seed) + int(seed))

    changes: dict[str, Any] = {k[len("train."):]: _plain(v) for k, v in assignments.items()
                               if k.startswith("train.")}
    if "width_over_n" in assignments:
        w = float(assignments["width_over_n"])
        require(w > 0, f"width_over_n must be > 0, got {w}")
        changes["width"] = max(1, int(round(w * int(world.n))))
    if "k_over_s" in assignments:
        r = float(assignments["k_over_s"])
        require(r > 0, f"k_over_s must be > 0, got {r}")
        changes["k"] = max(1, int(round(r * world_expected_l0(world))))
    if "p_over_f" in assignments:
        r = float(assignments["p_over_f"])
        require(r > 0, f"p_over_f must be > 0, got {r}")
        p = r * world_mean_frequency(world)
        require(0 < p <= 1, f"p_over_f * f must be in (0, 1], got {p:.4g} (p_over_f={r})")
        changes[BA_TARGET_PARAM] = p
    changes["seed"] = int(seed)
    train = _apply_train_changes(base_train, changes)
    return world, train


def _apply_train_changes(base_train, changes: dict[str, Any]):
    """All changes at once (so e.g. a new method and its k are validated together): TrainConfig
    fields by name, anything else as a method parameter; a new method starts from its defaults, its
    lr and lr schedule included (unless ``changes`` sets them)."""
    data = base_train.to_dict()
    fields = set(data)
    if "method" in changes and changes["method"] != data["method"]:
        # the new method's own parameters and learning rate (as TrainConfig.with_param): the base's lr
        # was resolved for the base's method
        data.update(params={}, lr=None, lr_schedule=None)
    params = dict(data["params"])
    for name, value in changes.items():
        if name in fields and name != "params":
            data[name] = value
        else:
            params[name] = value
    data["params"] = params
    return type(base_train).from_dict(data)


_WORLD_STATS: dict[str, tuple[float, float]] = {}


def _world_stats(world_cfg) -> tuple[float, float]:
    key = world_cfg.config_hash()
    if key not in _WORLD_STATS:
        w = build_world(world_cfg)
        _WORLD_STATS[key] = (float(w.f), float(w.expected_l0))
    return _WORLD_STATS[key]


def world_mean_frequency(world_cfg) -> float:
    """The world's mean occurrence frequency f (= expected L0 / n), from its config alone."""
    return _world_stats(world_cfg)[0]


def world_expected_l0(world_cfg) -> float:
    """The world's expected number of active features per sample."""
    return _world_stats(world_cfg)[1]


def _plain(v):
    """numpy scalars -> Python scalars, so configs stay JSON-clean and hash stably."""
    if isinstance(v, (np.generic,)):
        return v.item()
    return v


__all__ = ["Axis", "Cell", "SweepSpec", "resolve", "cell_id_for", "DERIVED_PARAMETERS"]
