"""SAELens (`sae-lens`) TopK, BatchTopK, JumpReLU and ReLU+L1, trained on our stream.

Trained through SAELens's own Python training API on in-memory tensors: its ``SAETrainer`` stepped
batch by batch with the same public seams its ``fit()`` uses (``maybe_reset_sparsity``, ``step``),
so the monitor can look at the decoder between steps. Settings are SAELens's documented defaults:
each architecture's ``*TrainingSAEConfig`` defaults (L1 coefficient 1, JumpReLU L0 coefficient 1,
threshold 0.01, bandwidth 0.05, TopK aux-loss coefficient 1) and the trainer defaults that its toy
runner ``sae_lens.synthetic.train_toy_sae`` uses (Adam, lr 3e-4 constant, batch 1024, grad clip 1,
dead window 1000 steps). Only ``k`` is set by us (true k, or a wrong k). After training the model is
saved with ``save_inference_model`` and reloaded as the inference SAE a SAELens user would get
(BatchTopK becomes a JumpReLU with its learned threshold), and that is what we evaluate.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import torch

from .base import FittedSystem, PeerUnavailable, RecoveryMonitor, availability

ARCHITECTURES = ("topk", "batchtopk", "jumprelu", "standard")
DEFAULT_BATCH = 1024   # sae_lens.synthetic.train_toy_sae default
DEFAULT_LR = 3e-4      # SAETrainerConfig / train_toy_sae default


def _import():
    try:
        import sae_lens  # noqa: F401
    except Exception as exc:  # ImportError, or a broken dependency
        raise PeerUnavailable(f"sae-lens is not installed ({exc.__class__.__name__}); "
                              "install the extra: pip install -e '.[peers]'") from None
    import sae_lens
    return sae_lens


def available() -> tuple[bool, str]:
    """Whether sae-lens imports, and its version (or why not)."""
    return availability(_import, lambda sl: f"sae-lens {getattr(sl, '__version__', '?')}")


def _build(sl, architecture: str, d: int, width: int, k: int | None):
    if architecture == "topk":
        return sl.TopKTrainingSAE(sl.TopKTrainingSAEConfig(d_in=d, d_sae=width, k=int(k)))
    if architecture == "batchtopk":
        return sl.BatchTopKTrainingSAE(sl.BatchTopKTrainingSAEConfig(d_in=d, d_sae=width, k=float(k)))
    if architecture == "jumprelu":
        return sl.JumpReLUTrainingSAE(sl.JumpReLUTrainingSAEConfig(d_in=d, d_sae=width))
    if architecture == "standard":
        return sl.StandardTrainingSAE(sl.StandardTrainingSAEConfig(d_in=d, d_sae=width))
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")


def fit(architecture: str, stream: Iterator[torch.Tensor], *, d: int, width: int, budget: int,
        seed: int, monitor: RecoveryMonitor, k: int | None = None,
        batch_size: int = DEFAULT_BATCH) -> FittedSystem:
    """Train one SAELens SAE on ``budget`` samples of ``stream`` (batches of ``batch_size``)."""
    sl = _import()
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(seed)
    sae = _build(sl, architecture, d, width, k)
    steps = budget // batch_size
    trainer_cfg = SAETrainerConfig(
        total_training_samples=steps * batch_size, train_batch_size_samples=batch_size,
        lr=DEFAULT_LR, lr_end=DEFAULT_LR, device="cpu",
        logger=LoggingConfig(log_to_wandb=False, eval_every_n_wandb_logs=2**31 - 1),
    )
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=stream)
    sae.to("cpu")
    monitor.start()
    for _ in range(steps):
        trainer.maybe_reset_sparsity()
        trainer.step(next(stream))
        trainer.n_training_steps += 1
        monitor.after_step(trainer.n_training_samples, lambda: sae.W_dec.detach())
    seconds = monitor.training_seconds
    monitor.finish(trainer.n_training_samples, lambda: sae.W_dec.detach())

    with tempfile.TemporaryDirectory(prefix="polysemy-saelens-") as tmp:
        sae.save_inference_model(tmp)
        inference = sl.SAE.load_from_disk(tmp, device="cpu")
    inference.eval()
    params = {"architecture": architecture, "lr": DEFAULT_LR, "batch_size": batch_size,
              "library": f"sae-lens {getattr(sl, '__version__', '?')}"}
    if k is not None:
        params["k"] = k
    return FittedSystem(W_dec=inference.W_dec.detach().clone(), encode_fn=inference.encode,
                        decode_fn=inference.decode, samples=trainer.n_training_samples,
                        seconds=seconds, curve=monitor.curve, params=params)
