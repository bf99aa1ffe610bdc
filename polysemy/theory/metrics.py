"""Recovery metrics: how well learned decoder rows match the true features, and how well an SAE codes.

Every function takes numpy arrays, torch tensors, or any object that exposes decoder rows
(``.W_dec`` of shape [M, d], or ``.decoder_rows``; a ``World`` is accepted through its ``.V``).
Rows are compared by cosine on row-normalised matrices; a zero row has cosine 0 with everything.

Notation: ``truth`` holds the n true features v_i (rows [n, d]); ``learned`` holds the M learned
decoder rows w_m (rows [M, d]); cos_im = <v_i, w_m> / (||v_i|| ||w_m||); a_bm is latent m's activation
on sample b and h_bi the true coefficient of feature i.

The field's numbers under the field's names. ``mcc``, ``uniqueness``, ``precision``, ``recall``,
``f1``, ``accuracy``, ``shrinkage``, ``explained_variance``, ``l0`` and ``dead_fraction`` are computed
exactly as SAELens's synthetic evaluation computes them (``sae_lens.synthetic.eval_sae_on_synthetic_data``,
sae-lens 6.54; checked to 1e-4 by tests/theory/test_metrics_saelens.py against a stored fixture and,
when sae-lens is installed, against SAELens itself):

- ``mcc`` = Hungarian matching (scipy ``linear_sum_assignment``) maximising sum |cos_im| over the
  min(n, M) matched pairs; the mean |cos| over those pairs (SAELens's definition; O'Neill et al.).
  Exact at every size: the |cos| matrix is kept whole in float32 above ``FLOAT64_COST_ENTRIES``
  entries (16,384 x 4,096 took 8 s and 1.44 GB peak on one core here: docs/benchmarks.md).
  ``mcc_method="greedy"`` asks instead for a greedy matching over each feature's
  ``GREEDY_CANDIDATES`` best latents, a lower bound on the Hungarian value (ours).
- ``uniqueness`` = #{argmax_i |cos_im| : every latent m, dead ones included} / M: the distinct true
  features that latents track, per latent (SAELens's definition).
- ``precision``, ``recall``, ``f1``, ``accuracy`` (need ``acts`` and ``truth_codes``): every latent m
  (dead ones included) is a detector of its best feature i(m) = argmax_i |cos_im|; firing is
  a_bm != 0, presence is h_b,i(m) > 0. Per latent P = TP/(TP+FP), R = TP/(TP+FN) (0 when the
  denominator is 0), F1 = 2PR/(P+R) (0 when P+R = 0), accuracy = (TP+TN)/B; each is averaged over all
  M latents (SAELens's definition).
- ``shrinkage`` (needs ``x`` and ``x_hat``) = mean over samples with ||x_b|| > 1e-6 of
  ||x_hat_b|| / ||x_b|| (SAELens's definition; 0 when no sample qualifies).
- ``explained_variance`` (needs ``x`` and ``x_hat``) = 1 - mean_b ||x_b - x_hat_b||^2 / Var(x) with
  Var(x) = mean_b ||x_b||^2 - ||mean_b x_b||^2 (about the *mean*); when Var(x) < 1e-10 it is 1 if the
  mean squared error is < 1e-10, else 0 (SAELens's definition).
- ``l0`` = mean_b #{m : a_bm != 0}; ``dead_fraction`` = #{m : a_bm = 0 for every b} / M over the
  window of ``acts`` (SAELens counts dead latents; we divide by M); ``alive_fraction`` = 1 - that.

polysemy's own variants, under names that say what they are (ours unless a source is given):

- ``frr[tau]`` = (1/n) #{i : max_m cos_im >= tau}. The paper's feature recovery rate (docs/paper.md section 6). The
  cosine is *signed*: features and codes are non-negative, so a neuron pointing at -v_i does not
  recover v_i.
- ``mmcs`` = (1/n) sum_i max_m cos_im (truth -> learned); ``mmcs_learned`` = (1/M) sum_m max_i cos_im.
- ``uniqueness_over_features`` = (1/n) #{argmax_i cos_im : m alive}: the fraction of true features
  that are some alive latent's best (signed) match, each counted once.
- ``monosemantic_fraction`` = fraction of alive latents whose best cosine with a true feature is
  >= ``mono_threshold`` (default 0.9).
- ``splitting`` = fraction of true features matched (cos >= ``split_threshold``, default 0.9) by more
  than one alive latent.
- "Alive": with ``acts`` [B, M], a latent with a_bm != 0 at least once in that window; without
  ``acts``, a non-zero decoder row.
- ``nmse`` = SSE / sum_b ||x_b||^2 (normalised by the signal energy about zero, matching the LLM-side
  "normalised MSE").
- ``precision_alive_matched``, ``recall_alive_matched``, ``f1_alive_matched``: the scores above, but
  only over alive latents whose best *signed* cosine is >= ``match_threshold`` (default 0.5), with
  i(m) = argmax_i cos_im, averaged over those ``n_matched_latents`` latents (NaN when there are none).
- ``shrinkage_along_features`` = mean over (sample b, alive-matched latent m) with a_bm != 0 and
  h_b,i(m) > 0 of (a_bm ||w_m||) / (h_b,i(m) ||v_i(m)||): the reconstructed magnitude along the
  feature relative to the true one (1 = no shrinkage; < 1 = shrunk).

Cost: the n x M cosine matrix is computed in chunks of ``CHUNK_ENTRIES`` entries. Cosines are float64
unless a matrix has more than ``FLOAT64_MAX_ENTRIES`` entries (rows x d), then float32.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import ConfigError, require, require_float_range

DEFAULT_TAUS = (0.8, 0.9, 0.99)
MCC_METHODS = ("hungarian", "greedy")
FLOAT64_COST_ENTRIES = 1 << 24      # n*M above which the Hungarian |cos| matrix is held in float32
GREEDY_CANDIDATES = 8               # per-feature latents considered by the greedy bound
CHUNK_ENTRIES = 2_000_000           # cosine entries computed per chunk
FLOAT64_MAX_ENTRIES = 1 << 22       # rows*d above which cosines are computed in float32
SHRINKAGE_MIN_NORM = 1e-6           # SAELens's ShrinkageCalculator skips inputs with ||x|| <= this
VARIANCE_FLOOR = 1e-10              # SAELens's ExplainedVarianceCalculator's degenerate-variance floor


# -- input handling -------------------------------------------------------------------------------
def as_numpy(x: Any) -> np.ndarray:
    """A numpy view/copy of a numpy array, torch tensor, or nested sequence."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor or parameter
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16" or str(x.dtype) == "torch.float16":
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def decoder_rows(obj: Any) -> np.ndarray:
    """Decoder rows [M, d] of ``obj``: an array/tensor, or an object with ``.W_dec``, ``.decoder_rows``
    (attribute or method) or ``.V`` (a ``World``). Integer input becomes float64; float dtypes are kept."""
    if not (isinstance(obj, np.ndarray) or (hasattr(obj, "detach") and hasattr(obj, "shape"))):
        for name in ("W_dec", "decoder_rows", "V"):
            if hasattr(obj, name):
                obj = getattr(obj, name)
                if callable(obj) and not hasattr(obj, "shape"):
                    obj = obj()
                break
    arr = as_numpy(obj)
    require(arr.ndim == 2, f"decoder rows must be a 2-D [rows, d] matrix, got shape {tuple(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    require(bool(np.isfinite(arr).all()), "decoder rows must be finite (found NaN or inf)")
    return arr


def _pair(learned: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    L = decoder_rows(learned)
    T = decoder_rows(truth)
    require(L.shape[0] >= 1 and T.shape[0] >= 1,
            f"need at least one learned row and one true feature, got {L.shape[0]} and {T.shape[0]}")
    require(L.shape[1] == T.shape[1],
            f"learned rows have d={L.shape[1]} but true features have d={T.shape[1]}; they must match")
    return L, T


def _work_dtype(*arrays: np.ndarray) -> type:
    return np.float64 if max(a.size for a in arrays) <= FLOAT64_MAX_ENTRIES else np.float32


def unit_rows(rows: np.ndarray, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """(rows / ||rows||, norms); zero rows stay zero (so their cosine with anything is 0)."""
    rows = np.asarray(rows, dtype=dtype)
    norms = np.linalg.norm(rows, axis=1)
    safe = np.where(norms > 0, norms, 1.0).astype(dtype)
    return rows / safe[:, None], norms


def cosine_matrix(learned: Any, truth: Any) -> np.ndarray:
    """Signed cosines [n, M] between true features (rows) and learned rows (columns). Held whole:
    use only when n*M fits in memory; the other metrics chunk it."""
    L, T = _pair(learned, truth)
    dtype = _work_dtype(L, T)
    return unit_rows(T, dtype)[0] @ unit_rows(L, dtype)[0].T


def _latent_chunks(M: int, n: int):
    step = max(1, CHUNK_ENTRIES // max(n, 1))
    for start in range(0, M, step):
        yield start, min(M, start + step)


# -- one chunked pass over the cosine matrix ------------------------------------------------------
class _CosineSummary:
    """Row/column maxima of the n x M cosine matrix and what matching needs, from one chunked pass.

    Signed maxima serve polysemy's metrics (FRR, MMCS, ...); |cos| maxima per latent serve SAELens's
    uniqueness and classification. ``matching`` is "hungarian" (the whole |cos| matrix is kept),
    "greedy" (each feature's best candidates are kept) or None (no matching needed)."""

    def __init__(self, L: np.ndarray, T: np.ndarray, split_threshold: float = 0.9,
                 counted: np.ndarray | None = None, matching: str | None = "hungarian"):
        M, n = L.shape[0], T.shape[0]
        dtype = _work_dtype(L, T)
        Lu, self.learned_norms = unit_rows(L, dtype)
        Tu, self.truth_norms = unit_rows(T, dtype)
        counted = np.ones(M, dtype=bool) if counted is None else counted
        self.n, self.M, self.method = n, M, matching
        self.feat_best_cos = np.full(n, -np.inf)
        self.feat_best_latent = np.zeros(n, dtype=np.int64)
        self.lat_best_cos = np.full(M, -np.inf)
        self.lat_best_feat = np.zeros(M, dtype=np.int64)
        self.lat_best_abs_feat = np.zeros(M, dtype=np.int64)
        self.feat_split_count = np.zeros(n, dtype=np.int64)
        keep_full = matching == "hungarian"
        cost_dtype = dtype if n * M <= FLOAT64_COST_ENTRIES else np.float32
        self.abs_full = np.empty((n, M), dtype=cost_dtype) if keep_full else None
        k = min(GREEDY_CANDIDATES, M) if matching == "greedy" else 0
        cand_val = np.full((n, 0), -np.inf)
        cand_idx = np.zeros((n, 0), dtype=np.int64)
        for a, b in _latent_chunks(M, n):
            cos_nC = Tu @ Lu[a:b].T
            best = cos_nC.argmax(axis=1)
            best_val = cos_nC[np.arange(n), best]
            better = best_val > self.feat_best_cos
            self.feat_best_cos[better] = best_val[better]
            self.feat_best_latent[better] = best[better] + a
            self.lat_best_feat[a:b] = cos_nC.argmax(axis=0)
            self.lat_best_cos[a:b] = cos_nC[self.lat_best_feat[a:b], np.arange(b - a)]
            self.feat_split_count += ((cos_nC >= split_threshold) & counted[a:b][None, :]).sum(axis=1)
            abs_nC = np.abs(cos_nC)
            self.lat_best_abs_feat[a:b] = abs_nC.argmax(axis=0)  # first maximum on ties, as torch.argmax
            if keep_full:
                self.abs_full[:, a:b] = abs_nC
            elif k > 0:
                vals = np.concatenate([cand_val, abs_nC], axis=1)
                idxs = np.concatenate([cand_idx, np.broadcast_to(np.arange(a, b), (n, b - a))], axis=1)
                if vals.shape[1] > k:
                    top = np.argpartition(-vals, k - 1, axis=1)[:, :k]
                    vals = np.take_along_axis(vals, top, axis=1)
                    idxs = np.take_along_axis(idxs, top, axis=1)
                cand_val, cand_idx = vals, idxs
        self._cand_val, self._cand_idx = cand_val, cand_idx

    def matching(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """(feature index, latent index, |cos|) of matched pairs and the method ("hungarian"/"greedy")."""
        require(self.method in MCC_METHODS, f"mcc_method must be one of {list(MCC_METHODS)}, got {self.method!r}")
        if self.n == 0 or self.M == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0), self.method
        if self.method == "hungarian":
            rows, cols = hungarian_max(self.abs_full)
            return rows, cols, self.abs_full[rows, cols].astype(np.float64), "hungarian"
        feats = np.repeat(np.arange(self.n), self._cand_val.shape[1])
        lats = self._cand_idx.ravel()
        vals = self._cand_val.ravel()
        order = np.argsort(-vals, kind="stable")
        used_f = np.zeros(self.n, dtype=bool)
        used_l = np.zeros(self.M, dtype=bool)
        out_f, out_l, out_v = [], [], []
        for j in order:
            f, m = feats[j], lats[j]
            if not used_f[f] and not used_l[m]:
                used_f[f] = used_l[m] = True
                out_f.append(f), out_l.append(m), out_v.append(vals[j])
        return (np.asarray(out_f, dtype=np.int64), np.asarray(out_l, dtype=np.int64),
                np.asarray(out_v, dtype=np.float64), "greedy")

    def mcc(self) -> tuple[float, str]:
        _, _, vals, method = self.matching()
        pairs = min(self.n, self.M)
        return (float(vals.sum() / pairs) if pairs else 0.0), method


def hungarian_max(score_nM: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a maximum-weight matching of min(n, M) pairs (scipy's
    ``linear_sum_assignment``, a shortest-augmenting-path solver). scipy works on a float64 copy
    with the smaller side as rows: a float32 [16384, 4096] matrix (268 MB) adds 537 MB."""
    return linear_sum_assignment(score_nM, maximize=True)


# -- public metrics -------------------------------------------------------------------------------
def _check_taus(taus: Sequence[float]) -> tuple[float, ...]:
    taus = tuple(float(t) for t in taus)
    for t in taus:
        require_float_range("tau", t, -1.0, 1.0)
    return taus


def _frr_from_best(best_cos: np.ndarray, taus: Sequence[float]) -> dict[str, float]:
    n = max(len(best_cos), 1)
    return {f"{t:g}": float((best_cos >= t).sum() / n) for t in taus}


def _frr_mmcs(best_cos: np.ndarray, taus: Sequence[float]) -> dict[str, Any]:
    finite = np.where(np.isfinite(best_cos), best_cos, 0.0)
    return {"frr": _frr_from_best(best_cos, taus), "mmcs": float(finite.mean())}


def feature_recovery(learned: Any, truth: Any, taus: Sequence[float] = DEFAULT_TAUS) -> dict[str, Any]:
    """``{"frr": {tau: FRR}, "mmcs": MMCS}``, exactly as :func:`recovery_metrics` gives them, from one
    chunked pass without a matching (no Hungarian step): what a training history logs at every log
    point (``polysemy.sae.callbacks.RecoveryLog``)."""
    taus = _check_taus(taus)
    L, T = _pair(learned, truth)
    return _frr_mmcs(_CosineSummary(L, T, matching=None).feat_best_cos, taus)


def frr(learned: Any, truth: Any, taus: Sequence[float] = DEFAULT_TAUS) -> dict[str, float]:
    """Feature recovery rate {"0.8": x, "0.9": y, "0.99": z}: fraction of true features whose best
    learned row has signed cosine >= tau (docs/paper.md section 6)."""
    return feature_recovery(learned, truth, taus)["frr"]


def mcc(learned: Any, truth: Any, method: str = "hungarian") -> float:
    """Mean |cos| over the min(n, M) pairs of a Hungarian matching of true features to learned rows
    (SAELens's definition, exact at any size); ``method="greedy"`` gives the greedy lower bound
    (ours; module docstring). In [0, 1]."""
    require(method in MCC_METHODS, f"mcc_method must be one of {list(MCC_METHODS)}, got {method!r}")
    L, T = _pair(learned, truth)
    return _CosineSummary(L, T, matching=method).mcc()[0]


def feature_uniqueness(learned: Any, truth: Any) -> float:
    """#{argmax_i |cos_im| over every learned row m} / M (SAELens's ``feature_uniqueness``)."""
    L, T = _pair(learned, truth)
    summary = _CosineSummary(L, T, matching=None)
    return float(len(np.unique(summary.lat_best_abs_feat)) / summary.M)


def explained_variance(x: Any, x_hat: Any) -> float:
    """1 - mean_b ||x_b - x_hat_b||^2 / Var(x), Var(x) = mean_b ||x_b||^2 - ||mean_b x_b||^2, i.e. about
    the per-coordinate mean of ``x`` [B, d] (1 = perfect, 0 = the mean). When Var(x) < 1e-10: 1.0 if
    the mean squared error is < 1e-10, else 0.0 (SAELens's ``ExplainedVarianceCalculator``)."""
    x64, xh64 = _xy(x, x_hat)
    B = max(x64.shape[0], 1)
    mse = float(((x64 - xh64) ** 2).sum()) / B
    variance = float((x64 ** 2).sum()) / B - float(((x64.sum(axis=0) / B) ** 2).sum())
    if variance < VARIANCE_FLOOR:
        return 1.0 if mse < VARIANCE_FLOOR else 0.0
    return 1.0 - mse / variance


def output_shrinkage(x: Any, x_hat: Any) -> float:
    """Mean over samples with ||x_b|| > 1e-6 of ||x_hat_b|| / ||x_b|| (1 = no shrinkage); 0.0 when no
    sample qualifies (SAELens's ``ShrinkageCalculator``)."""
    x64, xh64 = _xy(x, x_hat)
    norms = np.linalg.norm(x64, axis=1)
    valid = norms > SHRINKAGE_MIN_NORM
    if not valid.any():
        return 0.0
    return float((np.linalg.norm(xh64[valid], axis=1) / norms[valid]).mean())


def nmse(x: Any, x_hat: Any) -> float:
    """SSE / sum ||x||^2 (normalised by the energy about zero). 0 = perfect; 1 = predicting zero."""
    x64, xh64 = _xy(x, x_hat)
    sse = float(((x64 - xh64) ** 2).sum())
    energy = float((x64 ** 2).sum())
    if energy == 0.0:
        return 0.0 if sse == 0.0 else math.nan
    return sse / energy


def _xy(x: Any, x_hat: Any) -> tuple[np.ndarray, np.ndarray]:
    x64 = np.asarray(as_numpy(x), dtype=np.float64)
    xh64 = np.asarray(as_numpy(x_hat), dtype=np.float64)
    require(x64.shape == xh64.shape, f"x_hat must have the shape of x {x64.shape}, got {xh64.shape}")
    if x64.ndim == 1:
        x64, xh64 = x64[:, None], xh64[:, None]
    return x64, xh64


def _acts_matrix(acts: Any, M: int) -> np.ndarray:
    a = as_numpy(acts)
    require(a.ndim == 2 and a.shape[1] == M,
            f"acts must be [samples, M={M}] (one column per learned row), got shape {tuple(a.shape)}")
    return a


def _detector_counts(acts_BM: np.ndarray, codes_Bn: np.ndarray, latents: np.ndarray,
                     feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per listed latent: (TP, FP, FN, TN) of the event {a_bm != 0} against {h_b,feats[m] > 0}."""
    B = acts_BM.shape[0]
    counts = [np.zeros(len(latents), dtype=np.int64) for _ in range(4)]
    step = max(1, 8_000_000 // max(B, 1))
    for a in range(0, len(latents), step):
        fired = np.asarray(acts_BM[:, latents[a:a + step]]) != 0
        present = np.asarray(codes_Bn[:, feats[a:a + step]]) > 0
        tp = (fired & present).sum(axis=0)
        n_fired, n_present = fired.sum(axis=0), present.sum(axis=0)
        counts[0][a:a + step] = tp
        counts[1][a:a + step] = n_fired - tp
        counts[2][a:a + step] = n_present - tp
        counts[3][a:a + step] = B - n_fired - n_present + tp
    return tuple(counts)  # type: ignore[return-value]


def _detector_scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """Per-latent precision, recall, F1 and accuracy; 0 where a denominator is 0 (SAELens's convention)."""
    tp, fp, fn, tn = (np.asarray(c, dtype=np.float64) for c in (tp, fp, fn, tn))
    p = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
    r = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
    f1 = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1.0), 0.0)
    acc = (tp + tn) / np.maximum(tp + fp + fn + tn, 1e-8)
    return {"precision": p, "recall": r, "f1": f1, "accuracy": acc}


def _shrinkage_along_features(acts_BM: np.ndarray, codes_Bn: np.ndarray, latents: np.ndarray,
                              feats: np.ndarray, learned_norms: np.ndarray, truth_norms: np.ndarray) -> float:
    """Mean of (a_bm ||w_m||) / (h_b,i(m) ||v_i(m)||) where both fire (module docstring; ours)."""
    B = acts_BM.shape[0]
    ratio_sum, ratio_count = 0.0, 0
    step = max(1, 8_000_000 // max(B, 1))
    for a in range(0, len(latents), step):
        lat, ft = latents[a:a + step], feats[a:a + step]
        act = np.asarray(acts_BM[:, lat], dtype=np.float64)
        code = np.asarray(codes_Bn[:, ft], dtype=np.float64)
        both = (act != 0) & (code > 0)
        scale = learned_norms[lat][None, :] / np.where(truth_norms[ft] > 0, truth_norms[ft], 1.0)[None, :]
        ratio = act * scale / np.where(code > 0, code, 1.0)
        ratio_sum += float(ratio[both].sum())
        ratio_count += int(both.sum())
    return ratio_sum / ratio_count if ratio_count else math.nan


def recovery_metrics(
    learned: Any,
    truth: Any,
    *,
    acts: Any = None,
    x: Any = None,
    x_hat: Any = None,
    truth_codes: Any = None,
    taus: Sequence[float] = DEFAULT_TAUS,
    mono_threshold: float = 0.9,
    split_threshold: float = 0.9,
    match_threshold: float = 0.5,
    mcc_method: str = "hungarian",
) -> dict[str, Any]:
    """All recovery metrics in one chunked pass (definitions and sources: module docstring).

    Always: ``mcc``, ``mcc_method``, ``uniqueness`` (SAELens's), ``frr`` (dict), ``mmcs``,
    ``mmcs_learned``, ``uniqueness_over_features``, ``monosemantic_fraction``, ``splitting``,
    ``n_features``, ``width``.
    With ``acts`` [B, M]: ``l0``, ``dead_fraction`` (SAELens's), ``alive_fraction``.
    With ``x`` and ``x_hat`` [B, d]: ``explained_variance``, ``shrinkage`` (SAELens's), ``nmse``.
    With ``truth_codes`` [B, n] and ``acts``: ``precision``, ``recall``, ``f1``, ``accuracy``
    (SAELens's), ``precision_alive_matched``, ``recall_alive_matched``, ``f1_alive_matched``,
    ``shrinkage_along_features``, ``n_matched_latents``.
    """
    taus = _check_taus(taus)
    for name, value in (("mono_threshold", mono_threshold), ("split_threshold", split_threshold),
                        ("match_threshold", match_threshold)):
        require_float_range(name, value, -1.0, 1.0)
    require(mcc_method in MCC_METHODS, f"mcc_method must be one of {list(MCC_METHODS)}, got {mcc_method!r}")
    L, T = _pair(learned, truth)
    M, n = L.shape[0], T.shape[0]
    out: dict[str, Any] = {"n_features": n, "width": M}

    acts_BM = None
    if acts is not None:
        acts_BM = _acts_matrix(acts, M)
        fired_any = np.zeros(M, dtype=bool)
        l0_total = 0.0
        for a in range(0, acts_BM.shape[0], 4096):
            fired = as_numpy(acts_BM[a:a + 4096]) != 0
            fired_any |= fired.any(axis=0)
            l0_total += float(fired.sum())
        alive = fired_any
        out["l0"] = l0_total / acts_BM.shape[0] if acts_BM.shape[0] else 0.0
        out["dead_fraction"] = float((~alive).sum() / M)
        out["alive_fraction"] = 1.0 - out["dead_fraction"]
    else:
        alive = np.linalg.norm(L, axis=1) > 0

    summary = _CosineSummary(L, T, split_threshold=split_threshold, counted=alive, matching=mcc_method)
    out["mcc"], out["mcc_method"] = summary.mcc()
    out["uniqueness"] = float(len(np.unique(summary.lat_best_abs_feat)) / M)
    out.update(_frr_mmcs(summary.feat_best_cos, taus))
    out["mmcs_learned"] = float(summary.lat_best_cos.mean())
    out["uniqueness_over_features"] = float(len(np.unique(summary.lat_best_feat[alive])) / n)
    n_alive = int(alive.sum())
    out["monosemantic_fraction"] = (
        float((summary.lat_best_cos[alive] >= mono_threshold).sum() / n_alive) if n_alive else 0.0)
    out["splitting"] = float((summary.feat_split_count > 1).mean())

    if x is not None and x_hat is not None:
        out["explained_variance"] = explained_variance(x, x_hat)
        out["shrinkage"] = output_shrinkage(x, x_hat)
        out["nmse"] = nmse(x, x_hat)

    if truth_codes is not None:
        if acts_BM is None:
            raise ConfigError("truth_codes needs acts: pass acts [samples, M] to score firing")
        codes_Bn = as_numpy(truth_codes)
        require(codes_Bn.ndim == 2 and codes_Bn.shape == (acts_BM.shape[0], n),
                f"truth_codes must be [samples={acts_BM.shape[0]}, n={n}], got {tuple(codes_Bn.shape)}")
        # SAELens: every latent, matched to its best |cos| feature, dead latents scored 0
        every = _detector_scores(*_detector_counts(acts_BM, codes_Bn, np.arange(M), summary.lat_best_abs_feat))
        out.update({key: float(values.mean()) for key, values in every.items()})
        # ours: alive latents whose best signed cosine clears match_threshold
        matched = alive & (summary.lat_best_cos >= match_threshold)
        latents = np.flatnonzero(matched)
        feats = summary.lat_best_feat[latents]
        ours = _detector_scores(*_detector_counts(acts_BM, codes_Bn, latents, feats))
        for key in ("precision", "recall", "f1"):
            out[f"{key}_alive_matched"] = float(ours[key].mean()) if len(latents) else math.nan
        out["shrinkage_along_features"] = _shrinkage_along_features(
            acts_BM, codes_Bn, latents, feats, summary.learned_norms.astype(np.float64),
            summary.truth_norms.astype(np.float64))
        out["n_matched_latents"] = int(len(latents))
    return out


def cross_run_consistency(
    rows_a: Any,
    rows_b: Any,
    activity_a: Any = None,
    alpha: float = 0.1,
    threshold: float = 0.9,
) -> dict[str, Any]:
    """Cross-run (cross-seed) consistency (docs/paper.md section 7).

    For each neuron m of run A among the ceil(alpha * M_A) most active (by ``activity_a`` [M_A], e.g.
    firing frequency; every neuron when ``activity_a`` is None), MCS_m = max_k cos(a_m, b_k) over the
    neurons of run B (signed cosine). Returns ``mean_mcs``, ``fraction_above`` (MCS > threshold),
    ``n_neurons`` scored, ``alpha``, ``threshold`` and ``selection`` ("top-alpha" or "all").
    """
    require_float_range("alpha", alpha, 0.0, 1.0, low_open=True)
    require_float_range("threshold", threshold, -1.0, 1.0)
    A, Bm = _pair(rows_a, rows_b)
    Ma = A.shape[0]
    require(Ma > 0 and Bm.shape[0] > 0, "both runs need at least one decoder row")
    if activity_a is None:
        chosen = np.arange(Ma)
        selection = "all"
    else:
        act = np.asarray(as_numpy(activity_a), dtype=np.float64).ravel()
        require(act.shape[0] == Ma, f"activity_a must have one value per row of run A ({Ma}), got {act.shape[0]}")
        k = max(1, math.ceil(alpha * Ma))
        chosen = np.argsort(-act, kind="stable")[:k]
        selection = "top-alpha"
    dtype = _work_dtype(A, Bm)
    Au = unit_rows(A[chosen], dtype)[0]
    Bu = unit_rows(Bm, dtype)[0]
    mcs = np.empty(len(chosen))
    step = max(1, CHUNK_ENTRIES // Bu.shape[0])
    for a in range(0, len(chosen), step):
        mcs[a:a + step] = (Au[a:a + step] @ Bu.T).max(axis=1)
    return {"mean_mcs": float(mcs.mean()), "fraction_above": float((mcs > threshold).mean()),
            "n_neurons": int(len(chosen)), "alpha": float(alpha), "threshold": float(threshold),
            "selection": selection}
