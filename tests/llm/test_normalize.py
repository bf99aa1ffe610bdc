"""The normalisation rule: exact inverse, fitted constants, outlier coordinates and sink tokens."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from polysemy.errors import ConfigError
from polysemy.llm.normalize import NormalizeConfig, Normalizer


def _acts(seed, n=2000, d=16, outlier=40.0, sinks=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=gen) * 3 + 1.0
    a[:, 5] *= outlier                      # one massive coordinate, like SmolLM2's 507
    a[:sinks] *= 1000                       # a few attention-sink tokens
    return a


@given(seed=st.integers(0, 10_000), factor=st.floats(1.0, 20.0), center=st.booleans(),
       target=st.floats(0.1, 30.0))
def test_invert_apply_is_identity(seed, factor, center, target):
    cfg = NormalizeConfig(outlier_factor=factor, center=center, target_norm=target)
    a = _acts(seed, n=300)
    norm = Normalizer.fit(a, cfg)
    torch.testing.assert_close(norm.invert(norm.apply(a)), a, rtol=1e-5, atol=1e-3)


@given(seed=st.integers(0, 10_000), target=st.floats(0.1, 30.0))
def test_fitted_inputs_have_target_mean_norm_and_zero_mean(seed, target):
    a = _acts(seed, sinks=5)
    norm = Normalizer.fit(a, NormalizeConfig(target_norm=target))
    x = norm.apply(a[~norm.is_sink(a)])
    # Exact by construction (the constants are computed on these very rows), up to float32 rounding.
    assert abs(float(x.norm(dim=1).mean()) - target) < 1e-4 * target
    assert float(x.mean(0).norm()) < 1e-4 * target


def test_outlier_coordinate_is_rescaled_and_ordinary_ones_are_not():
    a = _acts(0)
    norm = Normalizer.fit(a, NormalizeConfig(outlier_factor=5.0))
    c = norm.coord_scale_D
    assert c[5] > 1 and torch.all(c[torch.arange(16) != 5] == 1)
    # After rescaling, the outlier's mean |a| is exactly outlier_factor times the median coordinate's.
    mean_abs = (a.double() / c.double()).abs().mean(0)
    assert float(mean_abs[5] / mean_abs.median()) == pytest.approx(5.0, rel=1e-6)
    assert norm.to_dict()["outlier_coordinates"] == [5]


def test_sinks_are_detected_and_do_not_set_the_scale():
    a = _acts(1, sinks=7)
    norm = Normalizer.fit(a)
    assert norm.is_sink(a)[:7].all() and not norm.is_sink(a)[7:].any()
    assert norm.sink_fraction == pytest.approx(7 / 2000)
    ref = Normalizer.fit(a[7:])
    assert norm.scale == pytest.approx(ref.scale, rel=1e-6)


def test_dict_round_trip():
    norm = Normalizer.fit(_acts(2, sinks=3), NormalizeConfig(outlier_factor=3.0, center=False))
    back = Normalizer.from_dict(norm.to_dict())
    a = _acts(3)
    torch.testing.assert_close(back.apply(a), norm.apply(a))
    assert back.config == norm.config and back.sink_norm == norm.sink_norm


@pytest.mark.parametrize("kw", [dict(outlier_factor=0.5), dict(sink_factor=0.0), dict(target_norm=0.0),
                                dict(center="yes")])
def test_bad_constants_are_config_errors(kw):
    with pytest.raises(ConfigError):
        NormalizeConfig(**kw)
