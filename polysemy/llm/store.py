"""The on-disk activation store: a folder of shards plus ``meta.json``.

Layout::

    STORE/meta.json               model, layer, site, dtype, context length, token counts, the
                                  normalisation rule and its constants, ``complete``
    STORE/shard-00000.safetensors acts   [C * (T - 1), d] float32 or bfloat16 (``store_dtype``)
                                                        model-scale activations, positions 1..T-1
                                  tokens [C, T]         int64    the C contexts (column 0 = BOS)

Row ``r`` of a shard's ``acts`` is context ``r // (T - 1)``, position ``r % (T - 1) + 1`` of its ``tokens``,
so any activation can be shown as text. Activations are stored at the model's scale; the normaliser in
``meta.json`` (see ``normalize``) is applied when reading, so the rule can be refitted without extracting
again. Shards are written atomically (temporary file, then ``os.replace``), so a finished shard is whole
and an interrupted extraction resumes by skipping the shards that exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import torch
from safetensors.torch import load_file, save_file

from ..errors import ConfigError, require
from ..io import atomic_path
from .normalize import Normalizer

META = "meta.json"
STORE_VERSION = 1


def shard_path(root: Path, index: int) -> Path:
    return Path(root) / f"shard-{index:05d}.safetensors"


def write_shard(root: Path, index: int, acts_ND: torch.Tensor, tokens_CT: torch.Tensor,
                dtype: torch.dtype = torch.float32) -> None:
    """Write one shard atomically, its activations in ``dtype`` (float32 or bfloat16)."""
    with atomic_path(shard_path(root, index)) as tmp:
        save_file({"acts": acts_ND.to(dtype).contiguous().cpu(), "tokens": tokens_CT.long().contiguous().cpu()},
                  str(tmp))


def read_meta(root: str | Path) -> dict | None:
    path = Path(root) / META
    return json.loads(path.read_text()) if path.exists() else None


def _meta_int(key: str, doc: str) -> property:
    """A read-only property: ``int(self.meta[key])``."""
    return property(lambda self: int(self.meta[key]), doc=doc)


class ActivationStore:
    """Read access to a complete store: shards, token ids, normalised activations, a training stream."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta = read_meta(self.root)
        require(meta is not None, f"store must be a folder holding {META}, got {str(root)!r}")
        require(meta.get("complete", False), f"store {str(root)!r} is incomplete: run the extraction again to resume it")
        self.meta = meta
        self.normalizer = Normalizer.from_dict(meta["normalization"])

    # -- shape: integers of the metadata -----------------------------------------------------------
    d = _meta_int("d", "Width of the stored activations.")
    n_shards = _meta_int("n_shards", "Number of shard files.")
    context_length = _meta_int("context_length", "Tokens per context, BOS included.")
    n_tokens = _meta_int("n_tokens", "Stored activations (all positions but BOS, sinks included).")

    # -- reading -----------------------------------------------------------------------------------
    def shard(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(acts ``[rows, d]`` float32 at model scale, tokens ``[C, T]``) of shard ``index``."""
        require(0 <= index < self.n_shards, f"shard index must be in [0, {self.n_shards - 1}], got {index}")
        data = load_file(str(shard_path(self.root, index)))
        return data["acts"].float(), data["tokens"]

    def tokens(self) -> torch.Tensor:
        """All contexts ``[N_contexts, T]`` in store order."""
        return torch.cat([self.shard(i)[1] for i in range(self.n_shards)])

    def normalized_shard(self, index: int, drop_sinks: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised acts ``[rows', d]``, their row indices within the shard); sinks dropped if asked."""
        acts, _ = self.shard(index)
        rows = torch.arange(acts.shape[0])
        if drop_sinks:
            keep = ~self.normalizer.is_sink(acts)
            acts, rows = acts[keep], rows[keep]
        return self.normalizer.apply(acts), rows

    def activations(self, max_tokens: int | None = None, drop_sinks: bool = True) -> torch.Tensor:
        """Normalised activations ``[N, d]`` in store order (the first ``max_tokens`` if given)."""
        parts, total = [], 0
        for i in range(self.n_shards):
            x, _ = self.normalized_shard(i, drop_sinks)
            parts.append(x)
            total += x.shape[0]
            if max_tokens is not None and total >= max_tokens:
                break
        out = torch.cat(parts)
        return out if max_tokens is None else out[:max_tokens]

    def stream(self, batch_size: int, seed: int = 0, buffer_shards: int = 4,
               device: str | torch.device = "cpu") -> Iterator[torch.Tensor]:
        """Endless shuffled batches ``[batch_size, d]`` of normalised non-sink activations.

        Each epoch visits the shards in a seeded random order, ``buffer_shards`` at a time; the rows of
        a buffer are shuffled together, and the remainder is carried into the next buffer. Deterministic
        for a given ``seed``. On a GPU each shuffled buffer is pinned once and its batches are copied with
        ``non_blocking=True``, so a copy overlaps the previous training step.
        """
        require(isinstance(batch_size, int) and batch_size >= 1, f"batch_size must be an integer in [1, inf), got {batch_size!r}")
        require(isinstance(buffer_shards, int) and buffer_shards >= 1, f"buffer_shards must be an integer in [1, inf), got {buffer_shards!r}")
        gen = torch.Generator().manual_seed(int(seed))
        carry = torch.empty(0, self.d)
        to_gpu = torch.device(device).type == "cuda"
        while True:
            order = torch.randperm(self.n_shards, generator=gen).tolist()
            for start in range(0, len(order), buffer_shards):
                parts = [carry] + [self.normalized_shard(i)[0] for i in order[start:start + buffer_shards]]
                buffer = torch.cat(parts)
                buffer = buffer[torch.randperm(buffer.shape[0], generator=gen)]
                n_full = buffer.shape[0] // batch_size
                source = buffer.pin_memory() if to_gpu else buffer
                for b in range(n_full):
                    yield source[b * batch_size:(b + 1) * batch_size].to(device, non_blocking=to_gpu)
                carry = buffer[n_full * batch_size:]
            if self.meta["n_kept_tokens"] < batch_size and carry.shape[0] < batch_size:
                raise ConfigError(f"batch_size must be at most the store's {self.meta['n_kept_tokens']} tokens, got {batch_size}")

    def row_location(self, row: int) -> tuple[int, int]:
        """(context index within its shard, position in the context) of a shard row."""
        per = self.context_length - 1
        return row // per, row % per + 1
