"""polysemy.theory: identifiability conditions, predicted bands, and recovery metrics.

    from polysemy.theory import metrics, conditions, bands

``metrics`` scores learned decoder rows against the true features; ``bands`` holds the paper's
predictions (resonance band, Theorem 6.1, width requirement, regime, classical lines); ``conditions``
checks H1, H2, H3 and V1 from a world's config (predicted) and from a sample (measured).
"""

from . import metrics  # noqa: F401
