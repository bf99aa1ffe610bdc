"""Registries of world parts: support kinds and dictionary kinds, each a class with its own params.

A world (``WorldConfig``) is made of small configs: the support (which features fire), the dictionary
(the true directions V), the magnitudes (the coefficient law) and a few world-wide numbers (n, d, s,
noise, scale, seed). Support and dictionary kinds are registered by name::

    @register_support("toy")
    class Toy(Support):
        \"\"\"One line on what fires (shown by --help).\"\"\"

        @dataclass(frozen=True)
        class Params(SupportParams):
            toy_rate: float = param(0.1, "the toy's rate in (0, 1]", cli_type=float)

Each params field is declared with :func:`param`, whose metadata (help text, CLI flag, argparse type,
which kind a flag implies) generates the command-line options (``cli_options.py``) and the
"X applies only to ..." checks. A field name is one flat ``WorldConfig`` key: kinds that share a name
(``frequency`` for bernoulli, cooccur and structured) share the parameter, which must then be declared
identically (use one factory function).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..configs import Config
from ..errors import ConfigError

# Largest coefficient (and noise std) a world may have: sums of squares of [B, d] float32 batches stay
# finite and precise below it (our choice; float32 overflows at 3.4e38).
COEFFICIENT_LIMIT = 1e6


def is_number(x) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def same_value(a, b) -> bool:
    """a == b, False where the comparison fails or is ambiguous (arrays)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def describe_value(value) -> str:
    """A short description for error messages: lists by their length, anything else by its repr."""
    if isinstance(value, (tuple, list)):
        return f"a list of {len(value)} values"
    return repr(value)


def param(default: Any, help: str, *, flag: str | None | bool = True, cli_type=None, nargs=None,
          metavar=None, choices=None, implies: dict | None = None, used_when: dict | None = None,
          lenient: bool = False):
    """A params field with the metadata the CLI and the checks read.

    help: one line for ``--help``. flag: the option (True: ``--`` + the name with dashes; None or
    False: no option). cli_type, nargs, metavar, choices: passed to argparse (nargs values become tuples).
    implies: {selector: value} the option selects when that selector ("support", "dictionary",
    "frequency_profile", "magnitude_profile") was not given and its current value does not use the
    parameter (default: the one kind of its registry that has it). used_when: {selector: (values...)}
    beyond the kinds that have it, e.g. ``f_max`` only for ``frequency_profile="zipf"``. lenient: a value
    the world does not use is tolerated (kept and ignored), as older configs carry such values; new
    parameters should leave it False, so that nothing is silently ignored.
    """
    meta = {"help": help, "flag": flag, "cli_type": cli_type, "nargs": nargs, "metavar": metavar,
            "choices": tuple(choices) if choices else None, "implies": dict(implies or {}),
            "used_when": {k: tuple(v) for k, v in (used_when or {}).items()}, "lenient": lenient}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Params(Config):
    """Base of the small configs a world is made of. A params object is a view: it is validated in its
    world's context (n, d, s) by the kind's ``validate(cfg)``, so ``validate`` here checks nothing."""

    kind = None  # the registered kind name, set by the registry (a class attribute, not a field)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


@dataclasses.dataclass(frozen=True)
class SupportParams(Params):
    """Base of every support kind's params."""


@dataclasses.dataclass(frozen=True)
class DictionaryParams(Params):
    """Base of every dictionary kind's params."""


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One flat world parameter: its name, default, metadata, its group ("world", "support",
    "dictionary", "magnitudes") and, for the registries, the kinds that have it."""

    name: str
    default: Any
    meta: dict
    group: str
    kinds: tuple = ()

    @property
    def conditions(self) -> dict[str, tuple]:
        """{selector: allowed values} that must all hold for the parameter to be used."""
        cond = {self.group: self.kinds} if self.group in REGISTRIES else {}
        cond.update(self.meta.get("used_when") or {})
        return cond

    def used_in(self, values: dict) -> bool:
        return all(values.get(sel) in allowed for sel, allowed in self.conditions.items())

    def first_unmet(self, values: dict) -> str | None:
        """The first selector whose value does not use this parameter (None if it is used)."""
        return next((sel for sel, allowed in self.conditions.items() if values.get(sel) not in allowed), None)

    @property
    def implies(self) -> dict:
        implied = dict(self.meta.get("implies") or {})
        if self.group in REGISTRIES and self.group not in implied and len(self.kinds) == 1:
            implied[self.group] = self.kinds[0]
        return implied

    def scope(self) -> str:
        """Where the parameter applies, in words: "support='bernoulli' or 'structured' and ..."."""
        return " and ".join(f"{sel}=" + _either([repr(v) for v in allowed])
                            for sel, allowed in self.conditions.items())


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


class Registry:
    """Named kinds of one world part. ``register(name)`` is a class decorator; ``get(name)`` the class."""

    def __init__(self, selector: str, base_params: type):
        self.selector = selector        # the WorldConfig key that names the kind
        self.base_params = base_params
        self._kinds: dict[str, type] = {}

    def register(self, name: str):
        def wrap(cls):
            if name in self._kinds and self._kinds[name] is not cls:
                raise ValueError(f"{self.selector} {name!r} is already registered")
            if "Params" not in cls.__dict__:  # no params of its own: an empty (or the parent's) set
                cls.Params = dataclasses.dataclass(frozen=True)(
                    type(f"{cls.__name__}Params", (cls.Params,), {"__module__": cls.__module__}))
            params = cls.Params
            if not (isinstance(params, type) and issubclass(params, self.base_params)
                    and dataclasses.is_dataclass(params)):
                raise TypeError(f"{cls.__name__}.Params must be a dataclass subclass of {self.base_params.__name__}")
            if params.__dict__.get("kind") not in (None, name):
                raise TypeError(f"{cls.__name__}.Params belongs to {self.selector} {params.kind!r}; "
                                "give each kind its own Params class")
            previous = self._kinds.get(name)
            self._kinds[name] = cls
            try:
                param_table(refresh=True)  # checks that shared names are declared alike
            except ValueError:
                if previous is None:
                    del self._kinds[name]
                else:
                    self._kinds[name] = previous
                param_table(refresh=True)
                raise
            cls.name = name
            params.kind = name
            return cls

        return wrap

    def unregister(self, name: str) -> None:
        """Remove a kind (tests register toy kinds and take them out again)."""
        cls = self._kinds.pop(name)
        cls.Params.kind = None
        param_table(refresh=True)

    def get(self, name: str) -> type:
        """The class registered as ``name``; ConfigError listing the names otherwise."""
        if not isinstance(name, str) or name not in self._kinds:
            raise ConfigError(f"{self.selector} must be one of {list(self._kinds)}, got {name!r}")
        return self._kinds[name]

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order (the built-in kinds first)."""
        return tuple(self._kinds)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self._kinds

    def __iter__(self):
        return iter(self.names())

    def items(self):
        return self._kinds.items()


