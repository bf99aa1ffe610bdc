"""polysemy.sae: SAE models, the registered training methods, ONE trainer, checkpoints.

    from polysemy.sae import TrainConfig, train, train_stacked, list_methods
    cfg = TrainConfig(method="gba", width=512, steps=5000, batch_size=512)
    result = train(cfg, world.stream(512, seed=0), d=world.d, truth=world.V)
    result.model.W_dec, result.model.encode(x), result.history

Methods: gba, ba, ba-theory (the paper's tied SAE with bias adaptation), topk, batchtopk, relu-l1,
jumprelu (untied baselines), ...: every module of ``polysemy/sae/methods`` registers one (or a family);
``list_methods()`` names them all. See docs/sae.md.
"""

from .config import TrainConfig
from .models import SAE
from .registry import get_method, list_methods, register_method
from .trainer import NonFiniteError, TrainResult, train, train_on_world, train_stacked

__all__ = ["TrainConfig", "TrainResult", "SAE", "train", "train_stacked", "train_on_world", "list_methods",
           "get_method", "register_method", "NonFiniteError"]
