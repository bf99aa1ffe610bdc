"""Laws of the recovery metrics (polysemy.theory.metrics): invariances, the oracle, ranges, edge cases."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from polysemy.errors import ConfigError
from polysemy.theory import metrics

COSINE_KEYS = ("mcc", "mmcs", "mmcs_learned", "uniqueness", "uniqueness_over_features", "monosemantic_fraction",
               "splitting")
FIRING_KEYS = ("l0", "alive_fraction", "dead_fraction", "precision", "recall", "f1", "accuracy",
               "precision_alive_matched", "recall_alive_matched", "f1_alive_matched", "shrinkage_along_features")


@st.composite
def problems(draw):
    """A small world: truth [n, d], learned rows [M, d] (some copies of true features, some noisy,
    some random, maybe a zero row), sparse codes [B, n] and non-negative acts [B, M]."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(2, 12))
    d = draw(st.integers(2, 10))
    M = draw(st.integers(1, 16))
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, d))
    learned = rng.normal(size=(M, d))
    copies = min(M, draw(st.integers(0, n)))
    noise = draw(st.sampled_from([0.0, 0.05, 0.5]))
    learned[:copies] = truth[:copies] + noise * rng.normal(size=(copies, d))
    if draw(st.booleans()):
        learned[rng.integers(M)] = 0.0
    B = 40
    codes = (rng.random((B, n)) < 0.3) * rng.uniform(0.5, 1.5, size=(B, n))
    acts = np.maximum(rng.normal(size=(B, M)), 0.0)
    return truth, learned, codes, acts, rng


def _close(a, b):
    if isinstance(a, dict):
        return all(_close(a[k], b[k]) for k in a)
    if isinstance(a, str):
        return a == b
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == pytest.approx(b, rel=1e-9, abs=1e-9)


@given(problems(), st.data())
def test_metrics_invariant_to_permuting_and_positively_scaling_neurons(problem, data):
    truth, learned, codes, acts, rng = problem
    M = learned.shape[0]
    perm = np.asarray(data.draw(st.permutations(range(M))))
    scale = rng.uniform(0.1, 10.0, size=M)
    base = metrics.recovery_metrics(learned, truth, acts=acts, truth_codes=codes)
    # scaling a decoder row by c and its activation by 1/c leaves the model's output unchanged
    moved = metrics.recovery_metrics(learned[perm] * scale[:, None], truth,
                                     acts=acts[:, perm] / scale[None, :], truth_codes=codes)
    for key in COSINE_KEYS + FIRING_KEYS + ("frr",):
        assert _close(base[key], moved[key]), key


@given(problems())
def test_true_dictionary_scores_frr_1_and_mcc_1(problem):
    truth, _, _, _, rng = problem
    n = truth.shape[0]
    perm = rng.permutation(n)
    learned = truth[perm] * rng.uniform(0.1, 10.0, size=(n, 1))
    extra = rng.normal(size=(int(rng.integers(0, 5)), truth.shape[1]))
    learned = np.concatenate([learned, extra])
    out = metrics.recovery_metrics(learned, truth)
    assert out["frr"] == {"0.8": 1.0, "0.9": 1.0, "0.99": 1.0}
    assert out["mcc"] == pytest.approx(1.0, abs=1e-12)
    assert out["mmcs"] == pytest.approx(1.0, abs=1e-12)
    assert out["uniqueness_over_features"] == 1.0
    assert out["uniqueness"] == pytest.approx(n / learned.shape[0])  # SAELens divides by the latents
    assert metrics.mcc(learned, truth) == pytest.approx(1.0, abs=1e-12)


@given(problems(), st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=6))
def test_frr_does_not_increase_with_tau(problem, taus):
    truth, learned, *_ = problem
    taus = sorted(taus)
    rates = metrics.frr(learned, truth, taus=taus)
    values = [rates[f"{t:g}"] for t in taus]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert all(0.0 <= v <= 1.0 for v in values)


@given(problems())
def test_mcc_and_fractions_lie_in_unit_interval(problem):
    truth, learned, codes, acts, _ = problem
    out = metrics.recovery_metrics(learned, truth, acts=acts, truth_codes=codes)
    for key in ("mcc", "uniqueness", "uniqueness_over_features", "monosemantic_fraction", "splitting",
                "alive_fraction", "dead_fraction", "precision", "recall", "f1", "accuracy"):
        assert 0.0 <= out[key] <= 1.0 + 1e-12, key
    assert -1.0 <= out["mmcs"] <= 1.0 + 1e-12


