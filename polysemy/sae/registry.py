"""The method registry: every SAE training recipe is a class registered under a name.

``@register_method("gba")`` puts a :class:`~polysemy.sae.methods.base.Method` subclass in the
registry; configs, the CLI, sweeps, benches and checkpoints resolve it with :func:`get_method`. Each
method has its own params dataclass (``Method.Params``, a :class:`MethodParams`) that validates itself.

A method is one file (issue 10): its Params declare each field with :func:`param`, whose metadata
says what the field means (help text), whether ``polysemy train`` gets a flag for it (and under
which name) and whether it is *structural* (must be equal within a stack of models trained
together). Everything else reads the registry: the train flags (``sae/cli.py``), the stack key
(``Method.structure_key``), the method lists of every bench, the plot colours
(:func:`method_colors`) and the docs' method table (:func:`method_table`).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any

from ..configs import Config
from ..errors import ConfigError

_METHODS: dict[str, type] = {}


def param(default: Any = dataclasses.MISSING, help: Any = "", *, cli: bool = True, flag: str | None = None,
          structural: bool = False, shown: str | None = None, metavar: str | None = None,
          choices: tuple | None = None, cli_type: Any = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A declared parameter: a dataclass field whose metadata the registry and the CLIs read (a method's
    ``Params``; the sections of ``polysemy.llm.config.LLMBenchConfig``).

    help:       one line for ``--help`` and the docs (``polysemy train`` adds the defaults); a function
                of no arguments when the line lists what is registered when the parser is built.
    cli:        whether the command has a flag for it; ``flag``: its name when it is not the
                field name with ``-`` for ``_`` (:func:`field_flags`).
    structural: models with different values cannot share a stack (``Method.structure_key``).
    shown:      how the default reads where it is not a plain value (``aux_k``'s None is "d/2").
    metavar, choices: passed to argparse; cli_type: the argparse type where the annotation's
                (:func:`cli_parser`) is not the one.
    default_factory: as ``dataclasses.field`` (a dict or a list made per instance).

    A subclass that only changes a default may redeclare the field plainly (``a0: float = 0.1``):
    the metadata is looked up along the class hierarchy (:func:`field_meta`).
    """
    meta = {"help": help, "cli": cli, "flag": flag, "structural": structural, "shown": shown,
            "metavar": metavar, "choices": tuple(choices) if choices else None, "cli_type": cli_type}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def field_meta(cls: type, name: str) -> dict:
    """The :func:`param` metadata of field ``name`` of the dataclass ``cls``: the nearest class along
    the hierarchy that declared it with metadata ({} if none did)."""
    for klass in cls.__mro__:
        found = getattr(klass, "__dataclass_fields__", {}).get(name)
        if found is not None and found.metadata:
            return dict(found.metadata)
    return {}


def field_flags(cls: type) -> list[tuple[str, str, dict]]:
    """(flag, field name, metadata) of every field of the dataclass ``cls`` that has a flag (``cli``,
    true unless declared otherwise): the declared ``flag``, else the name with ``-`` for ``_``."""
    out = []
    for f in dataclasses.fields(cls):
        meta = field_meta(cls, f.name)
        if meta.get("cli", True):
            out.append((meta.get("flag") or f.name.replace("_", "-"), f.name, meta))
    return out


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclasses.dataclass(frozen=True)
class MethodParams(Config):
    """Base of every method's hyperparameters. ``validate_for(train_cfg)`` adds checks that need the
    training config (batch size, width); the default has none.

    ``cli_aliases``: extra ``polysemy train`` flags that set several fields at once,
    ``{flag: ((field, ...), help)}`` (gba's ``--gamma`` sets gamma_plus and gamma_minus)."""

    cli_aliases = {}      # a plain class attribute (no annotation): not a dataclass field

    def validate_for(self, train_cfg) -> None:
        return None

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def resolve(cls, params: dict[str, Any] | None) -> "MethodParams":
        """Validated params from a (possibly partial) dict; unknown names raise ConfigError."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(cls.field_names()))
        if unknown:
            raise ConfigError(f"unknown method parameter(s) {unknown}; allowed: {cls.field_names()}")
        return cls.from_dict(params)

    @classmethod
    def meta(cls, name: str) -> dict:
        """The :func:`param` metadata of field ``name`` (:func:`field_meta`)."""
        return field_meta(cls, name)

    @classmethod
    def hints(cls) -> dict[str, Any]:
        """The fields' resolved type annotations."""
        return typing.get_type_hints(cls)

    def structural_values(self) -> tuple:
        """(name, value) of every structural field, for the stack key."""
        return tuple((f.name, _hashable(getattr(self, f.name))) for f in dataclasses.fields(self)
                     if self.meta(f.name).get("structural"))


def register_method(name: str):
    """Class decorator: register a Method subclass under ``name`` (and set ``cls.name``)."""

    def wrap(cls):
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is already registered")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return wrap


def unregister_method(name: str) -> None:
    """Remove a registered method (tests and the docs' examples register one and take it out again).
    An unknown name raises ConfigError."""
    _ensure_loaded()
    if name not in _METHODS:
        raise ConfigError(f"method {name!r} is not registered")
    del _METHODS[name]
    _knobs.cache_clear()      # a later method of the same name gets its own flags


def _ensure_loaded() -> None:
    # lazy: import cycle (registry -> methods -> registry); importing registers the built-in methods
    from . import methods  # noqa: F401


def list_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    _ensure_loaded()
    return sorted(_METHODS)


