"""``polysemy llm-bench``: GBA against the standard SAEs on one real model's activations.

Pipeline: load the model (packaged SmolLM2 or a local path) -> cut the corpus into token contexts ->
extract the site's activations into a training store and a held-out store (same normaliser) ->
train every method and setting for each seed on the SAME stored activations (``polysemy.sae.train``;
seed s sets both the initialisation and the shuffling of the stream) -> on held-out tokens measure
nmse, explained variance, L0, alive/dead fractions, and CE-loss recovered by splicing the SAE into
the model -> cross-seed consistency -> figures, the snippet page, ``results.json``.

CPU by default; ``device="cuda"`` runs the same code on a GPU: the language model under bf16 autocast
when ``dtype="bfloat16"``, the SAEs in float32 (TF32 matmuls).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..configs import Config
from ..errors import require, require_float_range, require_int_range
from .evaluate import consistency, evaluate_sae, random_consistency
from .normalize import NormalizeConfig
from .sites import DTYPES, SITES

METHODS = ("gba", "ba", "topk", "batchtopk", "relu-l1", "jumprelu")

# The quick run is short (800 steps of 256), so bias adaptation takes 5x the paper's step size
# (gamma 0.05) and adapts every 40 steps over the last 10,240 samples (>= 10 / ltf, so the rarest
# group's neurons are seen firing): 20 adaptations in the run. Our choice; full runs use the paper's
# schedule (every 50 steps of 512, gamma 0.01).
QUICK_ADAPTATION = {"gamma_plus": 0.05, "gamma_minus": 0.05, "adapt_every": 40, "buffer": 10240}


@dataclasses.dataclass(frozen=True)
class LLMBenchConfig(Config):
    """Everything that fixes one benchmark run (``quick()`` gives the CPU defaults of ``--quick``).

    model:      local model path (HF folder or .gguf); None = the packaged SmolLM2-135M-Instruct.
    text:       corpus file (.json / .txt); None = the packaged Wikipedia summaries.
    layer, site: where activations are read ("resid": residual stream after block ``layer``; "mlp").
    device, dtype: "cpu"/"cuda"; "float32"/"bfloat16" (autocast of the language model).
    context_length: tokens per context, BOS included (position 0 is dropped).
    tokens:     training tokens (whole contexts, rounded up); eval_tokens: held-out tokens for metrics;
    ce_contexts: held-out contexts for CE-loss recovered; ce_seeds: how many seeds of each setting
                are spliced in (CE costs a full forward pass per model; the rest are still trained).
    width, steps, batch_size, lr: the SAEs (same for every method).
    seeds:      seeds per setting (>= 2 for consistency).
    methods:    which of gba, ba, topk, batchtopk, relu-l1, jumprelu to run.
    topk_ks:    k values of topk; batchtopk_k: k of batchtopk; l1_coefs: lambda values of relu-l1.
    gba_params, ba_params, jumprelu_params: method parameters (the trainer's defaults where absent).
    alpha, threshold: consistency = fraction of the top-alpha most active neurons with MCS > threshold.
    snippet_features, snippets_per_feature: size of the GBA snippet page.
    normalize:  the normalisation rule's constants (see ``polysemy.llm.normalize``).
    """

    model: str | None = None
    text: str | None = None
    layer: int = 15
    site: str = "resid"
    device: str = "cpu"
    dtype: str = "float32"
    context_length: int = 128
    tokens: int = 524_288
    eval_tokens: int = 16_384
    ce_contexts: int = 32
    ce_seeds: int = 2
    text_seed: int = 0
    width: int = 4608
    steps: int = 8000
    batch_size: int = 512
    lr: float = 1e-3
    seeds: int = 2
    methods: tuple = METHODS
    topk_ks: tuple = (32, 64, 128)
    batchtopk_k: int = 64
    l1_coefs: tuple = (0.03, 0.1, 0.3)
    gba_params: dict = dataclasses.field(default_factory=dict)
    ba_params: dict = dataclasses.field(default_factory=dict)
    jumprelu_params: dict = dataclasses.field(default_factory=dict)
    alpha: float = 0.1
    threshold: float = 0.9
    snippet_features: int = 24
    snippets_per_feature: int = 8
    contexts_per_shard: int = 64
    batch_contexts: int = 16
    normalize: NormalizeConfig = dataclasses.field(default_factory=NormalizeConfig)

    @classmethod
    def quick(cls, **overrides) -> "LLMBenchConfig":
        """CPU defaults of ``--quick`` (about 10 CPU-minutes; see docs/llm.md); ``overrides`` win."""
        base = dict(layer=6, tokens=131_072, eval_tokens=8192, ce_contexts=8, ce_seeds=1, width=1152, steps=800,
                    batch_size=256, topk_ks=(16, 32, 64), batchtopk_k=32,
                    gba_params=dict(QUICK_ADAPTATION), ba_params=dict(QUICK_ADAPTATION),
                    snippet_features=16, snippets_per_feature=6)
        base.update(overrides)
        return cls(**base)

    def validate(self) -> None:
        require_int_range("layer", self.layer, 1)
        require(self.site in SITES, f"site must be one of {list(SITES)}, got {self.site!r}")
        require(self.device == "cpu" or str(self.device).startswith("cuda"),
                f"device must be 'cpu' or 'cuda', got {self.device!r}")
        require(self.dtype in DTYPES, f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        require_int_range("context_length", self.context_length, 3, 8192)
        require_int_range("tokens", self.tokens, 1)
        require_int_range("eval_tokens", self.eval_tokens, 1)
        require_int_range("ce_contexts", self.ce_contexts, 1)
        require_int_range("ce_seeds", self.ce_seeds, 0)
        require_int_range("text_seed", self.text_seed, 0)
        require_int_range("width", self.width, 2)
        require_int_range("steps", self.steps, 1)
        require_int_range("batch_size", self.batch_size, 1)
        require_float_range("lr", self.lr, 0.0, 10.0, low_open=True)
        require_int_range("seeds", self.seeds, 1, 100)
        require(len(self.methods) > 0 and all(m in METHODS for m in self.methods),
                f"methods must be a non-empty subset of {list(METHODS)}, got {list(self.methods)}")
        for k in self.topk_ks:
            require_int_range("topk_ks entries", k, 1, self.width)
        require_int_range("batchtopk_k", self.batchtopk_k, 1, self.width)
        for lam in self.l1_coefs:
            require_float_range("l1_coefs entries", lam, 0.0, 1e3)
        for name in ("gba_params", "ba_params", "jumprelu_params"):
            require(isinstance(getattr(self, name), dict), f"{name} must be a dict of method parameters")
        require_float_range("alpha", self.alpha, 0.0, 1.0, low_open=True)
        require_float_range("threshold", self.threshold, -1.0, 1.0)
        require_int_range("snippet_features", self.snippet_features, 0)
        require_int_range("snippets_per_feature", self.snippets_per_feature, 1)
        require_int_range("contexts_per_shard", self.contexts_per_shard, 1)
        require_int_range("batch_contexts", self.batch_contexts, 1)

    def settings(self) -> list[tuple[str, str, dict]]:
        """(method, setting label, method params) for every run of the plan, in plan order."""
        plan: list[tuple[str, str, dict]] = []
        for method in self.methods:
            if method == "gba":
                plan.append(("gba", "", dict(self.gba_params)))
            elif method == "ba":
                plan.append(("ba", "", dict(self.ba_params)))
            elif method == "topk":
                plan += [("topk", f"k={k}", {"k": int(k)}) for k in self.topk_ks]
            elif method == "batchtopk":
                plan.append(("batchtopk", f"k={self.batchtopk_k}", {"k": int(self.batchtopk_k)}))
            elif method == "relu-l1":
                plan += [("relu-l1", f"l1={lam:g}", {"l1": float(lam)}) for lam in self.l1_coefs]
            elif method == "jumprelu":
                plan.append(("jumprelu", "", dict(self.jumprelu_params)))
        return plan


def _store_key(cfg: LLMBenchConfig, model_name: str) -> str:
    ident = [model_name, cfg.text, cfg.layer, cfg.site, cfg.dtype, cfg.context_length, cfg.tokens,
             cfg.eval_tokens, cfg.ce_contexts, cfg.text_seed, cfg.normalize.to_dict()]
    return f"L{cfg.layer}-{cfg.site}-" + hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]


def _log(msg: str) -> None:
    print(f"polysemy llm-bench: {msg}", file=sys.stderr, flush=True)


def _mean(values) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def run_llm_bench(cfg: LLMBenchConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Run the benchmark, write figures / snippets / results.json into ``out_dir``, return the results."""
    from ..sae import TrainConfig, train
    from .extract import extract_activations
    from .figures import figures_from_report
    from .model import check_device, load_model
    from ..atomic import write_json_atomic, write_text_atomic
    from .snippets import choose_features, snippets_page
    from .splice import CEEvaluator
    from .text import token_contexts

    from .preflight import preflight

    started = time.perf_counter()
    out = Path(out_dir)
    texts = preflight(cfg, out)   # --out, --device, --text, --model and --layer, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    check_device(cfg.device)
    if cfg.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    # Validate every training config before the expensive part, so a bad setting fails in a second.
    plan = [(m, label, p, TrainConfig(method=m, width=cfg.width, steps=cfg.steps, batch_size=cfg.batch_size,
                                      lr=cfg.lr, seed=s, params=p, log_every=max(1, cfg.steps // 10)))
            for m, label, p in cfg.settings() for s in range(cfg.seeds)]
    write_json_atomic(out / "config.json", cfg.to_dict())

    t0 = time.perf_counter()
    lm = load_model(cfg.model, cfg.device)
    load_seconds = time.perf_counter() - t0
    require(cfg.layer <= lm.n_layers, f"layer must be an integer in [1, {lm.n_layers}], got {cfg.layer}")
    _log(f"model {lm.name} ({lm.n_layers} blocks, d = {lm.d_model}) loaded in {load_seconds:.1f} s")

    T = cfg.context_length
    n_train = -(-cfg.tokens // (T - 1))
    n_eval = -(-cfg.eval_tokens // (T - 1))
    contexts = token_contexts(lm.tokenizer, texts, T, n_train + n_eval + cfg.ce_contexts,
                              seed=cfg.text_seed)
    stores = out / "stores" / _store_key(cfg, lm.name)
    common = dict(layer=cfg.layer, site=cfg.site, dtype=cfg.dtype, contexts_per_shard=cfg.contexts_per_shard,
                  batch_contexts=cfg.batch_contexts, progress=progress)
    t0 = time.perf_counter()
    train_store = extract_activations(lm, contexts[:n_train], stores / "train", normalize=cfg.normalize, **common)
    eval_store = extract_activations(lm, contexts[n_train:n_train + n_eval], stores / "eval",
                                     normalize=train_store.normalizer, **common)
    extract_seconds = time.perf_counter() - t0
    x_eval = eval_store.activations()
    normalizer = train_store.normalizer
    _log(f"activations: {train_store.meta['n_kept_tokens']} training and {x_eval.shape[0]} held-out tokens "
         f"(outlier coordinates {normalizer.to_dict()['outlier_coordinates']}, "
         f"{train_store.meta['n_sink_tokens']} sink tokens) in {extract_seconds:.1f} s")

    t0 = time.perf_counter()
    ce_eval = CEEvaluator(lm.model, contexts[n_train + n_eval:], cfg.layer, cfg.site, normalizer, cfg.dtype,
                          batch_contexts=max(1, min(cfg.batch_contexts, 8)))
    ce_seconds = time.perf_counter() - t0
    _log(f"CE clean {ce_eval.ce_clean:.3f}, zero-ablated {ce_eval.ce_zero:.3f} nats/token")

    runs: dict[tuple[str, str], list] = {}
    for i, (method, label, params, tcfg) in enumerate(plan):
        _log(f"[{i + 1}/{len(plan)}] {method} {label} seed {tcfg.seed}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the buffer-size advisory is printed once per config otherwise
            result = train(tcfg, train_store.stream(cfg.batch_size, seed=tcfg.seed, device=cfg.device),
                           d=lm.d_model, progress=progress)
        metrics = evaluate_sae(result.model, x_eval)
        ce = {}
        if tcfg.seed < cfg.ce_seeds:
            t0 = time.perf_counter()
            ce = ce_eval.evaluate(result.model)
            ce_seconds += time.perf_counter() - t0
        runs.setdefault((method, label), []).append((tcfg, result, metrics, ce))

    rows = []
    for (method, label), seeds in runs.items():
        per_seed = []
        for tcfg, result, m, ce in seeds:
            per_seed.append({"seed": tcfg.seed, **{k: v for k, v in m.items() if k != "firing_frequency"},
                             **ce, "seconds": result.seconds,
                             "samples_per_second": result.samples / max(result.seconds, 1e-9)})
        cons = consistency([s[1].model.W_dec.detach().cpu().numpy() for s in seeds],
                           [s[2]["firing_frequency"] for s in seeds], cfg.alpha, cfg.threshold)
        row = {"method": method, "setting": label, "params": seeds[0][0].params,
               **{k: seeds[0][0].params[k] for k in ("k", "l1") if k in seeds[0][0].params},
               "width": cfg.width, "steps": cfg.steps, "batch_size": cfg.batch_size, "seeds": len(seeds)}
        for key in ("nmse", "explained_variance", "l0", "l0_over_width", "alive_fraction", "dead_fraction",
                    "ce_sae", "ce_recovered", "seconds", "samples_per_second"):
            row[key] = _mean(s.get(key) for s in per_seed)
        row.update(cons)
        row["per_seed"] = per_seed
        rows.append(row)

    floor = random_consistency(cfg.width, lm.d_model, cfg.alpha, cfg.threshold)
    title = (f"{lm.name.split('/')[-1]}, layer {cfg.layer} {cfg.site}, width {cfg.width}, "
             f"{train_store.meta['n_kept_tokens']} tokens, {cfg.steps} steps x {cfg.batch_size}, {cfg.seeds} seeds")
    if "gba" in cfg.methods and cfg.snippet_features > 0:
        _, result, m, _ = runs[("gba", "")][0]
        features = choose_features(m["firing_frequency"], cfg.snippet_features, seed=0)
        notes = _gba_targets(result.model, features)
        page = snippets_page(result.model, train_store, lm.tokenizer, features, m["firing_frequency"],
                             f"GBA features (seed 0): top-activating snippets - {title}",
                             per_feature=cfg.snippets_per_feature, notes=notes)
        write_text_atomic(out / "snippets.html", page)

    report = {
        "benchmark": "llm-bench", "title": title, "model": lm.name, "layer": cfg.layer, "site": cfg.site, "device": cfg.device,
        "dtype": cfg.dtype, "d": lm.d_model, "width": cfg.width, "train_tokens": train_store.meta["n_kept_tokens"],
        "eval_tokens": int(x_eval.shape[0]), "ce_tokens": int(cfg.ce_contexts * (T - 2)),
        "ce_clean": ce_eval.ce_clean, "ce_zero": ce_eval.ce_zero,
        "consistency_rule": f"fraction of the top-{cfg.alpha:g} most active neurons (held-out firing frequency) "
                            f"whose max cosine with another seed's decoder rows exceeds {cfg.threshold:g}",
        "consistency_random": floor["consistency"], "consistency_random_mean_mcs": floor["consistency_mean_mcs"],
        "normalization": {k: v for k, v in normalizer.to_dict().items() if k not in ("mean", "coord_scale")},
        "throughput": {"extraction_tokens_per_second": train_store.meta.get("extraction_tokens_per_second"),
                       "training_samples_per_second": _mean(r["samples_per_second"] for r in rows)},
        "seconds": {"load": load_seconds, "extract": extract_seconds, "ce": ce_seconds,
                    "train": float(sum(r["seconds"] * r["seeds"] for r in rows)),
                    "total": time.perf_counter() - started},
        "store": str(stores), "config": cfg.to_dict(), "methods": rows,
        "figures": {"frontier": str(out / "frontier.png"), "consistency": str(out / "consistency.png"),
                    "snippets": str(out / "snippets.html") if (out / "snippets.html").exists() else None},
    }
    report = _jsonable(report)
    figures_from_report(report, out)
    write_json_atomic(out / "results.json", report)
    return report


def _gba_targets(sae, features: list[int]) -> dict[int, str] | None:
    target = getattr(getattr(sae, "stack", None), "target_GM", None)
    if target is None:
        return None
    return {m: f"group target frequency {100 * float(target[0, m]):.3g}%" for m in features}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def format_table(report: dict) -> str:
    """A plain-text table of the per-method rows, for the terminal."""
    head = (f"{'method':<10} {'setting':<9} {'nmse':>7} {'EV':>6} {'L0':>7} {'L0/M':>7} {'alive':>6} "
            f"{'CE rec':>7} {'consist':>7} {'MCS':>5} {'sec':>6}")
    lines = [f"{report['model']}  layer {report['layer']} {report['site']}  width {report['width']}  "
             f"{report['train_tokens']} training tokens  CE clean {report['ce_clean']:.3f} / zero "
             f"{report['ce_zero']:.3f}", head, "-" * len(head)]

    def f(v, fmt):
        return "nan" if v is None else format(v, fmt)

    for r in report["methods"]:
        lines.append(f"{r['method']:<10} {r['setting']:<9} {f(r['nmse'], '7.4f')} {f(r['explained_variance'], '6.3f')} "
                     f"{f(r['l0'], '7.1f')} {f(r['l0_over_width'], '7.4f')} {f(r['alive_fraction'], '6.3f')} "
                     f"{f(r['ce_recovered'], '7.3f')} {f(r['consistency'], '7.3f')} {f(r['consistency_mean_mcs'], '5.2f')} "
                     f"{f(r['seconds'], '6.0f')}")
    lines.append(f"consist = fraction of top-alpha neurons with cross-seed MCS > threshold, MCS = their mean "
                 f"max cosine; two random dictionaries: {report['consistency_random']:.3f} / "
                 f"{report['consistency_random_mean_mcs']:.2f}; "
                 f"total {report['seconds']['total']:.0f} s")
    return "\n".join(lines)
