"""Extraction: run the model over token contexts and write the site's activations to a store.

Only the blocks up to the site run (``sites.capture``). Position 0 (BOS, the attention sink) is dropped.
Shards of ``contexts_per_shard`` contexts are written atomically, and a rerun with the same settings
skips the shards that exist, so a killed extraction resumes where it stopped. At the end the
normaliser is fitted on the first ``calibration_tokens`` stored tokens (or a given one is reused, e.g.
the training store's for a held-out store) and ``meta.json`` is marked complete. The normaliser is fitted
as soon as the calibration tokens exist, and each shard's sink tokens are counted while it is still in
memory, so an uninterrupted extraction never reads the store back (a resumed one reads the shards it
did not write itself). ``store_dtype="bfloat16"`` halves the disk and the reading time.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from ..errors import ConfigError, require
from .deps import require_transformers
from .model import LoadedModel
from .normalize import NormalizeConfig, Normalizer
from .sites import capture, check_site
from ..io import write_json_atomic
from .store import META, STORE_VERSION, ActivationStore, read_meta, shard_path, write_shard


def contexts_digest(contexts_CT: torch.Tensor) -> str:
    return hashlib.sha256(contexts_CT.long().contiguous().numpy().tobytes()).hexdigest()[:16]


def extract_activations(
    lm: LoadedModel,
    contexts_CT: torch.Tensor,
    out_dir: str | Path,
    *,
    layer: int,
    site: str = "resid",
    dtype: str = "float32",
    contexts_per_shard: int = 64,
    batch_contexts: int = 16,
    normalize: NormalizeConfig | Normalizer | None = None,
    calibration_tokens: int = 32768,
    progress: bool = True,
    store_dtype: str = "float32",
) -> ActivationStore:
    """Write (or finish) the store at ``out_dir`` for these contexts and return it."""
    check_site(lm.model, layer, site)
    require(contexts_CT.ndim == 2 and contexts_CT.shape[1] >= 2,
            f"contexts must be [N, T>=2] token ids, got shape {tuple(contexts_CT.shape)}")
    require(isinstance(contexts_per_shard, int) and contexts_per_shard >= 1,
            f"contexts_per_shard must be an integer in [1, inf), got {contexts_per_shard!r}")
    require(isinstance(batch_contexts, int) and batch_contexts >= 1,
            f"batch_contexts must be an integer in [1, inf), got {batch_contexts!r}")
    require(store_dtype in ("float32", "bfloat16"), f"store_dtype must be float32 or bfloat16, got {store_dtype!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_ctx, T = contexts_CT.shape
    n_shards = -(-n_ctx // contexts_per_shard)
    transformers = require_transformers()
    identity = {
        "version": STORE_VERSION, "model": lm.name, "layer": layer, "site": site, "dtype": dtype,
        "context_length": int(T), "n_contexts": int(n_ctx), "contexts_sha256": contexts_digest(contexts_CT),
        "contexts_per_shard": contexts_per_shard, "d": lm.d_model, "n_shards": n_shards,
        "transformers_version": transformers.__version__, "store_dtype": store_dtype,
    }
    old = read_meta(out)
    if old is not None:
        mismatch = {k: (old.get(k), v) for k, v in identity.items() if old.get(k) != v}
        if mismatch:
            raise ConfigError(f"out: the store in {str(out)!r} was made with other settings {mismatch} "
                              "(stored, requested); use another folder or delete it")
        same_rule = normalize is None or (isinstance(normalize, NormalizeConfig)
                                          and old.get("normalization", {}).get("config") == normalize.to_dict())
        if old.get("complete") and same_rule:
            return ActivationStore(out)
    write_json_atomic(out / META, {**identity, "complete": False})

    sdtype = torch.bfloat16 if store_dtype == "bfloat16" else torch.float32
    normalizer = normalize if isinstance(normalize, Normalizer) else None
    pending: list[tuple[int, torch.Tensor]] = []   # shards held in memory until the normaliser is fitted
    sinks: dict[int, int] = {}
    seconds, done_tokens = 0.0, 0
    for i in tqdm(range(n_shards), desc=f"extract layer {layer} {site}", unit="shard", disable=not progress):
        if shard_path(out, i).exists():   # resumed: read it only while calibrating
            acts = _read(out, i) if normalizer is None else None
        else:
            ctx = contexts_CT[i * contexts_per_shard:(i + 1) * contexts_per_shard]
            start = time.perf_counter()
            parts = [capture(lm.model, ctx[b:b + batch_contexts], layer, site, dtype).cpu()
                     for b in range(0, ctx.shape[0], batch_contexts)]
            seconds += time.perf_counter() - start
            done_tokens += ctx.numel()
            acts = torch.cat(parts)[:, 1:, :].reshape(-1, lm.d_model).to(sdtype)   # drop position 0 (BOS)
            write_shard(out, i, acts, ctx, sdtype)
            acts = acts.float()   # what readers will see (bf16-rounded when stored so)
        if normalizer is None:
            pending.append((i, acts))
            if sum(a.shape[0] for _, a in pending) >= calibration_tokens or i == n_shards - 1:
                normalizer = Normalizer.fit(torch.cat([a for _, a in pending])[:calibration_tokens], normalize)
                sinks.update({j: int(normalizer.is_sink(a).sum()) for j, a in pending})
                pending = []
        elif acts is not None:
            sinks[i] = int(normalizer.is_sink(acts).sum())
    for i in range(n_shards):   # shards written by an earlier, interrupted run
        if i not in sinks:
            sinks[i] = int(normalizer.is_sink(_read(out, i)).sum())
    n_tokens = n_ctx * (T - 1)
    n_sinks = sum(sinks.values())
    meta = {
        **identity, "complete": True, "n_tokens": n_tokens, "n_kept_tokens": n_tokens - n_sinks,
        "n_sink_tokens": n_sinks, "dropped": "position 0 (BOS) of every context; sink tokens skipped when reading",
        "normalization": normalizer.to_dict(),
        "extraction_seconds_this_run": seconds, "extraction_tokens_this_run": done_tokens,
        "extraction_tokens_per_second": (done_tokens / seconds) if seconds > 0 else None,
        "device": lm.device,
    }
    write_json_atomic(out / META, meta)
    return ActivationStore(out)



def _read(out: Path, index: int) -> torch.Tensor:
    return load_file(str(shard_path(out, index)))["acts"].float()
