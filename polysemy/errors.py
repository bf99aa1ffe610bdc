"""One error type for bad input, so every entry point can print a one-line message and exit 2.

Raise :class:`ConfigError` (or call :func:`require`) wherever user-supplied input is validated. The
message must name the parameter and the allowed range, e.g.
``ConfigError("s must be an integer in [1, n=128], got 200")``.
"""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """Invalid user input. The CLI prints ``polysemy: error: <message>`` and exits with status 2."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def require_int_range(name: str, value, low: int, high: int | None = None) -> None:
    """Check ``low <= value <= high`` for an integer ``value`` (``high=None``: no upper bound)."""
    ok = isinstance(value, (int,)) and not isinstance(value, bool)
    ok = ok and value >= low and (high is None or value <= high)
    upper = "inf)" if high is None else f"{high}]"
    require(ok, f"{name} must be an integer in [{low}, {upper}, got {value!r}")


def require_float_range(
    name: str,
    value,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Check that ``value`` is a finite number in the interval from ``low`` to ``high``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    ok = math.isfinite(v) or (math.isinf(v) and not math.isfinite(high) and v > 0)
    ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    lb = "(" if low_open else "["
    rb = ")" if high_open else "]"
    require(ok, f"{name} must be in {lb}{low}, {high}{rb}, got {value!r}")
