"""torch's thread count for every ``polysemy`` command: one thread unless the user asks for more.

Decision (measured on the shared 2-core machine, see README "Threads"): torch's default is one thread
per core. On a machine that other jobs keep busy, two threads per process spin and wait on each other,
and the demo took 988 s instead of 128 s with one thread; on a quiet machine one thread cost little
(the step is small and memory-bound at these shapes). One thread is also reproducible: float sums
in a matmul can depend on the thread count, and the README's numbers must regenerate.

Order of precedence: ``POLYSEMY_THREADS=N`` (explicit), then ``OMP_NUM_THREADS`` (torch reads it
itself; left alone), then 1. Commands with their own ``--threads`` (bench, peers) set it afterwards,
and the sweep runner gives each of its worker processes cores / jobs threads.
"""

from __future__ import annotations

import os

import torch

from .errors import ConfigError

ENV = "POLYSEMY_THREADS"
DEFAULT_THREADS = 1


def requested_threads() -> int | None:
    """The thread count to set: POLYSEMY_THREADS, else None when OMP_NUM_THREADS is set, else 1."""
    text = os.environ.get(ENV)
    if text is not None and text.strip():
        try:
            value = int(text)
        except ValueError:
            value = 0
        if not 1 <= value <= 1024:
            raise ConfigError(f"{ENV} must be an integer in [1, 1024], got {text!r}")
        return value
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return DEFAULT_THREADS


def configure_threads() -> int | None:
    """Apply :func:`requested_threads` to torch; returns the count set, or None."""
    n = requested_threads()
    if n is None:
        return None
    torch.set_num_threads(n)
    return n
