"""Top-activating text snippets for a sample of SAE features: the page researchers read first.

For each chosen feature we scan the store (normalised, sinks skipped), keep the ``per_feature`` tokens
where it is largest, and show each as its context (``window`` tokens before, ``window // 2`` after)
with the activating token marked. The page is one self-contained HTML file.
"""

from __future__ import annotations

import html

import numpy as np
import torch

from .store import ActivationStore


def choose_features(firing_frequency: np.ndarray, n: int, seed: int = 0) -> list[int]:
    """``n`` features drawn at random (seeded) among those that fire, most frequent first."""
    alive = np.flatnonzero(firing_frequency > 0)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(alive, size=min(n, len(alive)), replace=False) if len(alive) else np.array([], int)
    return [int(m) for m in sorted(chosen, key=lambda m: -firing_frequency[m])]


@torch.no_grad()
def top_activations(sae, store: ActivationStore, features: list[int], per_feature: int = 8,
                    chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """(values ``[F, K]``, locations ``[F, K, 2]`` = (shard, row)) of each feature's largest activations."""
    F = len(features)
    best_v = torch.full((F, per_feature), -float("inf"))
    best_loc = torch.full((F, per_feature, 2), -1, dtype=torch.int64)
    idx = torch.tensor(features, dtype=torch.int64)
    device = sae.W_dec.device
    for shard in range(store.n_shards):
        x, rows = store.normalized_shard(shard)
        for start in range(0, x.shape[0], chunk):
            acts = sae.encode(x[start:start + chunk].to(device))[:, idx.to(device)].float().cpu().T  # [F, n]
            loc = torch.stack([torch.full_like(rows[start:start + chunk], shard), rows[start:start + chunk]], -1)
            v = torch.cat([best_v, acts], dim=1)
            l_ = torch.cat([best_loc, loc[None].expand(F, -1, -1)], dim=1)
            top = v.topk(per_feature, dim=1)
            best_v = top.values
            best_loc = torch.gather(l_, 1, top.indices[..., None].expand(-1, -1, 2))
    return best_v, best_loc


def _snippet(tokenizer, ids: list[int], pos: int, window: int) -> str:
    lo, hi = max(1, pos - window), min(len(ids), pos + 1 + window // 2)
    left = tokenizer.decode(ids[lo:pos])
    mid = tokenizer.decode(ids[pos:pos + 1])
    right = tokenizer.decode(ids[pos + 1:hi])
    return (f"{'&hellip;' if lo > 1 else ''}{html.escape(left)}<mark>{html.escape(mid) or '&nbsp;'}</mark>"
            f"{html.escape(right)}{'&hellip;' if hi < len(ids) else ''}")


def snippets_page(sae, store: ActivationStore, tokenizer, features: list[int], firing_frequency: np.ndarray,
                  title: str, per_feature: int = 8, window: int = 16, notes: dict | None = None) -> str:
    """The HTML page: one block per feature, each snippet with its activation and the token marked."""
    values, locs = top_activations(sae, store, features, per_feature)
    shards = {}
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
             "mark{background:#ffb000;font-weight:bold}td{padding:2px 8px;vertical-align:top}"
             ".v{color:#555;text-align:right;font-family:monospace}h2{font-size:1.05em;margin-top:1.4em}</style>",
             f"<h1>{html.escape(title)}</h1>",
             "<p>Each feature's strongest activations on the stored text; the activating token is "
             "<mark>marked</mark>, the number is the activation.</p>"]
    for f_i, m in enumerate(features):
        extra = "" if notes is None or m not in notes else f", {html.escape(notes[m])}"
        parts.append(f"<h2>feature {m}: fires on {100 * firing_frequency[m]:.3g}% of tokens{extra}</h2><table>")
        for k in range(values.shape[1]):
            if not torch.isfinite(values[f_i, k]) or values[f_i, k] <= 0:
                continue
            shard, row = (int(t) for t in locs[f_i, k])
            if shard not in shards:
                shards[shard] = store.shard(shard)[1]
            c, p = store.row_location(row)
            text = _snippet(tokenizer, shards[shard][c].tolist(), p, window)
            parts.append(f"<tr><td class='v'>{float(values[f_i, k]):.3f}</td><td>{text}</td></tr>")
        parts.append("</table>")
    return "\n".join(parts)
