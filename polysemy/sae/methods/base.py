"""The strategy interface every registered method implements, and helpers they share.

The trainer (``polysemy/sae/trainer.py``) runs ONE loop for all methods; per step it calls
``loss_and_grads`` (forward, loss, gradients), the optimiser, ``after_update`` (constraints such as
unit-norm rows) and ``end_of_step`` (hooks such as bias adaptation). Per-model hyperparameters are
tensors with the model axis first (``hyper``), so models in one stack may differ in them; the
parameters named by ``structure_key`` must be equal within a stack.
"""

from __future__ import annotations

import dataclasses
import hashlib

import torch

from ..registry import MethodParams


@dataclasses.dataclass
class StepOutput:
    """What one forward/backward pass returns, all per model (leading axis G)."""

    loss_G: torch.Tensor            # the objective that was differentiated (reconstruction + penalties)
    mse_G: torch.Tensor             # 1/2 ||x_hat - x||^2 averaged over the batch
    grads: list                     # aligned with model.trainable(); None = parameter not trained
    fired_GM: torch.Tensor          # samples of the batch in which each latent was active
    extras: dict = dataclasses.field(default_factory=dict)  # further [G] values to log


class Method:
    """Base class of a training recipe. Subclasses set ``Params`` and implement the hooks."""

    name: str = "?"
    Params: type[MethodParams] = MethodParams
    default_lr: float = 1e-3                  # TrainConfig.lr when none is given (our choice)
    default_lr_schedule: str = "constant"     # TrainConfig.lr_schedule when none is given

    # -- stacking ----------------------------------------------------------------------------------
    def structure_key(self, cfg) -> tuple:
        """Configs with equal keys can be trained as one stack."""
        return (cfg.method, cfg.width, cfg.steps, cfg.log_every, cfg.lr_schedule, cfg.lr_decay_start,
                cfg.stop_on_plateau, cfg.plateau_patience, cfg.plateau_tol) + self.structural(cfg)

    def structural(self, cfg) -> tuple:
        return ()

    # -- model ---------------------------------------------------------------------------------------
    def new_model(self, cfgs, d: int):
        """An empty (all-zero) stacked model for the configs (used before loading a state)."""
        raise NotImplementedError

    def init_model(self, cfgs, d: int, x0_GBD: torch.Tensor):
        """A freshly initialised stacked model; model g depends only on cfgs[g] and x0_GBD[g]."""
        raise NotImplementedError

    def hyper(self, cfgs, d: int, device) -> dict[str, torch.Tensor]:
        """Per-model hyperparameter tensors (leading axis G)."""
        return {}

    # -- the step --------------------------------------------------------------------------------------
    def loss_and_grads(self, model, x_GBD: torch.Tensor, hyper: dict, step: int) -> StepOutput:
        raise NotImplementedError

    def after_update(self, model, hyper: dict) -> None:
        return None

    def end_of_step(self, model, hyper: dict, step: int) -> None:
        return None

    def log_values(self, model, hyper: dict | None = None) -> dict[str, torch.Tensor]:
        """Extra per-model values for the history table, [G] each."""
        return {}


def generator_for(seed: int) -> torch.Generator:
    """The initialisation's random stream for ``seed``: torch seeded with a hash of ("polysemy-init",
    seed), not with the seed itself (our choice). A dictionary that another tool draws with
    ``torch.manual_seed(seed)`` (SAELens's synthetic worlds do) would otherwise be the very rows an SAE
    of the same seed and width starts from: it would start at the truth."""
    digest = hashlib.sha256(f"polysemy-init:{int(seed)}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def unit_rows(generator: torch.Generator, rows: int, cols: int) -> torch.Tensor:
    """Gaussian rows normalised to unit length (uniform directions on the sphere)."""
    w = torch.randn(rows, cols, generator=generator)
    return w / w.norm(dim=1, keepdim=True).clamp(min=1e-12)


def per_model(values, device, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(list(values), dtype=dtype, device=device)


@torch.no_grad()
def normalise_rows_(W_GMD: torch.Tensor) -> None:
    W_GMD.div_(W_GMD.norm(dim=2, keepdim=True).clamp_(min=1e-12))


def remove_parallel_(grad_GMD: torch.Tensor, W_GMD: torch.Tensor) -> torch.Tensor:
    """Project each row's gradient onto the tangent space of the unit sphere at that row."""
    return grad_GMD.sub_((grad_GMD * W_GMD).sum(2, keepdim=True) * W_GMD)
