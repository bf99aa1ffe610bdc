"""Shared test settings: deterministic, single-threaded torch, a CI-sized hypothesis profile."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch
from hypothesis import HealthCheck, settings

# One thread: the suite runs beside other work on 2 cores, where 2 threads per process thrash.
torch.set_num_threads(1)

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
