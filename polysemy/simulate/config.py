"""``WorldConfig``: a world of superposed features, made of small configs, validated and JSON-serialisable.

A world is X = H V (docs/paper.md section 1): V [n, d] holds the true features as rows, each sample
x = sum_i h_i v_i + noise has non-negative coefficients h_i, most of them zero. A WorldConfig is made of

- the world-wide numbers (:class:`WorldParams`): n [256] features, d [64] dimensions, s [3] (active
  features per sample for ``support="exact"``, active *parents* for ``"hierarchy"``, and the default
  expected L0 of the Bernoulli-type supports), noise [0.0] (std sigma of additive Gaussian noise on x),
  scale [1.0] (every sample, coefficients and noise, is multiplied by C > 0; our choice: a world in other
  units, to check that a method does not depend on the input scale), seed [0] (fixes the dictionary and
  the magnitude order; the *data seed* of ``World.stream(batch_size, seed)`` fixes the samples);
- a dictionary kind ``dictionary`` ["gaussian"] and its params (``cfg.dictionary_params``): the registry
  of ``dictionaries.py`` (gaussian, orthogonal, coherent, matrix), each kind documented in its class;
- a support kind ``support`` ["exact"] and its params (``cfg.support_params``): the registry of
  ``supports.py`` (exact, bernoulli, mixture, cooccur, hierarchy, structured);
- the magnitudes config (``cfg.magnitude_params``, ``magnitudes.py``): h_i = magnitude_i * U[spread].

Flat form (our choice, for compatibility): a WorldConfig is built, read, changed and serialised with
flat names, ``WorldConfig(n=128, support="bernoulli", frequency=0.02)``, ``cfg.frequency``,
``cfg.replace(d=32)``, ``cfg.to_dict()``, as before worlds were made of registered kinds; the sub-configs
are views built from the flat values (``WorldConfig.compose(support=Bernoulli.Params(...), n=128)``
builds one from them). The experiment store, committed results and checkpoints (``run.json``) are
content-addressed by ``config_hash()``, the hash of the flat JSON, so that form is the canonical one:
it always holds the :data:`FLAT_FORM` keys (the parameters of the built-in kinds, defaults included),
plus the params of the chosen kinds when these are registered elsewhere. So the hash of every config
that could be written before is unchanged (tests/simulate/test_world_pins.py), and registering a kind
changes no other config's hash.

A parameter that the chosen kinds do not use must keep its default, so that nothing is silently
ignored ("rho2 applies only to support='cooccur', got support='exact'"); five parameters that older
configs carry unused are tolerated (``lenient`` in their metadata).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..configs import Config, _tupleify
from ..errors import ConfigError, require, require_float_range, require_int_range
from ..io import to_jsonable
from .dictionaries import load_matrix  # noqa: F401 (re-exported; importing registers the built-in kinds)
from .magnitudes import MAGNITUDE_PROFILES, Magnitudes  # noqa: F401 (MAGNITUDE_PROFILES re-exported)
from .registry import (COEFFICIENT_LIMIT, DICTIONARIES, REGISTRIES, SUPPORTS, Params, param, param_table,
                       reserve_names, same_value, set_group)
from .supports import FREQUENCY_PROFILES, zipf_frequencies  # noqa: F401 (re-exported; registers the kinds)

# The canonical flat form: every config serialises these keys (their hashes depend on it; never change it).
FLAT_FORM = ("n", "d", "s", "dictionary", "coherence", "matrix", "support", "frequency_profile", "frequency",
             "zipf_exponent", "f_max", "f_min", "frequencies", "mixture_levels", "mixture_weights", "rho2",
             "hierarchy_children", "child_probability", "correlation_rank", "correlation_scale",
             "magnitude_profile", "imbalance", "magnitudes", "spread", "noise", "scale", "seed")


@dataclass(frozen=True)
class WorldParams(Params):
    """The world-wide numbers and the two kind selectors (module docstring)."""

    n: int = param(256, "number of true features (default 256)", cli_type=int)
    d: int = param(64, "ambient dimension (default 64)", cli_type=int)
    s: int = param(3, "active features per sample (exact support; active parents for hierarchy; expected L0 "
                   "of Bernoulli supports without --frequency) (default 3)", cli_type=int)
    dictionary: str = param("gaussian", "true feature directions")
    support: str = param("exact", "which features are active")
    noise: float = param(0.0, "std of additive Gaussian noise (default 0)", cli_type=float)
    scale: float = param(1.0, "multiply every sample by C > 0 (default 1): the same world in other units",
                         cli_type=float, metavar="C")
    seed: int = param(0, "seed of the dictionary and magnitudes (default 0; the data seed is separate)",
                      flag="--world-seed", cli_type=int)


set_group("world", WorldParams)


def _restore(cls, values: dict):
    """Unpickle a WorldConfig (it was validated when it was built)."""
    obj = cls.__new__(cls)
    object.__setattr__(obj, "_values", values)
    return obj


class WorldConfig(Config):
    """A world of superposed features: flat keyword arguments (module docstring), e.g.
    ``WorldConfig(n=256, d=64, s=3)``; every parameter and its source is documented with its kind.

    Frozen, validated, hashable and picklable like every Config, but not a dataclass of fields: the flat
    values live in one mapping, so that a registered kind can bring parameters of its own
    (``dataclasses.fields`` of a WorldConfig is empty; use ``to_dict``)."""

    def __init__(self, **values: Any):
        table = param_table()
        unknown = sorted(set(values) - set(table))
        if unknown:
            raise TypeError(f"WorldConfig got unknown parameter(s) {unknown}; allowed: {list(table)}")
        object.__setattr__(self, "_values", self._canonical(values, table))
        self.__post_init__()

    @staticmethod
    def _canonical(given: dict, table: dict) -> dict:
        """The flat values this config keeps: the FLAT_FORM keys and the chosen kinds' params (defaults
        filled in), and any other kind's param given with a value other than its default (which
        ``validate`` then refuses)."""
        chosen = {sel: given.get(sel, table[sel].default) for sel in REGISTRIES}
        kept = {}
        for name, spec in table.items():
            if name in FLAT_FORM or spec.group not in REGISTRIES or chosen[spec.group] in spec.kinds:
                kept[name] = given.get(name, spec.default)
            elif name in given and not same_value(given[name], spec.default):
                kept[name] = given[name]
        return kept

    # -- the flat values, read-only ----------------------------------------------------------------
    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        spec = param_table().get(name)
        if spec is not None:
            return spec.default  # a parameter of a kind this world does not use
        raise AttributeError(f"'WorldConfig' object has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self._values == other._values

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def __reduce__(self):
        return _restore, (type(self), dict(self._values))

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._values))

    # -- serialisation (the flat form) -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {name: to_jsonable(value) for name, value in self._values.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} must be built from a JSON object, got {type(data).__name__}")
        _require_known(cls.__name__, data)
        return cls(**{name: _tupleify(value) for name, value in data.items()})

    def replace(self, **changes: Any) -> WorldConfig:
        """A copy with ``changes`` (flat names) applied, validated again. Unknown names raise ConfigError."""
        _require_known(type(self).__name__, changes)
        return type(self)(**{**self._values, **changes})

    # -- the small configs it is made of -----------------------------------------------------------
    @classmethod
    def compose(cls, support: Params | None = None, dictionary: Params | None = None,
                magnitudes: Magnitudes | None = None, **world: Any) -> WorldConfig:
        """A WorldConfig from its parts: a registered support kind's params (``Bernoulli.Params(...)``),
        a dictionary kind's params, a :class:`Magnitudes` and world-wide numbers (n, d, s, noise, scale, seed)."""
        others = sorted(set(world) - {f.name for f in dataclasses.fields(WorldParams)} - set(REGISTRIES))
        if others:
            raise TypeError(f"WorldConfig.compose takes the world-wide numbers as keywords, got {others}")
        values = dict(world)
        for selector, part in (("support", support), ("dictionary", dictionary)):
            if part is not None:
                if not (isinstance(part, REGISTRIES[selector].base_params) and part.kind):
                    raise TypeError(f"{selector} must be the Params of a registered {selector} kind, got {part!r}")
                values[selector] = part.kind
                values.update(_fields_of(part))
        if magnitudes is not None:
            values.update(_fields_of(magnitudes))
        return cls(**values)

    @property
    def support_kind(self) -> type:
        """The registered :class:`~polysemy.simulate.supports.Support` subclass of this world."""
        return SUPPORTS.get(self.support)

    @property
    def dictionary_kind(self) -> type:
        """The registered :class:`~polysemy.simulate.dictionaries.Dictionary` subclass of this world."""
        return DICTIONARIES.get(self.dictionary)

    @property
    def support_params(self) -> Params:
        """The support kind's params (a view of the flat values)."""
        return self.support_kind.Params(**self._subset(self.support_kind.Params))

    @property
    def dictionary_params(self) -> Params:
        """The dictionary kind's params (a view of the flat values)."""
        return self.dictionary_kind.Params(**self._subset(self.dictionary_kind.Params))

    @property
    def magnitude_params(self) -> Magnitudes:
        """The magnitudes config (a view of the flat values)."""
        return Magnitudes(**self._subset(Magnitudes))

    def _subset(self, params_cls: type) -> dict:
        return {name: getattr(self, name) for name in params_cls.field_names()}

    # -- derived quantities that need no sampling ------------------------------------------------
    @property
    def base_frequency(self) -> float:
        """The uniform frequency of the Bernoulli-type supports: ``frequency`` or s/n (s/P for the
        parents of a structured world)."""
        return float(self.frequency) if self.frequency is not None else self.s / self.n_profiled

    @property
    def n_profiled(self) -> int:
        """How many features a frequency profile describes: the P parents of a structured world, else n."""
        return self.support_kind.n_profiled(self)

    @property
    def n_parents(self) -> int:
        """Number of parent features of a hierarchy world: n // (1 + hierarchy_children)."""
        return self.n // (1 + self.hierarchy_children)

    # -- validation --------------------------------------------------------------------------------
    def validate(self) -> None:
        require_int_range("n", self.n, 1)
        require_int_range("d", self.d, 1)
        require_int_range("seed", self.seed, 0)
        dictionary_kind = DICTIONARIES.get(self.dictionary)
        support_kind = SUPPORTS.get(self.support)
        table = param_table()
        for name, value in self._values.items():
            choices = table[name].meta.get("choices")
            require(not choices or value in choices, f"{name} must be one of {list(choices or ())}, got {value!r}")
        support_kind.validate_size(self)
        self._check_unused("dictionary")
        dictionary_kind.validate(self)
        self._check_unused("support")
        support_kind.validate(self)
        self._check_unused("magnitudes")
        Magnitudes.validate_in(self)
        require_float_range("noise", self.noise, 0.0, COEFFICIENT_LIMIT)
        require_float_range("scale", self.scale, 0.0, COEFFICIENT_LIMIT, low_open=True)

    def _check_unused(self, group: str) -> None:
        """Parameters of ``group`` that this world does not use must keep their defaults."""
        for name, spec in param_table().items():
            if spec.group != group or name not in self._values or spec.meta.get("lenient"):
                continue
            value = self._values[name]
            unmet = spec.first_unmet(self._values)
            require(unmet is None or same_value(value, spec.default),
                    f"{name} applies only to {spec.scope()}, got {unmet}={self._values.get(unmet)!r}")


def _require_known(owner: str, names) -> None:
    """ConfigError naming the ``names`` that are no world parameter, with the allowed ones."""
    table = param_table()
    unknown = sorted(set(names) - set(table))
    if unknown:
        raise ConfigError(f"{owner}: unknown field(s) {unknown}; allowed: {sorted(table)}")


def _fields_of(params: Params) -> dict:
    return {name: getattr(params, name) for name in params.field_names()}


reserve_names(name for name in dir(WorldConfig) if not name.startswith("_"))
