"""scikit-learn ``MiniBatchDictionaryLearning`` with non-negative codes, trained on our stream.

Classical online dictionary learning (Mairal et al. 2009): per mini-batch, sparse-code the samples
by coordinate-descent lasso with codes constrained ≥ 0 (``positive_code=True``, matching our h ≥ 0), then update the
dictionary. ``partial_fit`` is called on each batch of the shared stream (sklearn's default batch of
256). It is tuned fairly: the harness runs a small grid of the lasso penalty α and reports the best α
(by FRR(0.9), then MCC), saying so. Sparse coding is far slower than an SAE step, so this adapter
also stops at a wall-clock cap and reports the samples it actually consumed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

from .base import FittedSystem, PeerUnavailable, RecoveryMonitor, availability

DEFAULT_BATCH = 256          # MiniBatchDictionaryLearning default batch_size (sklearn >= 1.3)
ALPHA_GRID = (0.03, 0.1, 0.3)  # our choice: spans under- to over-penalised for O(1) coefficients


def _import():
    try:
        from sklearn.decomposition import MiniBatchDictionaryLearning
    except Exception as exc:
        raise PeerUnavailable(f"scikit-learn is not installed ({exc.__class__.__name__}); "
                              "install the extra: pip install -e '.[peers]'") from None
    return MiniBatchDictionaryLearning


def available() -> tuple[bool, str]:
    """Whether scikit-learn imports, and its version (or why not)."""
    return availability(_import, lambda _: f"scikit-learn {__import__('sklearn').__version__}")


def fit(stream: Iterator[torch.Tensor], *, d: int, width: int, budget: int, seed: int,
        monitor: RecoveryMonitor, alpha: float, max_seconds: float | None = None,
        batch_size: int = DEFAULT_BATCH) -> FittedSystem:
    """Fit ``MiniBatchDictionaryLearning(positive_code=True)`` with lasso penalty ``alpha``."""
    MiniBatchDictionaryLearning = _import()
    from sklearn.exceptions import ConvergenceWarning
    model = MiniBatchDictionaryLearning(
        n_components=width, alpha=alpha, batch_size=batch_size, fit_algorithm="cd",
        transform_algorithm="lasso_cd", transform_alpha=alpha, positive_code=True,
        random_state=seed)
    steps = budget // batch_size
    samples = 0
    monitor.start()
    for _ in range(steps):
        x_BD = next(stream).numpy().astype(np.float64)
        with warnings.catch_warnings():  # coordinate descent warns on most batches; we cap iterations
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_BD)
        samples += x_BD.shape[0]
        monitor.after_step(samples, lambda: torch.from_numpy(model.components_).float())
        if max_seconds is not None and monitor.training_seconds >= max_seconds:
            break
    seconds = monitor.training_seconds
    monitor.finish(samples, lambda: torch.from_numpy(model.components_).float())
    rows_MD = torch.from_numpy(model.components_.copy()).float()

    def encode(x_BD: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return torch.from_numpy(model.transform(x_BD.double().numpy())).float()

    return FittedSystem(W_dec=rows_MD, encode_fn=encode, decode_fn=lambda a: a @ rows_MD,
                        samples=samples, seconds=seconds, curve=monitor.curve,
                        params={"alpha": alpha, "batch_size": batch_size,
                                "capped_at_seconds": max_seconds,
                                "stopped_by_time_cap": samples < steps * batch_size})