@given(problems())
def test_greedy_option_is_a_lower_bound_and_exact_on_the_oracle(problem):
    truth, learned, *_ = problem
    exact = metrics.recovery_metrics(learned, truth)
    greedy = metrics.recovery_metrics(learned, truth, mcc_method="greedy")
    oracle = metrics.mcc(truth[::-1], truth, method="greedy")
    assert exact["mcc_method"] == "hungarian" and greedy["mcc_method"] == "greedy"
    assert greedy["mcc"] <= exact["mcc"] + 1e-12
    assert oracle == pytest.approx(1.0, abs=1e-12)


@given(st.integers(0, 2**32 - 1), st.integers(2, 50), st.integers(1, 8))
def test_explained_variance_is_1_when_perfect_and_0_for_the_mean(seed, B, d):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, d)) * 3 + 1
    assert metrics.explained_variance(x, x) == 1.0
    assert metrics.nmse(x, x) == 0.0
    mean = np.broadcast_to(x.mean(axis=0), x.shape)
    assert metrics.explained_variance(x, mean) == pytest.approx(0.0, abs=1e-9)
    assert metrics.nmse(x, np.zeros_like(x)) == pytest.approx(1.0)


def test_explained_variance_is_about_the_mean_not_zero():
    # x = 10 + small noise: predicting the constant 10 explains nothing about the mean (EV ~ 0),
    # although it is close to x about zero (nmse tiny). A peer bug measured variance about zero.
    rng = np.random.default_rng(0)
    x = 10 + 0.1 * rng.normal(size=(200, 4))
    x_hat = np.full_like(x, 10.0)
    assert metrics.explained_variance(x, x_hat) < 0.05
    assert metrics.nmse(x, x_hat) < 1e-3


def test_torch_numpy_and_objects_agree():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(20, 8)).astype(np.float32)
    learned = rng.normal(size=(30, 8)).astype(np.float32)

    class SAE:
        W_dec = torch.nn.Parameter(torch.from_numpy(learned))

    class Rows:
        def decoder_rows(self):
            return learned

    a = metrics.recovery_metrics(learned, truth)
    b = metrics.recovery_metrics(SAE(), torch.from_numpy(truth))
    c = metrics.recovery_metrics(Rows(), truth)
    assert _close(a, b) and _close(a, c)
    assert metrics.decoder_rows(SAE()).shape == (30, 8)


def test_zero_rows_have_cosine_zero_and_are_not_alive():
    truth = np.eye(3)
    learned = np.array([[1.0, 0, 0], [0, 0, 0]])
    cos = metrics.cosine_matrix(learned, truth)
    assert cos.shape == (3, 2)
    assert np.all(cos[:, 1] == 0.0)
    out = metrics.recovery_metrics(learned, truth)
    assert out["monosemantic_fraction"] == 1.0  # only the non-zero row counts as alive
    assert out["frr"]["0.99"] == pytest.approx(1 / 3)


def test_signed_cosine_does_not_credit_anti_aligned_neurons():
    truth = np.eye(2)
    learned = -np.eye(2)
    assert metrics.frr(learned, truth)["0.8"] == 0.0
    assert metrics.mcc(learned, truth) == pytest.approx(1.0)  # MCC uses |cos| (docs/paper.md section 9)


def test_firing_scores_on_a_hand_built_case():
    truth = np.eye(2)
    learned = np.array([[2.0, 0.0], [0.0, 1.0]])
    codes = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    # latent 0 fires on samples 0, 1, 3 (3 is a false positive) at half the true size (x ||w|| = 2 -> 1)
    # latent 1 fires on sample 1 only (misses sample 2) at 0.5 of the true size
    acts = np.array([[0.5, 0.0], [0.5, 0.5], [0.0, 0.0], [0.25, 0.0]])
    out = metrics.recovery_metrics(learned, truth, acts=acts, truth_codes=codes)
    for suffix in ("", "_alive_matched"):  # both latents are alive and matched: the two definitions agree
        assert out["precision" + suffix] == pytest.approx((2 / 3 + 1) / 2)
        assert out["recall" + suffix] == pytest.approx((1 + 1 / 2) / 2)
        assert out["f1" + suffix] == pytest.approx((0.8 + 2 / 3) / 2)
    assert out["accuracy"] == pytest.approx((3 / 4 + 3 / 4) / 2)
    assert out["shrinkage_along_features"] == pytest.approx((1.0 + 1.0 + 0.5) / 3)
    assert out["l0"] == pytest.approx(4 / 4)
    assert out["alive_fraction"] == 1.0 and out["n_matched_latents"] == 2