SUPPORTS = Registry("support", SupportParams)
DICTIONARIES = Registry("dictionary", DictionaryParams)
REGISTRIES = {"support": SUPPORTS, "dictionary": DICTIONARIES}


def register_support(name: str):
    """Class decorator: register a :class:`~polysemy.simulate.supports.Support` subclass as ``name``."""
    return SUPPORTS.register(name)


def register_dictionary(name: str):
    """Class decorator: register a :class:`~polysemy.simulate.dictionaries.Dictionary` subclass as ``name``."""
    return DICTIONARIES.register(name)


# The world-wide parameters and the magnitudes config are set by config.py and magnitudes.py
# (``set_group``): {group: Params class}, in the order their flags are listed.
_GROUPS: dict[str, type] = {}
_TABLE: dict[str, ParamSpec] | None = None
_RESERVED: set[str] = set()  # attributes of WorldConfig, which a parameter's name would hide


def reserve_names(names) -> None:
    """Names no parameter may take (config.py reserves WorldConfig's attributes)."""
    _RESERVED.update(names)
    param_table(refresh=True)


def set_group(group: str, params_cls: type) -> None:
    """Declare the fixed params class of a group ("world" or "magnitudes")."""
    _GROUPS[group] = params_cls
    param_table(refresh=True)


def _specs_of(params_cls: type, group: str, kind: str | None) -> list[ParamSpec]:
    return [ParamSpec(f.name, f.default, dict(f.metadata), group, (kind,) if kind else ())
            for f in dataclasses.fields(params_cls)]


def param_table(refresh: bool = False) -> dict[str, ParamSpec]:
    """Every flat parameter of a world, by name, in flag order: the world's own fields, each selector
    ("dictionary", "support") followed by its kinds' params, the magnitudes after the support's.
    Shared names must be declared alike (same default and metadata): ValueError otherwise."""
    global _TABLE
    if _TABLE is not None and not refresh:
        return _TABLE
    ordered: list[ParamSpec] = []
    world = _specs_of(_GROUPS["world"], "world", None) if "world" in _GROUPS else [
        ParamSpec(selector, None, {}, "world") for selector in REGISTRIES]  # while config.py loads
    for spec in world:
        ordered.append(spec)
        if spec.name in REGISTRIES:
            for kind, cls in REGISTRIES[spec.name].items():
                ordered += _specs_of(cls.Params, spec.name, kind)
        if spec.name == "support" and "magnitudes" in _GROUPS:
            ordered += _specs_of(_GROUPS["magnitudes"], "magnitudes", None)
    table: dict[str, ParamSpec] = {}
    for spec in ordered:
        if spec.name in _RESERVED or spec.name.startswith("_"):
            raise ValueError(f"parameter name {spec.name!r} is taken by WorldConfig; choose another")
        seen = table.get(spec.name)
        if seen is None:
            table[spec.name] = spec
            continue
        if seen.group != spec.group or seen.default != spec.default or seen.meta != spec.meta:
            raise ValueError(f"parameter {spec.name!r} is declared twice with another default, group or "
                             f"metadata ({seen.group} and {spec.group}); shared parameters must be declared alike")
        table[spec.name] = dataclasses.replace(seen, kinds=seen.kinds + spec.kinds)
    _TABLE = table
    return table