def get_method(name: str):
    """The registered Method *instance* for ``name``; unknown names raise ConfigError."""
    _ensure_loaded()
    if name not in _METHODS:
        raise ConfigError(f"method must be one of {sorted(_METHODS)}, got {name!r}")
    return _METHODS[name]()


def bench_methods() -> tuple[str, ...]:
    """The methods every bench runs by default (``Method.bench_order`` set), in that order."""
    ranked = [(get_method(m).declared("bench_order"), m) for m in list_methods()]
    return tuple(m for order, m in sorted((o, m) for o, m in ranked if o is not None))


def method_colors() -> dict[str, str]:
    """Plot colour of every registered method (and of the rows some methods add, e.g. gba-tied)."""
    colors: dict[str, str] = {}
    for m in list_methods():
        colors.update(get_method(m).plot_colors())
    return colors


# -- what the registry says about each parameter: defaults, CLI flags, the docs' table ---------------

def shown_default(params_cls, name: str) -> str:
    """The default of field ``name`` as the help and the docs show it."""
    meta = params_cls.meta(name)
    value = getattr(params_cls(), name)
    if value is None and meta.get("shown"):
        return meta["shown"]
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _word_or_number(text: str):
    """A knob that takes a word ("none", "mean-norm") or a number."""
    try:
        return float(text)
    except ValueError:
        return text


def _list_of(kind):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(item.strip()) for item in text.split(",") if item.strip())
        except ValueError:
            raise ConfigError(f"expected a comma-separated list of {kind.__name__} values, got {text!r}") from None

    parse.__name__ = f"{kind.__name__}-list"
    return parse


def cli_parser(hint) -> Any:
    """The argparse ``type`` for a field annotated ``hint``: int, float, str, a word or a number
    (``str | float``), a comma-separated list (``tuple[int, ...]``); ``X | None`` parses as X."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = [a for a in typing.get_args(hint) if a is not type(None)] if union else [hint]
    if str in args and float in args:
        return _word_or_number
    (one,) = args
    if typing.get_origin(one) is tuple:
        return _list_of(typing.get_args(one)[0])
    return one if one in (int, float, str) else str


@dataclasses.dataclass(frozen=True)
class Knob:
    """One generated ``polysemy train`` flag: the fields it sets, its argparse type, help, methods."""

    flag: str
    names: tuple
    parse: Any
    help: str
    methods: tuple


@functools.cache
def _knobs(names: tuple) -> dict[str, Knob]:
    flags: dict[str, dict] = {}
    for m in names:
        cls = get_method(m).Params
        hints = cls.hints()
        entries = [(flag, (name,), meta) for flag, name, meta in field_flags(cls)]
        entries += [(flag, tuple(fields), {"help": text}) for flag, (fields, text) in cls.cli_aliases.items()]
        for flag, fields, meta in entries:
            entry = flags.setdefault(flag, {"names": fields, "help": meta.get("help", ""), "methods": [],
                                            "parse": meta.get("cli_type") or cli_parser(hints[fields[0]]),
                                            "defaults": {}})
            if entry["names"] != fields:
                raise ValueError(f"--{flag} sets {entry['names']} for some methods and {fields} for {m!r}")
            entry["methods"].append(m)
            if len(fields) == 1:
                entry["defaults"].setdefault(shown_default(cls, fields[0]), []).append(m)
    out = {}
    for flag, e in flags.items():
        defaults = e["defaults"]
        if len(defaults) == 1:
            default = f"; default {next(iter(defaults))}"
        elif defaults:
            default = "; default " + ", ".join(f"{v} ({', '.join(ms)})" for v, ms in defaults.items())
        else:
            default = ""
        out[flag] = Knob(flag, e["names"], e["parse"], f"{e['help']}{default} [{', '.join(e['methods'])}]",
                         tuple(e["methods"]))
    return out


def method_knobs() -> dict[str, Knob]:
    """Every method's CLI-exposed parameters (and aliases) as flags: {flag: Knob}. A flag sets the
    same field(s) for every method that has it; the methods are listed in its help."""
    return _knobs(tuple(list_methods()))


TABLE_START = "<!-- method table: generated from the registry (polysemy.sae.registry.write_method_table) -->"
TABLE_END = "<!-- end of the method table -->"


def write_method_table(path) -> None:
    """Replace the table between ``TABLE_START`` and ``TABLE_END`` in the markdown file ``path`` with
    :func:`method_table` (docs/sae.md; tests/sae/test_registry.py checks that it is current)."""
    text = Path(path).read_text(encoding="utf-8")
    head, rest = text.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    Path(path).write_text(f"{head}{TABLE_START}\n{method_table()}\n{TABLE_END}{tail}", encoding="utf-8")


def method_table() -> str:
    """The docs' method table (markdown): name, model class, what it is, its knobs with their
    defaults, its lr."""
    rows = ["| name | model | what it is | knobs (defaults) | lr |", "|---|---|---|---|---|"]
    for m in list_methods():
        method = get_method(m)
        cls = method.Params
        knobs = ", ".join(f"`{f}` {shown_default(cls, f)}" for f in cls.field_names())
        lr = f"{method.default_lr:g}" + (f", {method.default_lr_schedule}" if method.default_lr_schedule != "constant"
                                         else "")
        rows.append(f"| `{m}` | {method.model_class.__name__} | {method.declared('summary')} | {knobs or '-'} | {lr} |")
    return "\n".join(rows)