def test_splitting_counts_features_matched_by_several_neurons():
    truth = np.eye(3)
    learned = np.array([[1.0, 0, 0], [1.0, 0.01, 0], [0, 1.0, 0]])
    out = metrics.recovery_metrics(learned, truth)
    assert out["splitting"] == pytest.approx(1 / 3)
    assert out["uniqueness_over_features"] == pytest.approx(2 / 3)  # 2 of 3 features tracked
    assert out["uniqueness"] == pytest.approx(2 / 3)                 # 2 distinct features over 3 latents


def test_cross_run_consistency():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(50, 16))
    same = metrics.cross_run_consistency(a, a[::-1])
    assert same["mean_mcs"] == pytest.approx(1.0) and same["fraction_above"] == 1.0
    assert same["selection"] == "all" and same["n_neurons"] == 50
    # only the 10% most active neurons of A (rows 0..4) are scored; B holds exactly those rows
    activity = np.r_[np.full(5, 1.0), np.zeros(45)]
    top = metrics.cross_run_consistency(a, a[:5], activity_a=activity, alpha=0.1)
    assert top["n_neurons"] == 5 and top["fraction_above"] == 1.0
    other = metrics.cross_run_consistency(np.eye(4)[:2], np.eye(4)[2:])
    assert other["mean_mcs"] == 0.0 and other["fraction_above"] == 0.0


def test_large_width_is_chunked_and_fast():
    # M = 65,536 learned rows against n = 512 true features, with the explicit greedy bound.
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(512, 16)).astype(np.float32)
    learned = rng.normal(size=(65_536, 16)).astype(np.float32)
    learned[:512] = truth
    out = metrics.recovery_metrics(learned, truth, mcc_method="greedy")
    assert out["mcc_method"] == "greedy"
    assert out["frr"]["0.99"] == 1.0 and out["mcc"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("call", [
    lambda: metrics.recovery_metrics(np.ones((3, 4)), np.ones((3, 5))),
    lambda: metrics.decoder_rows(np.ones(3)),
    lambda: metrics.frr(np.ones((2, 2)), np.ones((2, 2)), taus=(1.5,)),
    lambda: metrics.recovery_metrics(np.ones((3, 4)), np.ones((3, 4)), acts=np.ones((5, 2))),
    lambda: metrics.recovery_metrics(np.ones((3, 4)), np.ones((3, 4)), truth_codes=np.ones((5, 3))),
    lambda: metrics.cross_run_consistency(np.ones((3, 4)), np.ones((3, 4)), alpha=0.0),
    lambda: metrics.explained_variance(np.ones((3, 4)), np.ones((3, 5))),
    lambda: metrics.recovery_metrics(np.ones((3, 4)), np.ones((3, 4)), mcc_method="auction"),
    lambda: metrics.mcc(np.ones((3, 4)), np.ones((3, 4)), method="auction"),
])
def test_bad_input_is_a_config_error(call):
    with pytest.raises(ConfigError):
        call()


def test_saelens_scores_dead_latents_as_zero_and_ours_skips_them():
    truth = np.eye(2)
    learned = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    codes = np.array([[1.0, 0.0], [0.0, 1.0]])
    acts = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # latent 2 never fires
    out = metrics.recovery_metrics(learned, truth, acts=acts, truth_codes=codes)
    assert out["f1_alive_matched"] == 1.0 and out["n_matched_latents"] == 2
    assert out["f1"] == pytest.approx(2 / 3) and out["dead_fraction"] == pytest.approx(1 / 3)


def test_output_shrinkage_and_explained_variance_follow_saelens_edge_cases():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 2.0]])
    assert metrics.output_shrinkage(x, x / 2) == pytest.approx(0.5)  # the zero sample is skipped
    assert metrics.output_shrinkage(np.zeros((2, 2)), np.ones((2, 2))) == 0.0
    const = np.ones((4, 3))
    assert metrics.explained_variance(const, const) == 1.0
    assert metrics.explained_variance(const, const + 1) == 0.0
