"""World options for any command: ``add_world_arguments(parser)`` and ``world_config_from_args(args)``.

The options are generated from the world's parameters (``registry.param_table``): the world-wide
numbers, ``--dictionary`` and ``--support`` (their choices are the registered kinds) and every params
field of the registered kinds and of the magnitudes config that declares a flag (``param(..., flag=...)``).
So a kind registered before the parser is built brings its options with it.

Every option defaults to None, so ``world_config_from_args`` starts from ``--preset`` (or the
WorldConfig defaults) and overrides only what was given. An option implies its kind when the kind is
not given and the current one does not use the option (our choice, so one option is enough): the
first kind implied by a given option (``implies`` in its metadata; by default the one kind that has it)
that uses every given option, e.g. ``--rho2`` selects support "cooccur"; ``--frequency``,
``--frequency-profile``, ``--zipf-exponent``, ``--f-max``, ``--f-min`` select support "bernoulli"
(``--rho2 R --frequency F`` selects "cooccur", which uses both); ``--zipf-exponent``/``--f-max``/``--f-min``
select frequency profile "zipf"; ``--coherence`` selects dictionary "coherent"; ``--matrix`` selects
dictionary "matrix"; ``--imbalance`` selects magnitude profile "geometric"; ``--mixture-levels`` selects
"mixture", ``--hierarchy-children`` "hierarchy", ``--correlation-rank`` "structured". Leaving a kind drops
the options the new world does not use (back to their defaults), so a preset's extras never block an
override. Options that do not fit the resulting world raise a one-line ConfigError.
"""

from __future__ import annotations

import argparse

from .config import WorldConfig
from .presets import PRESETS, get_preset
from .registry import REGISTRIES, ParamSpec, param_table, same_value


def _options() -> list[tuple[str, ParamSpec]]:
    """(flag, parameter) of every world option, in the order ``--help`` lists them."""
    options = []
    for name, spec in param_table().items():
        flag = spec.meta.get("flag", True)
        if flag:
            options.append((flag if isinstance(flag, str) else "--" + name.replace("_", "-"), spec))
    return options


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def world_option_dests() -> tuple[str, ...]:
    """The argparse destinations of the world options (``--preset`` included)."""
    return ("preset",) + tuple(_dest(flag) for flag, _ in _options())


def _selector_help(spec: ParamSpec) -> str:
    kinds = [f"{name} ({cls.summary})" if cls.summary else name for name, cls in REGISTRIES[spec.name].items()]
    return f"{spec.meta['help']}: {', '.join(kinds)}"


def add_world_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the world options (an argument group "world") to ``parser``; returns the parser."""
    g = parser.add_argument_group("world", "the simulated world (a preset, then any overrides)")
    g.add_argument("--preset", metavar="NAME", default=None,
                   help=f"start from a named world: {', '.join(sorted(PRESETS))}")
    for flag, spec in _options():
        meta = spec.meta
        if spec.name in REGISTRIES:
            g.add_argument(flag, choices=REGISTRIES[spec.name].names(), default=None, help=_selector_help(spec))
            continue
        extra = {key: meta[key] for key in ("nargs", "metavar", "choices") if meta.get(key) is not None}
        g.add_argument(flag, type=meta.get("cli_type"), default=None, help=meta["help"], **extra)
    return parser


def _implied(selector: str, current, given: list[ParamSpec]):
    """The value of ``selector`` the given options imply (``current`` if it uses them all)."""
    relevant = [spec for spec in given if selector in spec.conditions]
    if all(current in spec.conditions[selector] for spec in relevant):
        return current
    candidates = [spec.implies[selector] for spec in relevant if selector in spec.implies]
    for candidate in candidates:
        if all(candidate in spec.conditions[selector] for spec in relevant):
            return candidate
    return candidates[0] if candidates else current


def world_config_from_args(args: argparse.Namespace) -> WorldConfig:
    """The preset (or defaults) with every given option applied; ConfigError on impossible input."""
    preset = getattr(args, "preset", None)
    base = get_preset(preset) if preset else WorldConfig()
    table = param_table()
    given = {}
    for flag, spec in _options():
        value = getattr(args, _dest(flag), None)
        if value is not None:
            given[spec.name] = tuple(value) if isinstance(value, list) else value
    values = {name: getattr(base, name) for name in table}
    values.update(given)
    selectors = [name for name in table if any(name in spec.conditions for spec in table.values())]
    for selector in selectors:
        if selector not in given:
            values[selector] = _implied(selector, values[selector], [table[name] for name in given])
    changed = True
    while changed:  # leaving a kind drops the options the world no longer uses (a profile, then its knobs)
        changed = False
        for name, spec in table.items():
            if name not in given and not spec.used_in(values) and not same_value(values[name], spec.default):
                values[name], changed = spec.default, True
    return base.replace(**{name: value for name, value in values.items() if not same_value(value, getattr(base, name))
                           or name in given})
