"""Base for every config: dataclasses that validate themselves, serialise to JSON and hash stably.

Usage::

    @dataclass(frozen=True)
    class MyConfig(Config):
        n: int = 10
        def validate(self) -> None:
            require_int_range("n", self.n, 1)

Subclasses override :meth:`validate`; it runs in ``__post_init__``, so an invalid config cannot exist.
Tuples survive the JSON round trip (lists are turned back into tuples for fields whose default or
annotation is a tuple), and nested ``Config`` fields are rebuilt from their dicts.
The hash is the first 16 hex digits of SHA-256 over the canonical JSON (sorted keys, no spaces) plus
the class name, so equal configs of the same class hash equally across processes and machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from typing import Any, TypeVar

from .errors import ConfigError
from .io import to_jsonable

C = TypeVar("C", bound="Config")


def _tupleify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tupleify(v) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class Config:
    """Mixin base for frozen, self-validating, JSON-serialisable configs."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:  # pragma: no cover - overridden
        """Raise :class:`~polysemy.errors.ConfigError` naming the parameter and its allowed range."""

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent, separators=None if indent else (",", ":"))

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} must be built from a JSON object, got {type(data).__name__}")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}; allowed: {sorted(names)}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in data.items():
            hint = hints.get(key)
            sub = _config_class(hint)
            if sub is not None and isinstance(value, dict):
                value = sub.from_dict(value)
            elif isinstance(value, list):
                value = _tupleify(value)
            kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{cls.__name__}: invalid JSON ({exc.msg} at char {exc.pos})") from None
        return cls.from_dict(data)

    def config_hash(self) -> str:
        """Stable 16-hex-digit id of this config (class name + canonical JSON)."""
        payload = type(self).__name__ + ":" + self.to_json()
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied (validated again). Unknown names raise ConfigError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(f"{type(self).__name__}: unknown field(s) {unknown}; allowed: {sorted(names)}")
        return dataclasses.replace(self, **changes)


def _config_class(hint: Any) -> type[Config] | None:
    """Return the Config subclass named by a type hint (``X`` or ``X | None``), if any."""
    candidates = typing.get_args(hint) or (hint,)
    for c in candidates:
        if isinstance(c, type) and issubclass(c, Config):
            return c
    return None
