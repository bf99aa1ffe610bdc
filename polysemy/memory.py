"""Memory guards: estimate what a run will allocate and refuse, before allocating, what cannot fit.

``available_bytes()`` reads ``MemAvailable`` from ``/proc/meminfo`` (the kernel's estimate of what can be
allocated without swapping), falling back to ``os.sysconf`` (available physical pages x page size).
``require_memory(terms)`` sums named estimates, each labelled with the options that set it, and raises a
one-line ConfigError naming the largest term, the estimate and what is available. The estimates are
deliberately rough upper bounds (a few float32 copies of each large tensor): their job is to stop a
request that is off by orders of magnitude (terabytes on a laptop) in a second instead of after minutes.
"""

from __future__ import annotations

import os

from .errors import ConfigError

FLOAT32 = 4
FLOAT64 = 8


def available_bytes() -> int | None:
    """Memory available to a new allocation, in bytes (None when the platform does not say)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def require_memory(terms: dict[str, float], available: int | None = None) -> None:
    """Raise ConfigError when the estimated bytes ``terms`` (label -> bytes) exceed what is available.

    Labels name the options behind each term, e.g. ``{"--n x --d (the true dictionary)": 8 * n * d}``.
    """
    available = available_bytes() if available is None else available
    if available is None or not terms:
        return
    total = float(sum(terms.values()))
    if total <= available:
        return
    label, worst = max(terms.items(), key=lambda kv: kv[1])
    raise ConfigError(f"{label} needs about {format_bytes(worst)} of memory (the whole run about "
                      f"{format_bytes(total)}), more than the {format_bytes(available)} available; lower it")


def training_terms(n: int, d: int, width: int, batch_size: int, eval_samples: int) -> dict[str, float]:
    """Rough peak bytes of training one SAE on a simulated world and scoring it (train and demo).

    - the true dictionary [n, d]: drawn in float64 by numpy, orthonormalised/normalised, kept in float32;
    - the SAE and Adam [width, d]: weights, gradient and two moments (float32), plus a copy;
    - one step [batch, width]: pre-activations, activations, masks and their gradients (about 6 copies);
    - the evaluation: [eval_samples, width] codes and [eval_samples, n] true codes (a few copies each),
      and the [n, width] cosine matrix in float64 (matched by the Hungarian algorithm).
    """
    return {
        "--n x --d (the true dictionary)": 3.0 * FLOAT64 * n * d,
        "--width x --d (the SAE and its optimizer)": 6.0 * FLOAT32 * width * d,
        "--batch-size x --width (one training step)": 6.0 * FLOAT32 * batch_size * (width + d),
        "--eval-samples x --width (the evaluation)": 4.0 * FLOAT32 * eval_samples * (width + n + d),
        "--n x --width (the cosine matrix)": 3.0 * FLOAT64 * n * width,
    }
