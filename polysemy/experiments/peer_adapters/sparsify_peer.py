"""EleutherAI sparsify (`eai-sparsify`) TopK ``SparseCoder``, trained on our stream.

sparsify's ``Trainer`` only trains on a language model's hidden states, so this adapter runs the
same per-batch recipe its ``Trainer.fit`` applies in the autoencoding (``loss_fn="fvu"``) path, with
its documented defaults: ``SparseCoderConfig`` (TopK, unit-norm decoder, decoder initialised as the
encoder's transpose), the decoder bias set to the first batch's mean, the decoder renormalised
before every forward pass, loss = FVU (sum of squared errors / total variance of the batch),
the gradient component parallel to each decoder row removed, optimiser ``signum``
(``ScheduleFreeWrapper(SignSGD, momentum=0.95)``) with lr = 5e-3 / sqrt(M / 2^14), AuxK off
(``auxk_alpha=0``). Only ``k`` and the number of latents are set by us. The schedule-free optimiser
keeps averaged weights: evaluations switch it to ``eval()`` (as sparsify does before saving).
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version

import torch

from .base import FittedSystem, PeerUnavailable, RecoveryMonitor, availability

DEFAULT_BATCH = 1024   # sparsify counts batches in sequences; we feed 1024 activation vectors a step


def _import():
    try:
        from schedulefree import ScheduleFreeWrapper
        from sparsify import SparseCoder, SparseCoderConfig
        from sparsify.sign_sgd import SignSGD
    except Exception as exc:
        raise PeerUnavailable(f"eai-sparsify is not installed ({exc.__class__.__name__}); "
                              "install the extra: pip install -e '.[peers]'") from None
    return SparseCoder, SparseCoderConfig, SignSGD, ScheduleFreeWrapper


def available() -> tuple[bool, str]:
    """Whether eai-sparsify imports, and its version (or why not)."""
    return availability(_import, lambda _: f"eai-sparsify {version('eai-sparsify')}")


def default_lr(width: int) -> float:
    """sparsify's signum default: 5e-3 / sqrt(num_latents / 2^14)."""
    return 5e-3 / (width / 2**14) ** 0.5


def fit(stream: Iterator[torch.Tensor], *, d: int, width: int, budget: int, seed: int,
        monitor: RecoveryMonitor, k: int, batch_size: int = DEFAULT_BATCH, device: str = "cpu") -> FittedSystem:
    """Train a sparsify TopK ``SparseCoder`` on ``budget`` samples of ``stream``."""
    SparseCoder, SparseCoderConfig, SignSGD, ScheduleFreeWrapper = _import()
    torch.manual_seed(seed)
    coder = SparseCoder(d, SparseCoderConfig(num_latents=width, k=int(k)), device=device,
                        dtype=torch.float32)
    lr = default_lr(width)
    optimizer = ScheduleFreeWrapper(SignSGD([{"params": coder.parameters(), "lr": lr}]), momentum=0.95)
    optimizer.train()

    def rows_in_eval_mode():
        optimizer.eval()
        rows = coder.W_dec.detach().cpu().clone()
        optimizer.train()
        return rows

    steps = budget // batch_size
    samples = 0
    monitor.start()
    for step in range(steps):
        x_BD = next(stream).to(device)
        if step == 0:
            coder.b_dec.data = x_BD.mean(0)
        coder.set_decoder_norm_to_unit_norm()
        out = coder(x=x_BD, y=x_BD, dead_mask=None)
        out.fvu.backward()
        coder.remove_gradient_parallel_to_decoder_directions()
        optimizer.step()
        optimizer.zero_grad()
        samples += x_BD.shape[0]
        monitor.after_step(samples, rows_in_eval_mode)
    seconds = monitor.training_seconds
    monitor.finish(samples, rows_in_eval_mode)
    optimizer.eval()
    coder.set_decoder_norm_to_unit_norm()
    coder.eval()
    coder.to("cpu")
    width_ = coder.num_latents

    def encode(x_BD: torch.Tensor) -> torch.Tensor:
        top_acts, top_indices, _ = coder.encode(x_BD)
        return torch.zeros(x_BD.shape[0], width_).scatter_(1, top_indices, top_acts.float())

    def decode(acts_BM: torch.Tensor) -> torch.Tensor:
        return acts_BM @ coder.W_dec.detach() + coder.b_dec.detach()

    return FittedSystem(W_dec=coder.W_dec.detach().clone(), encode_fn=encode, decode_fn=decode,
                        samples=samples, seconds=seconds, curve=monitor.curve,
                        params={"k": int(k), "lr": lr, "batch_size": batch_size,
                                "optimizer": "signum (schedule-free SignSGD)"})
