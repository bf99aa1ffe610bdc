"""Snippet pages: what a researcher reads to judge a feature (one self-contained HTML file per SAE).

For each chosen feature, from one pass over the training store (normalised, sinks skipped):
- its top activations, and examples drawn at random (seeded) from each quarter of its non-zero
  activations by rank (quantile bands 0-25%, 25-50%, 50-75%, 75-100%), as Anthropic's feature pages and
  Neuronpedia show them: the top alone hides what the feature does most of the time;
- each example as text: ``window`` tokens before (crossing into the previous context: the contexts are
  consecutive pieces of one token stream, so the left context of a token at position 1 is the end of the
  previous context) and ``window // 2`` after, decoded TOGETHER so byte-level tokens merge into their
  characters, with the activating token's characters marked;
- duplicates removed: two examples whose rendered text is the same are shown once;
- a histogram of the feature's non-zero activation values, and its firing frequency (with GBA's group
  target when given).
The page opens with the histogram of log10 firing frequency over all latents (the "feature density"
histogram), dead latents counted apart.
"""

from __future__ import annotations

import html

import numpy as np
import torch

from .store import ActivationStore

BANDS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))


def choose_features(firing_frequency: np.ndarray, n: int, seed: int = 0) -> list[int]:
    """``n`` features drawn at random (seeded) among those that fire, most frequent first."""
    alive = np.flatnonzero(firing_frequency > 0)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(alive, size=min(n, len(alive)), replace=False) if len(alive) else np.array([], int)
    return [int(m) for m in sorted(chosen, key=lambda m: -firing_frequency[m])]


