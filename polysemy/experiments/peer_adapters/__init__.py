"""One adapter per peer library, each training on our world's stream and returning a FittedSystem.

* :mod:`.ours`          polysemy's own methods (``gba``, ``topk``) through ``polysemy.sae.train``
* :mod:`.saelens_peer`  SAELens TopK, BatchTopK, JumpReLU, ReLU+L1 (``sae-lens``)
* :mod:`.sparsify_peer` EleutherAI sparsify TopK ``SparseCoder`` (``eai-sparsify``)
* :mod:`.sklearn_peer`  scikit-learn ``MiniBatchDictionaryLearning(positive_code=True)``

A peer that is not installed raises :class:`~.base.PeerUnavailable`; the harness skips it and says so.
"""

from .base import FittedSystem, PeerUnavailable, RecoveryMonitor, rebatch, samples_to_recovery

__all__ = ["FittedSystem", "PeerUnavailable", "RecoveryMonitor", "rebatch", "samples_to_recovery"]
