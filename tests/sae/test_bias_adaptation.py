import torch
from hypothesis import given
from hypothesis import strategies as st

from polysemy.sae import TrainConfig, get_method
from polysemy.sae import bias_adaptation as adaptation
from polysemy.sae.methods.gba import AdaptiveTiedSAE


def make_model(freq, peak, bias, target, group=None):
    M = len(freq)
    model = AdaptiveTiedSAE(1, 4, M)
    model.act_count_GM[0] = torch.tensor(freq) * 1000
    model.stat_samples_G[0] = 1000
    model.peak_GM[0] = torch.tensor(peak)
    model.bias_GM[0] = torch.tensor(bias)
    model.target_GM[0] = torch.tensor(target)
    if group is not None:
        model.group_GM[0] = torch.tensor(group)
    return model


def test_rule_by_hand():
    # neuron 0 fires too often, 1 is nearly dead, 2 is within its target, 3 too often near the floor
    model = make_model(freq=[0.5, 0.0, 0.05, 0.9], peak=[2.0, 0.0, 1.0, 4.0], bias=[-0.1, -0.5, -0.2, -0.99],
                       target=[0.1, 0.1, 0.1, 0.1])
    g = torch.tensor([0.1])
    adaptation.adapt_biases(model, gamma_plus_G=g, gamma_minus_G=g, eps_G=torch.tensor([1e-3]))
    rbar = (2.0 + 1.0 + 4.0) / 3        # mean positive peak of the (single) group
    expected = torch.tensor([-0.1 - 0.2, min(-0.5 + 0.1 * rbar, 0.0), -0.2, -1.0])
    assert torch.allclose(model.bias_GM[0], expected)
    assert model.stat_samples_G.item() == 0 and model.act_count_GM.abs().sum() == 0 and model.peak_GM.sum() == 0


def test_group_mean_uses_only_positive_peaks_of_the_group():
    peak = torch.tensor([[1.0, 3.0, 0.0, 5.0]])
    group = torch.tensor([[0, 0, 0, 1]])
    rbar = adaptation.group_mean_positive_peak(peak, group)
    assert torch.allclose(rbar, torch.tensor([[2.0, 2.0, 2.0, 5.0]]))


@given(freq=st.lists(st.floats(0, 1), min_size=6, max_size=6),
       peak=st.lists(st.floats(0, 50), min_size=6, max_size=6),
       bias=st.lists(st.floats(-1, 0), min_size=6, max_size=6),
       gamma=st.floats(0, 1), rounds=st.integers(1, 5))
def test_biases_stay_in_minus_one_zero(freq, peak, bias, gamma, rounds):
    model = make_model(freq, peak, bias, target=[0.01] * 6)
    for _ in range(rounds):
        model.act_count_GM[0] = torch.tensor(freq) * 1000
        model.stat_samples_G[0] = 1000
        model.peak_GM[0] = torch.tensor(peak)
        adaptation.adapt_biases(model, torch.tensor([gamma]), torch.tensor([gamma]), torch.tensor([1e-3]))
        assert model.bias_GM.min() >= -1.0 and model.bias_GM.max() <= 0.0


def test_schedule():
    assert adaptation.schedule(50, 50 * 512, 512) == (50, 50)     # the paper's setting
    assert adaptation.schedule(50, 10 * 512, 512) == (50, 10)     # small buffer: the last 10 steps
    assert adaptation.schedule(50, 120 * 512, 512) == (150, 120)  # large buffer: adapt every 150 steps
    period, window = 50, 10
    assert [s for s in range(100) if adaptation.in_window(s, period, window)] == list(range(40, 50)) + list(range(90, 100))
    assert [s for s in range(100) if adaptation.is_adaptation_step(s, period)] == [49, 99]


def test_gba_groups_are_balanced_and_targets_geometric():
    cfg = TrainConfig(method="gba", width=100, params={"groups": 10, "htf": 0.1, "ltf": 0.001})
    model = get_method("gba").init_model([cfg], 8, torch.randn(1, 16, 8))
    counts = torch.bincount(model.group_GM[0], minlength=10)
    assert torch.equal(counts, torch.full((10,), 10))
    targets = sorted(set(model.target_GM[0].tolist()), reverse=True)
    assert len(targets) == 10 and abs(targets[0] - 0.1) < 1e-7 and abs(targets[-1] - 0.001) < 1e-9
    ratios = [targets[i + 1] / targets[i] for i in range(9)]
    assert max(ratios) - min(ratios) < 1e-4
