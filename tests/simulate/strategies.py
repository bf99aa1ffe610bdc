"""Hypothesis strategies for valid WorldConfigs of every kind (small, so each example is cheap)."""

from hypothesis import strategies as st

from polysemy.simulate import WorldConfig


@st.composite
def world_configs(draw, supports=("exact", "bernoulli", "mixture", "cooccur", "hierarchy")):
    n = draw(st.integers(2, 48))
    d = draw(st.integers(1, 24))
    support = draw(st.sampled_from(supports))
    kw = dict(n=n, d=d, support=support, seed=draw(st.integers(0, 2**31 - 1)))
    if support == "hierarchy":
        children = draw(st.integers(1, max(1, n // 2 - 1)))
        kw.update(hierarchy_children=children, child_probability=draw(st.floats(0, 1)))
        kw["s"] = draw(st.integers(1, n // (1 + children)))
    else:
        kw["s"] = draw(st.integers(1, n))
    if support == "bernoulli":
        profile = draw(st.sampled_from(["uniform", "zipf", "explicit"]))
        kw["frequency_profile"] = profile
        if profile == "uniform":
            kw["frequency"] = draw(st.floats(0.01, 1.0))
        elif profile == "zipf":
            kw["zipf_exponent"] = draw(st.floats(0.3, 2.5))
        else:
            kw["frequencies"] = tuple(draw(st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n)))
    if support == "mixture":
        levels = draw(st.lists(st.integers(1, n), min_size=1, max_size=3))
        kw["mixture_levels"] = tuple(levels)
        kw["mixture_weights"] = tuple(draw(st.lists(st.floats(0.1, 1.0), min_size=len(levels), max_size=len(levels))))
    if support == "cooccur":
        f = kw["s"] / n
        kw["rho2"] = draw(st.floats(f, 1.0))
    magnitude = draw(st.sampled_from(["uniform", "geometric", "explicit"]))
    kw["magnitude_profile"] = magnitude
    if magnitude == "geometric":
        kw["imbalance"] = draw(st.floats(1.0, 100.0))
    elif magnitude == "explicit":
        kw["magnitudes"] = tuple(draw(st.lists(st.floats(0.1, 10.0), min_size=n, max_size=n)))
    lo = draw(st.floats(0.05, 2.0))
    kw["spread"] = (lo, lo + draw(st.floats(0.0, 2.0)))
    kw["noise"] = draw(st.sampled_from([0.0, 0.0, 0.1]))
    return WorldConfig(**kw)
