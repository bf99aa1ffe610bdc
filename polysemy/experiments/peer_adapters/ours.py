"""polysemy's own methods (``gba`` with its defaults, ``topk`` with a given k) via ``polysemy.sae.train``.

The trainer owns its loop and logs FRR(0.9) and FRR(0.99) against the truth in its ``history`` table
(columns ``samples``, ``seconds``, ``frr_0.9``, ``frr_0.99``); the recovery curve is read from there,
with the log interval set to about 1/24 of the run (logging does not change training). Its
``seconds`` leave out the time of those recovery evaluations (the trainer's clock stops during its
log-point callbacks), as the peers' monitor clock does.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ...sae import TrainConfig, train
from ...sae.trainer import to_cpu
from .base import FittedSystem, RecoveryMonitor


def available() -> tuple[bool, str]:
    """polysemy's own methods are always there (this module imported :mod:`polysemy.sae`)."""
    return True, "polysemy"


def _curve_from_history(history, truth_ND: torch.Tensor) -> list[dict]:
    """Recovery checkpoints from the trainer's history table (columns named like ``frr_0.9``)."""
    if history is None or len(history) == 0:
        return []
    cols = {c.lower(): c for c in history.columns}
    frr09 = next((cols[c] for c in ("frr_0.9", "frr0.9", "frr_09", "frr@0.9") if c in cols), None)
    samples = next((cols[c] for c in ("samples", "n_samples") if c in cols), None)
    seconds = next((cols[c] for c in ("seconds", "elapsed", "time") if c in cols), None)
    if frr09 is None or samples is None:
        return []
    frr099 = next((cols[c] for c in ("frr_0.99", "frr0.99", "frr_099") if c in cols), None)
    out = []
    for _, row in history.iterrows():
        value = row[frr09]
        if value != value:  # NaN: a row logged without recovery
            continue
        out.append({"samples": int(row[samples]),
                    "seconds": float(row[seconds]) if seconds is not None else float("nan"),
                    "frr_0.9": float(value),
                    "frr_0.99": float(row[frr099]) if frr099 is not None else float("nan")})
    return out


def fit(method: str, stream: Iterator[torch.Tensor], *, d: int, width: int, budget: int, seed: int,
        monitor: RecoveryMonitor, truth_ND: torch.Tensor, k: int | None = None,
        device: str = "cpu", batch_size: int | None = None) -> FittedSystem:
    """Train polysemy's ``method`` at its default settings (plus ``k`` for TopK, and ``batch_size`` if
    given: ``stream`` must then yield batches of that size) on ``budget`` samples."""
    cfg = TrainConfig(method=method, width=width, seed=seed)
    if batch_size is not None:
        cfg = cfg.replace(batch_size=int(batch_size))
    if k is not None:
        cfg = cfg.with_param("k", int(k))
    steps = max(1, budget // cfg.batch_size)
    # Logging does not change training; log often enough for a recovery curve (~24 points).
    cfg = cfg.replace(steps=steps, log_every=max(1, steps // 24))
    monitor.start()
    result = train(cfg, stream, d, truth=truth_ND, progress=False, device=device)
    if torch.device(device).type != "cpu":
        result = to_cpu(result)
    seconds = float(getattr(result, "seconds", monitor.training_seconds))
    model = result.model
    model.eval()
    curve = _curve_from_history(getattr(result, "history", None), truth_ND)
    params = {"method": method, "batch_size": cfg.batch_size, "lr": cfg.lr, "steps": steps}
    if k is not None:
        params["k"] = int(k)
    return FittedSystem(W_dec=model.W_dec.detach().clone(), encode_fn=model.encode,
                        decode_fn=model.decode, samples=int(getattr(result, "samples", steps * cfg.batch_size)),
                        seconds=seconds, curve=curve, params=params)
