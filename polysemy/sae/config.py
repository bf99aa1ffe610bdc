"""``TrainConfig``: everything that fixes one SAE training run (the method's knobs live in ``params``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..configs import Config
from ..errors import ConfigError, require, require_float_range, require_int_range
from .registry import get_method

LR_SCHEDULES = ("constant", "linear-decay")


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """One training run.

    method:       registered method name (``polysemy.sae.list_methods()``).
    width:        number of latents M.
    steps:        optimiser steps (one batch each).
    batch_size:   samples per step B (used by world streams and to size the adaptation buffer).
    lr:           Adam learning rate; None (default) takes the method's ``default_lr`` (1e-3 for most
                  methods; 1e-2 for gba and ba, the largest that stayed stable in docs/recovery-study.md;
                  the paper gives none). Stored resolved, so the config alone reproduces the run.
    seed:         initialisation seed (decoder directions, group assignment). The data seed is separate.
    log_every:    steps between rows of ``TrainResult.history``.
    params:       the method's parameters; validated by the method's params dataclass and stored fully
                  resolved (defaults filled in), so the config alone reproduces the run.
    lr_schedule:  "constant" or "linear-decay": lr falls linearly to 0 over the steps after
                  ``lr_decay_start * steps`` (our choice, for sharper final recovery). None (default)
                  takes the method's ``default_lr_schedule`` ("constant"; "linear-decay" for gba and ba).
    lr_decay_start: fraction of the run after which "linear-decay" starts.
    stop_on_plateau: with ground truth given, stop when recovery has plateaued. Rule (our choice): at a
                  log point, stop if neither FRR(0.9) nor FRR(0.99) rose by more than
                  ``plateau_tol`` over the last ``plateau_patience`` log points, or FRR(0.99) = 1.
    """

    method: str = "gba"
    width: int = 512
    steps: int = 5000
    batch_size: int = 512
    lr: float | None = None
    seed: int = 0
    log_every: int = 100
    params: dict = dataclasses.field(default_factory=dict)
    lr_schedule: str | None = None
    lr_decay_start: float = 0.8
    stop_on_plateau: bool = False
    plateau_patience: int = 5
    plateau_tol: float = 0.002

    def __post_init__(self) -> None:
        if not isinstance(self.params, dict):
            raise ConfigError(f"params must be a dict of method parameters, got {type(self.params).__name__}")
        method = get_method(self.method) if isinstance(self.method, str) else None
        require(method is not None, f"method must be a registered method name, got {self.method!r}")
        resolved = method.Params.resolve(self.params)
        object.__setattr__(self, "params", resolved.to_dict())
        if self.lr is None:
            object.__setattr__(self, "lr", method.default_lr)
        if self.lr_schedule is None:
            object.__setattr__(self, "lr_schedule", method.default_lr_schedule)
        super().__post_init__()

    def validate(self) -> None:
        require_int_range("width", self.width, 1)
        require_int_range("steps", self.steps, 0)
        require_int_range("batch_size", self.batch_size, 1)
        require_float_range("lr", self.lr, 0.0, 10.0, low_open=True)
        require_int_range("seed", self.seed, 0)
        require_int_range("log_every", self.log_every, 1)
        require(self.lr_schedule in LR_SCHEDULES,
                f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        require_float_range("lr_decay_start", self.lr_decay_start, 0.0, 1.0)
        require(isinstance(self.stop_on_plateau, bool), f"stop_on_plateau must be a bool, got {self.stop_on_plateau!r}")
        require_int_range("plateau_patience", self.plateau_patience, 1)
        require_float_range("plateau_tol", self.plateau_tol, 0.0, 1.0)
        self.method_params.validate_for(self)

    @property
    def method_params(self):
        """The validated params dataclass of this config's method."""
        return get_method(self.method).Params.from_dict(self.params)

    def with_param(self, name: str, value: Any) -> "TrainConfig":
        """A copy with ``name`` set: a TrainConfig field if one has that name, else a method parameter."""
        fields = {f.name for f in dataclasses.fields(self)}
        if name == "method":  # another method has other parameters (and lr): start from its defaults
            return self.replace(method=value, params={}, lr=None, lr_schedule=None)
        if name in fields:
            return self.replace(**{name: value})

        allowed = get_method(self.method).Params.field_names()
        if name not in allowed:
            raise ConfigError(
                f"{name!r} is neither a TrainConfig field nor a parameter of method {self.method!r}; "
                f"method parameters: {allowed}")
        return self.replace(params={**self.params, name: value})
