"""The normalisation rule: model-scale activations ``a`` -> SAE inputs ``x`` of mean norm 1, invertibly.

Why: the SAE of docs/paper.md section 3 keeps ``||w_m|| = 1`` and clamps its biases to [-1, 0], so its inputs
must be O(1); the toy worlds have unit-norm features with O(1) coefficients. SmolLM2's residual stream has
norms around 100, a few coordinates whose typical size is 25-40 times the others' (e.g. coordinate 507),
and rare "attention-sink" tokens with norms in the tens of thousands. Left alone, those would own the
reconstruction loss.

The rule (our choice; its constants are fitted once on a calibration set and stored in ``meta.json``):
1. Position 0 (BOS, the attention sink) is never stored (see ``extract``).
2. Outlier coordinates: with ``m_j = mean |a_j|`` over the calibration tokens (tokens whose raw norm
   exceeds ``sink_factor`` times the median raw norm left out, so that a few sinks cannot set it) and
   ``med = median_j m_j``, coordinate ``j`` is divided
   by ``c_j = max(1, m_j / (outlier_factor * med))``. Ordinary coordinates keep ``c_j = 1``; an outlier
   coordinate is brought down to ``outlier_factor`` times a typical one (it stays the largest, so its
   information is kept). A diagonal map, hence exactly invertible.
3. Sink tokens: a token whose rescaled norm ``||a / c||`` exceeds ``sink_factor`` times the median rescaled
   norm is treated like BOS: left out of training and evaluation, and passed through unchanged when the
   SAE is spliced into the model. ``sink_fraction`` in ``meta.json`` says how many there were.
4. Centre: subtract ``mu``, the mean of ``a / c`` over non-sink calibration tokens (the tied SAE's
   ``b_pre`` could learn it, but centring lets it start at 0 and makes "explained variance" and
   "normalised MSE" refer to the same centred data).
5. Scale: divide by ``s``, the mean norm of the centred non-sink calibration tokens divided by
   ``target_norm`` (default 1, the O(1) scale of docs/paper.md section 3).

So ``x = (a / c - mu) / s`` and, exactly inverted, ``a = (x * s + mu) * c``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..configs import Config
from ..errors import require, require_float_range


@dataclass(frozen=True)
class NormalizeConfig(Config):
    """Constants of the rule that the user chooses (see the module docstring)."""

    outlier_factor: float = 5.0   # a coordinate is an outlier when mean|a_j| > outlier_factor * median
    sink_factor: float = 10.0     # a token is a sink when its rescaled norm > sink_factor * median norm
    target_norm: float = 1.0      # mean L2 norm of the normalised, centred activations
    center: bool = True           # subtract the calibration mean (False: subtract nothing)

    def validate(self) -> None:
        require_float_range("outlier_factor", self.outlier_factor, 1.0, float("inf"), high_open=True)
        require_float_range("sink_factor", self.sink_factor, 1.0, float("inf"))
        require_float_range("target_norm", self.target_norm, 0.0, float("inf"), low_open=True, high_open=True)
        require(isinstance(self.center, bool), f"center must be true or false, got {self.center!r}")


class Normalizer:
    """The fitted rule: ``coord_scale_D`` (c), ``mean_D`` (mu), ``scale`` (s) and ``sink_norm``."""

    def __init__(self, coord_scale_D: torch.Tensor, mean_D: torch.Tensor, scale: float, sink_norm: float,
                 config: NormalizeConfig | None = None, sink_fraction: float = 0.0):
        self.coord_scale_D = coord_scale_D.float().cpu()
        self.mean_D = mean_D.float().cpu()
        self.scale = float(scale)
        self.sink_norm = float(sink_norm)
        self.config = config or NormalizeConfig()
        self.sink_fraction = float(sink_fraction)

    @property
    def d(self) -> int:
        return int(self.mean_D.numel())

    @classmethod
    def fit(cls, acts_ND: torch.Tensor, config: NormalizeConfig | None = None) -> "Normalizer":
        """Fit the constants on calibration activations ``[N, d]`` (model scale, BOS already dropped)."""
        config = config or NormalizeConfig()
        a = acts_ND.double()
        require(a.ndim == 2 and a.shape[0] >= 2, f"calibration activations must be [N>=2, d], got {tuple(a.shape)}")
        raw_norms = a.norm(dim=1)
        not_raw_sink = raw_norms <= config.sink_factor * raw_norms.median()
        mean_abs = a[not_raw_sink].abs().mean(0)
        typical = mean_abs.median().clamp_min(1e-12)
        coord_scale = (mean_abs / (config.outlier_factor * typical)).clamp_min(1.0)
        rescaled = a / coord_scale
        norms = rescaled.norm(dim=1)
        sink_norm = float(config.sink_factor * norms.median())
        keep = norms <= sink_norm
        mean = rescaled[keep].mean(0) if config.center else torch.zeros_like(mean_abs)
        scale = float((rescaled[keep] - mean).norm(dim=1).mean()) / config.target_norm
        require(scale > 0, "calibration activations must not all be equal")
        return cls(coord_scale, mean, scale, sink_norm, config, sink_fraction=float(1 - keep.double().mean()))

    def _on(self, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.coord_scale_D.to(ref.device, ref.dtype), self.mean_D.to(ref.device, ref.dtype)

    def is_sink(self, acts_ND: torch.Tensor) -> torch.Tensor:
        """Boolean mask over tokens (any leading shape ``[..., d]``): rescaled norm above ``sink_norm``."""
        c, _ = self._on(acts_ND)
        return (acts_ND / c).norm(dim=-1) > self.sink_norm

    def apply(self, acts_ND: torch.Tensor) -> torch.Tensor:
        """``x = (a / c - mu) / s`` on any leading shape ``[..., d]``."""
        c, mu = self._on(acts_ND)
        return (acts_ND / c - mu) / self.scale

    def invert(self, x_ND: torch.Tensor) -> torch.Tensor:
        """``a = (x * s + mu) * c``: back to the model's scale."""
        c, mu = self._on(x_ND)
        return (x_ND * self.scale + mu) * c

    def to_dict(self) -> dict:
        return {
            "rule": "x = (a / coord_scale - mean) / scale; tokens with ||a / coord_scale|| > sink_norm are sinks",
            "config": self.config.to_dict(),
            "coord_scale": self.coord_scale_D.tolist(),
            "mean": self.mean_D.tolist(),
            "scale": self.scale,
            "sink_norm": self.sink_norm,
            "sink_fraction": self.sink_fraction,
            "outlier_coordinates": [int(j) for j in torch.nonzero(self.coord_scale_D > 1).flatten()],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Normalizer":
        return cls(torch.tensor(data["coord_scale"]), torch.tensor(data["mean"]), data["scale"],
                   data["sink_norm"], NormalizeConfig.from_dict(data["config"]),
                   sink_fraction=data.get("sink_fraction", 0.0))
