"""The identifiability conditions H1, H2, H3 and V1 (docs/paper.md section 2), each checked two ways:
``predicted`` from a world's config, and ``measured`` from a sample (a ``Batch`` with ground truth).

Every check reports ``value``, ``threshold``, ``margin`` and ``holds``. The margin is signed so that a
positive margin means the condition holds: ``threshold - value`` for "value <= threshold" conditions,
``value - threshold`` for "value >= threshold" ones. The paper gives the forms, not the constants
([inferred]/[unknown]); the constants are the fields of :class:`ConditionConstants` (our choices):

- H1 row sparsity: the rows of H are sparse enough for their codes to be determined by V. value = the
  ``h1_quantile`` of a row's L0 (its bound when the support bounds it); threshold =
  ``c_h1 * rho_W^+(d/n) * d``, the Donoho–Tanner weak threshold for non-negative l1 recovery
  (``bands.donoho_tanner_rho``). Default c_h1 = 1, h1_quantile = 0.99.
- H2 non-degeneracy: value = smallest non-zero coefficient / mean non-zero coefficient; threshold =
  ``c_h2`` (default 0.1). Holds only if, in addition, every feature occurs and H has full column rank
  (measured: sigma_min(H) / sigma_max(H) > ``rank_tol``, default 1e-6; predicted: every f_i > 0 and the
  coefficients are not all equal across always-co-occurring features). The note says which part fails.
- H3 low co-occurrence: value = rho2 = max_{i!=j} P(h_j > 0 | h_i > 0); threshold = ``c_h3 / sqrt(n)``
  (default c_h3 = 1: the paper's experiment sees the transition at rho2 ~ 1/sqrt(n)).
- V1 incoherence: value = mu(V) = max_{i!=j} |cos(v_i, v_j)|; threshold = ``c_v1 * sqrt(ln n / d)``
  (default c_v1 = 2.5: Gaussian dictionaries, the theorem's model, sit near 2 sqrt(ln n / d) and pass;
  deliberately coherent ones fail). Measured on the world's realised dictionary.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..configs import Config
from ..errors import require, require_float_range
from ..simulate import World
from ..simulate.stats import coherence, empirical_frequencies, empirical_rho2
from .bands import donoho_tanner_rho
from .world_predictions import predicted_quantities

CONDITION_NAMES = ("H1", "H2", "H3", "V1")
SOURCES = {
    "H1": "docs/paper.md section 2 (row sparsity); threshold: Donoho-Tanner weak l1 threshold (our choice)",
    "H2": "docs/paper.md section 2 (non-degeneracy); constant c_h2 our choice",
    "H3": "docs/paper.md section 2 (low co-occurrence, rho2 << n^-1/2)",
    "V1": "docs/paper.md section 2 (incoherence); constant c_v1 our choice",
}
MAX_RANK_FEATURES = 4096   # above this many features the measured rank check is skipped (n x n eigvals)


@dataclass(frozen=True)
class ConditionConstants(Config):
    """Constants of the condition thresholds (module docstring; all our choices)."""

    c_h1: float = 1.0
    h1_quantile: float = 0.99
    c_h2: float = 0.1
    rank_tol: float = 1e-6
    c_h3: float = 1.0
    c_v1: float = 2.5

    def validate(self) -> None:
        for name in ("c_h1", "c_h3", "c_v1"):
            require_float_range(name, getattr(self, name), 0.0, math.inf, low_open=True, high_open=True)
        require_float_range("h1_quantile", self.h1_quantile, 0.0, 1.0, low_open=True)
        require_float_range("c_h2", self.c_h2, 0.0, 1.0)
        require_float_range("rank_tol", self.rank_tol, 0.0, 1.0, low_open=True, high_open=True)


@dataclass(frozen=True)
class ConditionReport:
    """One condition, checked one way. ``margin > 0`` iff it holds (up to the extra H2 checks)."""

    name: str
    source: str          # "predicted" | "measured"
    value: float
    threshold: float
    margin: float
    holds: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _report(name: str, source: str, value: float, threshold: float, *, at_most: bool,
            extra_ok: bool = True, note: str = "") -> ConditionReport:
    margin = threshold - value if at_most else value - threshold
    return ConditionReport(name=name, source=source, value=float(value), threshold=float(threshold),
                           margin=float(margin), holds=bool(margin >= 0 and extra_ok),
                           note=f"{SOURCES[name]}. {note}".strip())


def thresholds(n: int, d: int, constants: ConditionConstants) -> dict[str, float]:
    """The threshold of each condition for an n-feature, d-dimensional world."""
    return {
        "H1": constants.c_h1 * donoho_tanner_rho(d / n) * d,
        "H2": constants.c_h2,
        "H3": constants.c_h3 / math.sqrt(n),
        "V1": constants.c_v1 * math.sqrt(math.log(n) / d) if n > 1 else math.inf,
    }


def _h3_structure_note(cfg) -> str:
    """Why a hierarchical world fails H3 by construction (empty for other supports)."""
    kind = getattr(cfg, "support_kind", None)  # a saved SAELens world has none
    if getattr(kind, "hierarchical", False) and cfg.child_probability > 0 and cfg.n > cfg.n_parents:
        return ("a child fires only with its parent, so P(parent | child) = 1: a hierarchy breaks H3 by "
                "construction (children of one parent are mutually exclusive). ")
    return ""


def predicted_conditions(cfg_or_world, constants: ConditionConstants | None = None) -> list[ConditionReport]:
    """H1, H2, H3, V1 from the config alone."""
    constants = constants or ConditionConstants()
    q = predicted_quantities(cfg_or_world, quantile=constants.h1_quantile)
    th = thresholds(q.n, q.d, constants)
    occurs = q.min_frequency > 0
    h2_note = (f"every feature occurs: {'yes' if occurs else 'no'} (min f_i = {q.min_frequency:.3g}); "
               f"full column rank expected: {'yes' if q.full_rank_expected else 'no'}")
    return [
        _report("H1", "predicted", q.l0_high, th["H1"], at_most=True, note=f"L0 from {q.l0_high_source}"),
        _report("H2", "predicted", q.min_relative_coefficient, th["H2"], at_most=False,
                extra_ok=occurs and q.full_rank_expected, note=h2_note),
        _report("H3", "predicted", q.rho2, th["H3"], at_most=True,
                note=_h3_structure_note(getattr(cfg_or_world, "config", cfg_or_world)).strip()),
        _report("V1", "predicted", q.coherence, th["V1"], at_most=True, note=q.coherence_source),
    ]


def _row_l0(batch) -> np.ndarray:
    idx = np.asarray(batch.indices.detach().cpu().numpy() if hasattr(batch.indices, "detach") else batch.indices)
    val = np.asarray(batch.values.detach().cpu().numpy() if hasattr(batch.values, "detach") else batch.values)
    return ((idx >= 0) & (val > 0)).sum(axis=1), idx, val


def _column_rank_ratio(idx: np.ndarray, val: np.ndarray, n: int) -> float:
    """sigma_min / sigma_max of the dense code matrix H [B, n], via its n x n Gram matrix (chunked)."""
    gram = np.zeros((n, n))
    step = max(1, 4_000_000 // n)
    for a in range(0, idx.shape[0], step):
        i, v = idx[a:a + step], val[a:a + step]
        dense = np.zeros((i.shape[0], n))
        rows, cols = np.nonzero(i >= 0)
        np.add.at(dense, (rows, i[rows, cols]), v[rows, cols])
        gram += dense.T @ dense
    eig = np.linalg.eigvalsh(gram)
    top = eig[-1]
    return float(math.sqrt(max(eig[0], 0.0) / top)) if top > 0 else 0.0


def measured_conditions(cfg_or_world, batch, constants: ConditionConstants | None = None) -> list[ConditionReport]:
    """H1, H2, H3 from ``batch`` (a ``Batch`` with indices/values) and V1 from the world's realised V."""
    constants = constants or ConditionConstants()
    world = cfg_or_world if isinstance(cfg_or_world, World) else World(cfg_or_world)
    n, d = world.n, world.d
    th = thresholds(n, d, constants)
    l0, idx, val = _row_l0(batch)
    require(l0.size > 0, "the sample for measured conditions must hold at least one row")
    B = int(l0.size)

    l0_q = float(np.quantile(l0, constants.h1_quantile, method="higher"))
    nonzero = val[(idx >= 0) & (val > 0)]
    rel_min = float(nonzero.min() / nonzero.mean()) if nonzero.size else 0.0
    freqs = np.asarray(empirical_frequencies(batch, n))
    missing = int((freqs <= 0).sum())
    if n <= MAX_RANK_FEATURES:
        ratio = _column_rank_ratio(idx, val, n)
        full_rank = ratio > constants.rank_tol
        rank_note = f"sigma_min/sigma_max(H) = {ratio:.3g} ({'full' if full_rank else 'deficient'} column rank)"
    else:
        full_rank, rank_note = missing == 0, f"rank not computed for n > {MAX_RANK_FEATURES}"
    h2_note = f"features never seen in {B} samples: {missing}; {rank_note}"
    rho2 = float(empirical_rho2(batch, n))
    h3_note = f"{_h3_structure_note(world.config)}over {B} samples"
    if math.isnan(rho2):
        h3_note = f"undetermined: no feature was seen often enough in {B} samples; draw more samples"
    mu = float(coherence(world.V))
    return [
        _report("H1", "measured", l0_q, th["H1"], at_most=True,
                note=f"{constants.h1_quantile:g}-quantile of L0 over {B} samples (max {int(l0.max())})"),
        _report("H2", "measured", rel_min, th["H2"], at_most=False, extra_ok=missing == 0 and full_rank,
                note=h2_note),
        _report("H3", "measured", rho2, th["H3"], at_most=True, note=h3_note),
        _report("V1", "measured", mu, th["V1"], at_most=True, note="realised dictionary"),
    ]


def check_conditions(cfg, batch=None, constants: ConditionConstants | None = None) -> list[ConditionReport]:
    """Predicted reports for H1, H2, H3, V1, then (with ``batch``) the measured ones."""
    world = cfg if isinstance(cfg, World) else World(cfg)
    reports = predicted_conditions(world, constants)
    if batch is not None:
        reports += measured_conditions(world, batch, constants)
    return reports
