"""The strategy interface every registered method implements, and helpers they share.

The trainer (``polysemy/sae/trainer.py``) runs ONE loop for all methods; per step it calls
``loss_and_grads`` (forward, loss, gradients), the optimiser, ``after_update`` (constraints such as
unit-norm rows) and ``end_of_step`` (hooks such as bias adaptation). Per-model hyperparameters are
tensors with the model axis first (``hyper``), so models in one stack may differ in them; what
``structure_key`` names must be equal within a stack (the ONE place that decides which configs
share a stack: the trainer and the sweep runner both call it).

Besides the step, a method declares what the rest of the package derives from the registry: its
model class (``model_class``, holding any state of its own), its SAELens export
(``saelens_export``), a one-line ``summary`` for the docs, its plot colour, and its part in the
benches (``bench_order``, ``bench_axis`` ...; see ``polysemy.llm.bench``).
"""

from __future__ import annotations

import dataclasses
import hashlib

import torch

from ...errors import ConfigError
from ..registry import MethodParams, cli_parser


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
    model_class: type = None                  # the StackedSAE subclass this method trains
    default_lr: float = 1e-3                  # TrainConfig.lr when none is given (our choice)
    default_lr_schedule: str = "constant"     # TrainConfig.lr_schedule when none is given
    # Declarations read with ``declared``: from the class itself, never inherited (a subclass is another
    # method, which must say for itself what it is, how it looks and whether the benches run it):
    summary: str = ""                         # one line for the docs' method table
    color: str | None = None                  # matplotlib colour of its rows in figures (None: black)
    bench_order: float | None = None          # position in the benches' default method list; None: opt-in
    bench_tied_variant: str | None = None     # llm-bench's tied arm: this method at the L0-matched k
    saelens_architectures: tuple = ()         # SAELens architectures ``import_saelens`` reads as this method
    # How llm-bench (polysemy.llm.bench) runs it (inherited):
    bench_axis: str | None = None             # the parameter it sweeps (None: one row at the defaults)
    bench_values: tuple = ()                  # its values there unless the bench config says otherwise
    bench_match_l0: bool = False              # also trained at k = GBA's measured L0 (a method with k)

    @classmethod
    def has_param(cls, name: str) -> bool:
        """Whether the method takes the parameter ``name`` (e.g. "k": topk, batchtopk and the others with a k)."""
        return name in cls.Params.field_names()

    @classmethod
    def declared(cls, attr: str):
        """The class's own value of a declaration (see above), else the base default."""
        return cls.__dict__.get(attr, getattr(Method, attr))

    # -- stacking ----------------------------------------------------------------------------------
    def structure_key(self, cfg) -> tuple:
        """Configs with equal keys can be trained as one stack: the same method, shape of the run
        (width, steps, batch size, logging, schedule, stopping rule), the same values of every
        parameter declared structural, and what ``structural`` derives."""
        return ((cfg.method, cfg.width, cfg.steps, cfg.batch_size, cfg.log_every, cfg.lr_schedule,
                 cfg.lr_decay_start, cfg.stop_on_plateau, cfg.plateau_patience, cfg.plateau_tol)
                + cfg.method_params.structural_values() + self.structural(cfg))

    def structural(self, cfg) -> tuple:
        """Derived values that must be equal within a stack (gba: its adaptation schedule)."""
        return ()

    # -- model ---------------------------------------------------------------------------------------
    def model_structure(self, cfg) -> dict:
        """Constructor keywords of ``model_class`` beyond (G, d, width) for ``cfg``."""
        return {}

    def new_model(self, cfgs, d: int):
        """An empty (all-zero) stacked model for the configs (used before loading a state)."""
        return self.model_class(len(cfgs), d, cfgs[0].width, **self.model_structure(cfgs[0]))

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

    # -- SAELens ---------------------------------------------------------------------------------------
    def saelens_export(self, stack) -> tuple[str, dict, dict]:
        """(architecture, tensors, extra cfg.json fields) of a single model (G = 1) in SAELens's
        layout: W_enc [d, M], b_enc, W_dec [M, d], b_dec, and e.g. threshold for jumprelu."""
        raise ConfigError(f"export_saelens: method {self.name!r} has no SAELens form")

    def saelens_import(self, stack, tensors: dict, cfg: dict) -> None:
        """Set what the common tensors (W_enc, b_enc, W_dec, b_dec) do not: a threshold, k, ..."""
        return None

    # -- the benches and figures --------------------------------------------------------------------
    def plot_colors(self) -> dict[str, str]:
        """{row name: colour} of the rows this method adds to figures."""
        color = self.declared("color")
        return {self.name: color} if color else {}

    def bench_settings(self, bench) -> list[tuple]:
        """llm-bench rows known before training: (row name, setting label, method, params, arm); ``bench``
        is the run's ``polysemy.llm.config.LLMBenchConfig``. One row at ``bench.plan.params_for(name)``, or
        one per value of ``bench_axis``."""
        params = bench.plan.params_for(self.name)
        if self.bench_axis is None:
            return [(self.name, "", self.name, params, "main")]
        values = [self.axis_value(v) for v in bench.plan.sweep_for(self.name)]
        return [(self.name, f"{self.bench_axis}={v:g}", self.name, {**params, self.bench_axis: v}, "main")
                for v in values]

    def axis_type(self):
        """The type of ``bench_axis``'s values: the parameter's (int for k), else float."""
        hint = self.Params.hints().get(self.bench_axis)
        return float if hint is None else cli_parser(hint)

    def axis_value(self, value):
        """``value`` as ``bench_axis`` takes it."""
        return self.axis_type()(value)

    def bench_matched(self, bench, k: int, label: str) -> list[tuple]:
        """llm-bench rows at k = GBA's measured L0 (``bench_match_l0``)."""
        if not self.bench_match_l0:
            return []
        return [(self.name, label, self.name, {**bench.plan.params_for(self.name), "k": k}, "l0-matched")]

    def bench_params(self, params: dict, steps: int) -> dict:
        """Parameters for a bench run of ``steps`` steps (batchtopk: its threshold's decay)."""
        return params


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
