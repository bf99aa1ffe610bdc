"""What a training run's history says about how it got there: samples to recovery, and whether bias
adaptation did its job (per group: target, achieved frequency, biases at a bound).

A good score from a mechanism that is not doing its job is a bug, so ``polysemy train`` reports these
beside the recovery metrics and warns when biases end at a bound.
"""

from __future__ import annotations

import math
import re

import pandas as pd

RECOVERY_TAU = "frr_0.9"     # the history column samples_to_recovery reads
RECOVERY_LEVEL = 0.95        # FRR(0.9) that counts as recovered (our choice, issue 9)
BOUND_WARNING = 0.05         # warn when more than this fraction of biases ends at a bound (issue 9)
_GROUP_COLUMN = re.compile(r"^g(\d+)_(target|freq|at_bound)$")


def samples_to_recovery(points, level: float = RECOVERY_LEVEL) -> int | None:
    """Samples seen at the first point where FRR(0.9) >= ``level``; None if never (or if no point has
    recovery, e.g. a run trained without the truth). ``points``: a training history (DataFrame) or a
    recovery curve (a list of dicts, as the peers record), each row with ``samples`` and ``frr_0.9``.
    Resolution: the spacing of the points (the history's ``log_every``)."""
    rows = points.to_dict("records") if isinstance(points, pd.DataFrame) else points
    for row in rows:
        value = row.get(RECOVERY_TAU)
        if value is not None and value >= level:      # NaN (a row logged without truth) never counts
            return int(row["samples"])
    return None


def adaptation_report(history: pd.DataFrame) -> list[dict] | None:
    """Per adaptation group, at the last logged point: ``target`` (its target frequency), ``achieved``
    (the mean firing frequency of its neurons over the last adaptation window) and ``at_bound`` (the
    fraction of its biases at the floor or at 0). None for methods without bias adaptation."""
    if history.empty:
        return None
    last = history.iloc[-1]
    groups: dict[int, dict] = {}
    for column in history.columns:
        match = _GROUP_COLUMN.match(column)
        if match and not (isinstance(last[column], float) and math.isnan(last[column])):
            groups.setdefault(int(match.group(1)), {})[match.group(2)] = float(last[column])
    if not groups:
        return None
    return [{"group": k, "target": g.get("target"), "achieved": g.get("freq"), "at_bound": g.get("at_bound")}
            for k, g in sorted(groups.items())]


def bound_warning(history: pd.DataFrame, threshold: float = BOUND_WARNING) -> str | None:
    """A one-line warning when more than ``threshold`` of the biases ended at a bound, else None."""
    if history.empty or "bias_at_bound" not in history.columns:
        return None
    fraction = float(history["bias_at_bound"].iloc[-1])
    if not fraction > threshold:
        return None
    return (f"warning: {100 * fraction:.1f}% of the biases ended at a bound (floor or 0), so their neurons "
            "cannot reach their target frequency; see 'adaptation' in --json. Usual causes: inputs far from "
            "O(1) with input_scale='none', or targets below what the data allows (lower ltf/bias_floor).")
