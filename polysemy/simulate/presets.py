"""The paper's worlds, by name (``--preset NAME`` wherever world options are taken).

- ``paper-toy``: the imbalanced toy world of docs/paper.md section 6 [paper]: n = 128, d = 42, Gaussian V; half of
  the samples have s = 3 active features and half s = 20, so every feature has f = 11.5/128 ~ 0.09.
- ``theorem-uniform``: the theorem's uniform world (docs/paper.md section 1, 5): n = 256, d = 64, exactly s = 3
  features per sample, uniform supports, Gaussian V (f = 3/256).
- ``resonance-light``: light superposition d = 64 > sqrt(n) = 16 (n = 256, s = 3), the wide band.
- ``resonance-heavy``: heavy superposition d = 12 < sqrt(n) = 16 (n = 256, s = 3), the narrow band.
Coefficients use the defaults (magnitude 1, spread U[0.5, 1.5], no noise; [unknown] in the paper).
"""

from __future__ import annotations

from ..errors import ConfigError
from .config import WorldConfig

PRESETS: dict[str, WorldConfig] = {
    "paper-toy": WorldConfig(n=128, d=42, s=3, support="mixture", mixture_levels=(3, 20),
                             mixture_weights=(0.5, 0.5)),
    "theorem-uniform": WorldConfig(n=256, d=64, s=3),
    "resonance-light": WorldConfig(n=256, d=64, s=3),
    "resonance-heavy": WorldConfig(n=256, d=12, s=3),
}


def get_preset(name: str) -> WorldConfig:
    """The preset's WorldConfig; ConfigError listing the names if ``name`` is unknown."""
    if name not in PRESETS:
        raise ConfigError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]
