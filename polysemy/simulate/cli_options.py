"""World options for any command: ``add_world_arguments(parser)`` and ``world_config_from_args(args)``.

Every option defaults to None, so ``world_config_from_args`` starts from ``--preset`` (or the
WorldConfig defaults) and overrides only what was given. Conveniences when ``--support`` /
``--dictionary`` / a profile is not given explicitly (our choice, so one option is enough):
``--rho2`` selects support "cooccur"; ``--frequency``, ``--frequency-profile``, ``--zipf-exponent``,
``--f-max``, ``--f-min`` select support "bernoulli" (unless the support is already bernoulli or cooccur);
``--zipf-exponent``/``--f-max``/``--f-min`` select frequency profile "zipf"; ``--coherence`` selects
dictionary "coherent"; ``--matrix`` selects dictionary "matrix"; ``--imbalance`` selects magnitude
profile "geometric". Options that do not fit the resulting world raise a one-line ConfigError.
"""

from __future__ import annotations

import argparse

from .config import DICTIONARIES, FREQUENCY_PROFILES, SUPPORTS, WorldConfig
from .presets import PRESETS, get_preset


def add_world_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the world options (an argument group "world") to ``parser``; returns the parser."""
    g = parser.add_argument_group("world", "the simulated world (a preset, then any overrides)")
    g.add_argument("--preset", metavar="NAME", default=None,
                   help=f"start from a named world: {', '.join(sorted(PRESETS))}")
    g.add_argument("--n", type=int, default=None, help="number of true features (default 256)")
    g.add_argument("--d", type=int, default=None, help="ambient dimension (default 64)")
    g.add_argument("--s", type=int, default=None,
                   help="active features per sample (exact support; active parents for hierarchy; "
                        "expected L0 of Bernoulli supports without --frequency) (default 3)")
    g.add_argument("--dictionary", choices=DICTIONARIES, default=None,
                   help="true feature directions: gaussian unit rows (default), orthogonal (as incoherent "
                        "as n, d allow), coherent (coherence exactly --coherence), matrix (--matrix)")
    g.add_argument("--coherence", type=float, default=None, metavar="MU",
                   help="coherence mu of a coherent dictionary, in [bound(n, d), 1)")
    g.add_argument("--matrix", default=None, metavar="PATH", help="a .npy file [n, d] of true features")
    g.add_argument("--support", choices=SUPPORTS, default=None,
                   help="which features are active: exact (s uniform, default), bernoulli, mixture "
                        "(of sparsity levels), cooccur (planted rho2), hierarchy (parents, exclusive children)")
    g.add_argument("--frequency-profile", choices=FREQUENCY_PROFILES, default=None,
                   help="Bernoulli frequencies: uniform (--frequency), zipf (--zipf-exponent, --f-max, "
                        "--f-min) or explicit")
    g.add_argument("--frequency", type=float, default=None, metavar="F",
                   help="occurrence frequency in (0, 1] of a uniform Bernoulli or cooccur world (default s/n)")
    g.add_argument("--zipf-exponent", type=float, default=None, help="Zipf exponent a > 0 (default 1)")
    g.add_argument("--f-max", type=float, default=None, help="largest Zipf frequency (default: mean L0 = s)")
    g.add_argument("--f-min", type=float, default=None, help="smallest Zipf frequency (default f_max n^-a)")
    g.add_argument("--rho2", type=float, default=None,
                   help="planted co-occurrence max P(h_j>0 | h_i>0), in [f, 1] (selects support cooccur)")
    g.add_argument("--imbalance", type=float, default=None,
                   help="max/min ratio >= 1 of geometric per-feature magnitudes h_i")
    g.add_argument("--spread", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="each coefficient is h_i times U[LO, HI] (default 0.5 1.5)")
    g.add_argument("--noise", type=float, default=None, help="std of additive Gaussian noise (default 0)")
    g.add_argument("--scale", type=float, default=None, metavar="C",
                   help="multiply every sample by C > 0 (default 1): the same world in other units")
    g.add_argument("--world-seed", type=int, default=None,
                   help="seed of the dictionary and magnitudes (default 0; the data seed is separate)")
    return parser


_DIRECT = {  # argparse dest -> WorldConfig field, copied when given
    "n": "n", "d": "d", "s": "s", "dictionary": "dictionary", "coherence": "coherence", "matrix": "matrix",
    "support": "support", "frequency_profile": "frequency_profile", "frequency": "frequency",
    "zipf_exponent": "zipf_exponent", "f_max": "f_max", "f_min": "f_min", "rho2": "rho2",
    "imbalance": "imbalance", "noise": "noise", "scale": "scale", "world_seed": "seed",
}


def world_config_from_args(args: argparse.Namespace) -> WorldConfig:
    """The preset (or defaults) with every given option applied; ConfigError on impossible input."""
    preset = getattr(args, "preset", None)
    base = get_preset(preset) if preset else WorldConfig()
    given = {field: getattr(args, dest) for dest, field in _DIRECT.items() if getattr(args, dest, None) is not None}
    if getattr(args, "spread", None) is not None:
        given["spread"] = tuple(args.spread)
    changes = dict(given)
    if "support" not in given:
        if "rho2" in given:
            changes["support"] = "cooccur"
        elif any(k in given for k in ("frequency", "frequency_profile", "zipf_exponent", "f_max", "f_min")) \
                and base.support not in ("bernoulli", "cooccur", "structured"):
            changes["support"] = "bernoulli"
    if "frequency_profile" not in given and any(k in given for k in ("zipf_exponent", "f_max", "f_min")):
        changes["frequency_profile"] = "zipf"
    if "dictionary" not in given:
        if "coherence" in given:
            changes["dictionary"] = "coherent"
        elif "matrix" in given:
            changes["dictionary"] = "matrix"
    if "imbalance" in given:
        changes["magnitude_profile"] = "geometric"
    # Leaving a kind drops the options that belong to it, so a preset's extras never block an override.
    support = changes.get("support", base.support)
    if support != "cooccur" and "rho2" not in given:
        changes["rho2"] = None
    if support not in ("bernoulli", "structured") and "frequency_profile" not in given:
        changes["frequency_profile"] = "uniform"
    dictionary = changes.get("dictionary", base.dictionary)
    if dictionary != "coherent" and "coherence" not in given:
        changes["coherence"] = None
    if dictionary != "matrix" and "matrix" not in given:
        changes["matrix"] = None
    return base.replace(**changes)
