"""polysemy.simulate: worlds of superposed features and their fast, reproducible sample streams.

    from polysemy.simulate import WorldConfig, World, Batch, get_preset, PRESETS
    world = World(WorldConfig(n=256, d=64, s=3))
    x_BD = world.sample(512, torch.Generator().manual_seed(0))
    for batch in world.stream(512, seed=0, with_truth=True): ...

Modules: ``config`` (WorldConfig, made of the parts below), ``registry`` (the support and dictionary
registries, ``param``), ``dictionaries`` (V: the dictionary kinds), ``supports`` (active sets: the
support kinds), ``magnitudes`` (the coefficient law), ``world`` (World, Batch), ``saelens`` (SAELens
synthetic worlds in and out), ``presets``, ``stats`` (empirical statistics), ``bounds`` (coherence
bounds), ``cli_options`` (the world options, generated from the registries).
"""

from .config import WorldConfig
from .presets import PRESETS, get_preset
from .saelens import SAELensWorld, SAELensWorldConfig, build_world, world_from_saelens, world_to_saelens
from .world import Batch, World

__all__ = ["WorldConfig", "World", "Batch", "get_preset", "PRESETS", "SAELensWorld", "SAELensWorldConfig",
           "build_world", "world_from_saelens", "world_to_saelens"]
