"""polysemy.theory: identifiability conditions, predicted bands, and recovery metrics.

    from polysemy.theory import metrics, conditions, bands

``metrics`` scores learned decoder rows against the true features (numpy, torch, or any object with
``.W_dec``); ``bands`` holds the paper's predictions (resonance band, Theorem 6.1's band and width,
regime, classical lines); ``conditions`` checks H1, H2, H3 and V1 from a world's config (predicted)
and from a sample (measured). ``polysemy check`` (``cli.py``) prints them for a world.
Contracts: DESIGN.md; user documentation: docs/theory.md.
"""

from . import bands, conditions, metrics

__all__ = ["bands", "conditions", "metrics"]