@torch.no_grad()
def feature_activations(sae, store: ActivationStore, features: list[int], chunk: int = 4096,
                        max_tokens: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per feature: (non-zero values, their stream indices), over the store (its first shards holding
    ``max_tokens`` if given). The stream index of shard s, row r is ``s * rows_per_full_shard + r``:
    position ``i`` of the concatenated context bodies."""
    idx = torch.tensor(features, dtype=torch.int64)
    device = sae.W_dec.device
    per = store.context_length - 1
    rows_per_shard = int(store.meta["contexts_per_shard"]) * per
    values = [[] for _ in features]
    where = [[] for _ in features]
    for shard in range(store.n_shards):
        if max_tokens is not None and shard * rows_per_shard >= max_tokens:
            break
        x, rows = store.normalized_shard(shard)
        for start in range(0, x.shape[0], chunk):
            acts = sae.encode(x[start:start + chunk].to(device))[:, idx.to(device)].float().cpu()   # [n, F]
            stream = rows[start:start + chunk] + shard * rows_per_shard
            nz_row, nz_f = torch.nonzero(acts > 0, as_tuple=True)
            for f in range(len(features)):
                sel = nz_row[nz_f == f]
                values[f].append(acts[sel, f].numpy())
                where[f].append(stream[sel].numpy())
    return [(np.concatenate(v) if v else np.zeros(0), np.concatenate(w) if w else np.zeros(0, np.int64))
            for v, w in zip(values, where)]


def pick_examples(values: np.ndarray, top: int, per_band: int, seed: int = 0) -> list[tuple[str, int]]:
    """(band label, index into ``values``): the ``top`` largest, then ``per_band`` random ones per band."""
    if values.size == 0:
        return []
    order = np.argsort(-values, kind="stable")
    picks = [("top", int(i)) for i in order[:top]]
    ranked = order[::-1]   # ascending
    rng = np.random.default_rng(seed)
    for lo, hi in BANDS:
        band = ranked[int(lo * len(ranked)):max(int(hi * len(ranked)), int(lo * len(ranked)) + 1)]
        band = band[~np.isin(band, [i for _, i in picks])]
        for i in rng.choice(band, size=min(per_band, len(band)), replace=False) if len(band) else []:
            picks.append((f"{int(lo * 100)}-{int(hi * 100)}%", int(i)))
    return picks


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def render(tokenizer, stream: np.ndarray, at: int, window: int) -> tuple[str, str]:
    """(html, plain text) of the window around stream index ``at``, decoded together (byte-level tokens
    merge), the activating token's characters marked."""
    lo, hi = max(0, at - window), min(len(stream), at + 1 + window // 2)
    ids = [int(t) for t in stream[lo:hi]]
    k = at - lo
    full = tokenizer.decode(ids)
    a = _common_prefix(tokenizer.decode(ids[:k]), full)
    b = max(_common_prefix(tokenizer.decode(ids[:k + 1]), full), a + 1 if a < len(full) else a)
    text = (f"{'&hellip;' if lo > 0 else ''}{html.escape(full[:a])}<mark>{html.escape(full[a:b]) or '&nbsp;'}"
            f"</mark>{html.escape(full[b:])}{'&hellip;' if hi < len(stream) else ''}")
    return text, full


def histogram_svg(values: np.ndarray, bins: int = 30, width: int = 260, height: int = 60, log_x: bool = False,
                  label: str = "") -> str:
    """A small inline SVG bar histogram of ``values``."""
    v = np.log10(values[values > 0]) if log_x else values
    if v.size == 0:
        return ""
    counts, edges = np.histogram(v, bins=bins)
    top = counts.max() or 1
    bw = width / bins
    bars = "".join(f"<rect x='{i * bw:.1f}' y='{height - height * c / top:.1f}' width='{bw - 1:.1f}' "
                   f"height='{height * c / top:.1f}' fill='#4a7ab5'/>" for i, c in enumerate(counts))
    lo, hi = (f"1e{edges[0]:.1f}", f"1e{edges[-1]:.1f}") if log_x else (f"{edges[0]:.3g}", f"{edges[-1]:.3g}")
    return (f"<svg width='{width}' height='{height + 14}' style='vertical-align:top'>{bars}"
            f"<text x='0' y='{height + 12}' font-size='10'>{lo}</text>"
            f"<text x='{width}' y='{height + 12}' font-size='10' text-anchor='end'>{hi}</text>"
            f"<text x='{width / 2}' y='{height + 12}' font-size='10' text-anchor='middle'>{html.escape(label)}</text></svg>")


def snippets_page(sae, store: ActivationStore, tokenizer, features: list[int], firing_frequency: np.ndarray,
                  title: str, per_feature: int = 8, window: int = 24, notes: dict | None = None,
                  per_band: int = 2, seed: int = 0, max_tokens: int | None = None) -> str:
    """The HTML page (see the module docstring); ``per_feature`` top examples plus ``per_band`` per band."""
    tokens = store.tokens()[:, 1:].reshape(-1).numpy()   # the context bodies, in stream order
    found = feature_activations(sae, store, features, max_tokens=max_tokens)
    dead = int((firing_frequency == 0).sum())
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1150px;margin:2em auto}"
             "mark{background:#ffb000;font-weight:bold}td{padding:2px 8px;vertical-align:top}"
             ".v{color:#555;text-align:right;font-family:monospace;white-space:nowrap}"
             ".b{color:#888;font-size:0.8em;white-space:nowrap}h2{font-size:1.05em;margin-top:1.6em}</style>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>Feature density: log10 of each latent's firing frequency on the held-out tokens "
             f"({dead} of {firing_frequency.size} latents never fired and are not drawn).</p>",
             histogram_svg(firing_frequency, bins=40, width=520, height=80, log_x=True, label="firing frequency"),
             "<p>Each feature: a histogram of its non-zero activations on the training text, its strongest "
             "activations (<span class='b'>top</span>), then random ones from each quarter of its activations "
             "by rank. The activating token is <mark>marked</mark>; the number is the activation. The text "
             "before a token runs across context boundaries; repeated texts are shown once.</p>"]
    for m, (values, where) in zip(features, found):
        extra = "" if notes is None or m not in notes else f", {html.escape(notes[m])}"
        parts.append(f"<h2>feature {m}: fires on {100 * firing_frequency[m]:.3g}% of held-out tokens{extra}; "
                     f"{values.size} activations in the store</h2>")
        parts.append(histogram_svg(values, label="activation"))
        parts.append("<table>")
        seen = set()
        for band, i in pick_examples(values, per_feature, per_band, seed=seed + m):
            text, plain = render(tokenizer, tokens, int(where[i]), window)
            if plain in seen:
                continue
            seen.add(plain)
            parts.append(f"<tr><td class='b'>{band}</td><td class='v'>{float(values[i]):.3f}</td><td>{text}</td></tr>")
        parts.append("</table>")
    return "\n".join(parts)
