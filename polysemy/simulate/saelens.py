"""SAELens synthetic worlds in and out: ``world_from_saelens`` and ``world_to_saelens``.

SAELens's ``sae_lens.synthetic.SyntheticModel`` (the worlds of SynthSAEBench) draws feature
activations h [B, n] from its ``ActivationGenerator`` (Bernoulli or Gaussian-copula firing, magnitudes
relu(mean_i + std_i N(0, 1)), optional hierarchy modifiers) and maps them to x = h V + b through its
``FeatureDictionary`` (V = ``feature_vectors`` [n, d], b = ``bias`` [d]).

``world_from_saelens(model_or_folder)`` wraps such a model (or the folder ``SyntheticModel.save`` wrote)
as a :class:`SAELensWorld`: it has the ``World`` interface that training, evaluation, the peers and the
metrics use (``n``, ``d``, ``V``, ``magnitudes``, ``expected_frequencies``, ``expected_l0``, ``f``,
``sample_with_truth``, ``sample``, ``stream``), and every sample comes with its truth. SAELens draws
from torch's global random state; here each batch runs inside ``torch.random.fork_rng`` seeded from the
``torch.Generator`` passed in, so a stream repeats exactly and the global state is left untouched.

``SAELensWorldConfig(folder)`` names a saved SAELens model as a config, so a sweep (``SweepSpec.world``)
can run on it: its cells vary the training (``train.*``, ``width_over_n``, ``k_over_s``, ``p_over_f``)
and the replicate seeds vary the data stream and the SAE's initialisation; the world itself is fixed, so
``world.*``, ``delta`` and ``rho`` axes are refused. ``build_world(config)`` makes either kind of world.

``world_to_saelens(world)`` builds a ``SyntheticModel`` from a polysemy ``World``: its dictionary V,
zero bias, the world's firing probabilities and magnitude means and standard deviations
(m_i (lo + hi) / 2 and m_i (hi - lo) / sqrt 12 for coefficients m_i U[lo, hi]). In memory the model's
generator carries a modifier that replaces each draw by the polysemy world's own (same support, same
coefficient law), so ``model.sample`` follows the polysemy world exactly. ``SyntheticModel.save`` cannot
store that modifier: a saved folder keeps V, the bias and the per-feature firing probabilities, and
its config the *mean* magnitude and spread, so a reloaded model has independent (Bernoulli) firing
with the world's frequencies. Worlds with additive noise have no SAELens counterpart (ConfigError).

Seeds: SAELens draws an un-orthogonalised dictionary as row-normalised ``torch.randn(n, d)`` from a
generator seeded with its config's seed. polysemy's SAEs draw their initial rows from a stream of
their own (``sae.methods.base.generator_for`` hashes the seed), so equal seeds never start an SAE at
the truth.

sae-lens is imported lazily (``make peers`` installs it).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from ..configs import Config
from ..errors import ConfigError, require, require_int_range
from .config import WorldConfig
from .supports import mask_to_indices
from .world import Batch, Sampling, World

CONFIG_FILENAME = "synthetic_model_config.json"  # sae_lens.synthetic.SYNTHETIC_MODEL_CONFIG_FILENAME


def _saelens_synthetic():
    try:
        import sae_lens.synthetic as synthetic
    except ImportError as exc:
        raise ConfigError(f"SAELens worlds need sae-lens (make peers installs it): {exc}") from None
    return synthetic


class SAELensWorld(Sampling):
    """A SAELens ``SyntheticModel`` with polysemy's ``World`` interface (module docstring).

    Attributes: model (the SyntheticModel), n, d, V [n, d] float32, bias [d] float32, magnitudes [n]
    (the generator's mean firing magnitudes), expected_frequencies [n] (the generator's firing
    probabilities; a hierarchy modifier, if any, lowers the realised ones), expected_l0, f, config
    (None: a SAELens world has no WorldConfig), saelens_config (the model's config as a dict).
    """

    config = None

    def __init__(self, model: Any):
        self.model = model
        self.n = int(model.cfg.num_features)
        self.d = int(model.cfg.hidden_dim)
        fd, gen = model.feature_dict, model.activation_generator
        self.V = fd.feature_vectors.detach().to("cpu", torch.float32).contiguous()
        self.bias = fd.bias.detach().to("cpu", torch.float32).contiguous()
        self.magnitudes = gen.mean_firing_magnitudes.detach().to("cpu", torch.float32)
        self.expected_frequencies = gen.firing_probabilities.detach().to("cpu", torch.float64).numpy().copy()
        self.expected_l0 = float(self.expected_frequencies.sum())
        self.f = self.expected_l0 / self.n
        self.saelens_config = model.cfg.to_dict()
        self.seed = model.cfg.seed

    def __repr__(self) -> str:
        return f"SAELensWorld(n={self.n}, d={self.d}, expected L0={self.expected_l0:.4g})"

    def sample_with_truth(self, batch_size: int, generator: torch.Generator) -> Batch:
        """B samples x = h V + b with their active features and coefficients h (a :class:`Batch`)."""
        require_int_range("batch_size", batch_size, 1)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            h_BN = self.model.activation_generator.sample(batch_size)
        if h_BN.is_sparse:
            h_BN = h_BN.to_dense()
        h_BN = h_BN.detach().to("cpu", torch.float32)
        x_BD = h_BN @ self.V + self.bias
        indices = mask_to_indices(h_BN > 0)
        values = torch.gather(h_BN, 1, indices.clamp(min=0)).masked_fill_(indices < 0, 0.0)
        return Batch(x=x_BD, indices=indices, values=values)


def world_from_saelens(model_or_folder: Any) -> SAELensWorld:
    """A SAELens ``SyntheticModel``, or the folder ``SyntheticModel.save`` wrote, as a polysemy world."""
    if isinstance(model_or_folder, (str, os.PathLike)):
        synthetic = _saelens_synthetic()
        folder = os.fspath(model_or_folder)
        config = os.path.join(folder, synthetic.SYNTHETIC_MODEL_CONFIG_FILENAME)
        require(os.path.isfile(config),
                f"model_or_folder must be a folder saved by SyntheticModel.save (with "
                f"{synthetic.SYNTHETIC_MODEL_CONFIG_FILENAME}), got {folder!r}")
        model_or_folder = synthetic.SyntheticModel.load_from_disk(folder)
    require(all(hasattr(model_or_folder, a) for a in ("cfg", "feature_dict", "activation_generator")),
            f"model_or_folder must be a SAELens SyntheticModel or its folder, got {type(model_or_folder).__name__}")
    return SAELensWorld(model_or_folder)


@dataclass(frozen=True)
class SAELensWorldConfig(Config):
    """A SAELens ``SyntheticModel`` saved in ``folder`` (by ``SyntheticModel.save``), as a world config.

    Its hash names the folder, not its contents: keep a saved world's folder unchanged. ``n`` and ``d``
    come from the saved config; ``fixed_dictionary`` tells sweeps that the world has no seed to vary.
    """

    folder: str = ""

    fixed_dictionary = True  # class attribute, not a field

    def validate(self) -> None:
        require(isinstance(self.folder, str) and os.path.isfile(os.path.join(self.folder, CONFIG_FILENAME)),
                f"folder must be a folder saved by SAELens's SyntheticModel.save (with {CONFIG_FILENAME}), "
                f"got {self.folder!r}")

    def _saved(self) -> dict:
        with open(os.path.join(self.folder, CONFIG_FILENAME)) as fh:
            return json.load(fh)

    @property
    def n(self) -> int:
        return int(self._saved()["num_features"])

    @property
    def d(self) -> int:
        return int(self._saved()["hidden_dim"])

    def build(self) -> SAELensWorld:
        return world_from_saelens(self.folder)


def build_world(config) -> World | SAELensWorld:
    """The world a config describes: ``World`` for a WorldConfig, ``SAELensWorld`` for a SAELensWorldConfig."""
    if isinstance(config, SAELensWorldConfig):
        return config.build()
    require(isinstance(config, WorldConfig), f"a world config must be a WorldConfig or SAELensWorldConfig, "
            f"got {type(config).__name__}")
    return World(config)


def world_config_from_dict(data: dict):
    """WorldConfig or SAELensWorldConfig from its ``to_dict`` (a SAELens reference has a ``folder``)."""
    if "folder" in data:
        return SAELensWorldConfig.from_dict(data)
    return WorldConfig.from_dict(data)


def world_to_saelens(world: World):
    """A SAELens ``SyntheticModel`` that samples ``world`` (module docstring for what a save keeps)."""
    if isinstance(world, SAELensWorld):
        return world.model
    require(isinstance(world, World), f"world must be a polysemy World, got {type(world).__name__}")
    cfg = world.config
    if cfg.noise > 0:
        raise ConfigError(f"noise must be 0 to export a world to SAELens (its synthetic models have no "
                          f"additive noise), got {cfg.noise}")
    synthetic = _saelens_synthetic()
    lo, hi = float(cfg.spread[0]), float(cfg.spread[1])
    mags = world.magnitudes.to(torch.float64)
    mean_mag = (mags * (lo + hi) / 2).to(torch.float32)
    std_mag = (mags * (hi - lo) / math.sqrt(12.0)).to(torch.float32)
    freqs = torch.as_tensor(world.expected_frequencies, dtype=torch.float32)
    model_cfg = synthetic.SyntheticModelConfig(
        num_features=world.n, hidden_dim=world.d,
        firing_probability=synthetic.ConstantFiringProbabilityConfig(probability=float(world.f)),
        mean_firing_magnitudes=float(mean_mag.mean()), std_firing_magnitudes=float(std_mag.mean()),
        bias=False, seed=int(cfg.seed))
    feature_dict = synthetic.FeatureDictionary(world.n, world.d, bias=False, initializer=None)
    with torch.no_grad():
        feature_dict.feature_vectors.copy_(world.V)

    def polysemy_draw(activations: torch.Tensor) -> torch.Tensor:
        """Replace SAELens's draw by the polysemy world's (seeded from torch's global state)."""
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        codes = world.sample_with_truth(activations.shape[0], generator).dense_codes(world.n)
        return codes.to(activations.device, activations.dtype)

    generator = synthetic.ActivationGenerator(num_features=world.n, firing_probabilities=freqs,
                                              std_firing_magnitudes=std_mag, mean_firing_magnitudes=mean_mag,
                                              modify_activations=polysemy_draw)
    return synthetic.SyntheticModel(model_cfg, feature_dict=feature_dict, activation_generator=generator)

