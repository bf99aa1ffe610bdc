"""The method registry: every SAE training recipe is a class registered under a name.

``@register_method("gba")`` puts a :class:`~polysemy.sae.methods.base.Method` subclass in the
registry; configs, the CLI, sweeps and checkpoints resolve it with :func:`get_method`. Each method has
its own params dataclass (``Method.Params``, a :class:`MethodParams`) that validates itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..configs import Config
from ..errors import ConfigError

_METHODS: dict[str, type] = {}


@dataclasses.dataclass(frozen=True)
class MethodParams(Config):
    """Base of every method's hyperparameters. ``validate_for(train_cfg)`` adds checks that need the
    training config (batch size, width); the default has none."""

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


def register_method(name: str):
    """Class decorator: register a Method subclass under ``name`` (and set ``cls.name``)."""

    def wrap(cls):
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is already registered")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return wrap


def _ensure_loaded() -> None:
    from . import methods  # noqa: F401  (importing registers the built-in methods)


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
