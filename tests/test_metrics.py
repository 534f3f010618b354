"""Tests for droplab.metrics: hand-computed values, invariants, and every error message."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from droplab import metrics as M

# ---------------------------------------------------------------- fixed, hand-computed inputs

P4 = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.5, 0.5]])
Y4 = np.array([0, 1, 1, 0])


def test_accuracy_by_hand():
    # argmax 0, 0, 1, 0 (tie -> first) against 0, 1, 1, 0: three right
    assert M.accuracy(P4, Y4) == 0.75


def test_nll_by_hand():
    expected = -(math.log(0.9) + math.log(0.2) + math.log(0.7) + math.log(0.5)) / 4
    assert M.nll(P4, Y4) == pytest.approx(expected, rel=1e-12)


def test_nll_clips_zero_probability():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert M.nll(probs, [1, 1]) == pytest.approx(-math.log(1e-12) / 2, rel=1e-12)
    assert M.nll(probs, [1, 1], eps=1e-3) == pytest.approx(-math.log(1e-3) / 2, rel=1e-12)
    assert M.nll(probs, [0, 1]) == 0.0


def test_brier_by_hand():
    # rows: (0.1^2 + 0.1^2), (0.8^2 + 0.8^2), (0.3^2 + 0.3^2), (0.5^2 + 0.5^2)
    expected = (0.02 + 1.28 + 0.18 + 0.5) / 4
    assert M.brier(P4, Y4) == pytest.approx(expected, rel=1e-12)
    assert M.brier(np.eye(3), [0, 1, 2]) == 0.0
    assert M.brier(np.eye(3), [1, 2, 0]) == 2.0


def test_ece_by_hand():
    # bins=2, edges (0, 0.5], (0.5, 1]: confidence 0.5 goes to bin 0 (right-closed).
    # bin 0: conf 0.5, acc 1 (tie -> class 0 = label), weight 1/4 -> 0.125
    # bin 1: conf mean(0.9, 0.8, 0.7) = 0.8, acc 2/3, weight 3/4 -> 0.1
    assert M.ece(P4, Y4, bins=2) == pytest.approx(0.225, rel=1e-12)
    # one bin: |mean acc - mean conf| = |0.75 - 0.725|
    assert M.ece(P4, Y4, bins=1) == pytest.approx(0.025, rel=1e-12)


def test_ece_zero_when_perfectly_calibrated():
    # confidence 1 and always right
    assert M.ece(np.eye(4), [0, 1, 2, 3]) == 0.0
    # confidence 0.75 in every row and right in 3 of 4
    probs = np.tile([0.75, 0.25], (4, 1))
    assert M.ece(probs, [0, 0, 0, 1], bins=10) == pytest.approx(0.0, abs=1e-15)


def test_reliability_bins():
    r = M.reliability(P4, Y4, bins=4)
    np.testing.assert_allclose(r.edges, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert r.count.dtype == np.int64
    assert r.count.tolist() == [0, 1, 1, 2]
    np.testing.assert_allclose(r.confidence, [np.nan, 0.5, 0.7, 0.85])
    np.testing.assert_allclose(r.accuracy, [np.nan, 1.0, 1.0, 0.5])
    assert np.isnan(r.confidence[0]) and np.isnan(r.accuracy[0])
    # ece from the bins: 1/4 * 0.5 + 1/4 * 0.3 + 2/4 * 0.35
    assert r.ece == pytest.approx(0.375, rel=1e-12)
    assert M.ece(P4, Y4, bins=4) == r.ece


def test_reliability_counts_cover_every_sample(rng):
    probs = rng.dirichlet(np.ones(5), size=200)
    y = rng.integers(0, 5, size=200)
    r = M.reliability(probs, y)
    assert r.edges.shape == (16,) and r.count.shape == r.confidence.shape == r.accuracy.shape == (15,)
    assert r.count.sum() == 200
    filled = r.count > 0
    lo, hi = r.edges[:-1][filled], r.edges[1:][filled]
    assert np.all((r.confidence[filled] > lo) & (r.confidence[filled] <= hi))
    assert 0.0 <= M.ece(probs, y) <= 1.0


def test_mc_stack_is_averaged_over_passes(rng):
    samples = rng.dirichlet(np.ones(3), size=(4, 10))
    y = rng.integers(0, 3, size=10)
    mean = samples.mean(axis=0)
    assert M.accuracy(samples, y) == M.accuracy(mean, y)
    assert M.nll(samples, y) == pytest.approx(M.nll(mean, y), rel=1e-12)
    assert M.brier(samples, y) == pytest.approx(M.brier(mean, y), rel=1e-12)
    assert M.ece(samples, y, bins=5) == pytest.approx(M.ece(mean, y, bins=5), rel=1e-12)
    np.testing.assert_allclose(M.predictive_entropy(samples), M.predictive_entropy(mean), rtol=1e-12)


def test_float32_and_list_inputs():
    assert M.accuracy(P4.astype(np.float32), Y4.astype(np.int32)) == 0.75
    assert M.accuracy(P4.tolist(), Y4.tolist()) == 0.75
    assert M.accuracy(P4, Y4.astype(np.float64)) == 0.75  # whole floats are accepted as labels


# ---------------------------------------------------------------- uncertainty


@pytest.mark.parametrize("k", [2, 3, 10])
def test_entropy_of_uniform_is_log_k(k):
    h = M.predictive_entropy(np.full((3, k), 1.0 / k))
    assert h.shape == (3,) and h.dtype == np.float64
    np.testing.assert_allclose(h, math.log(k), rtol=1e-12)


def test_entropy_of_one_hot_is_zero_without_warnings():
    with np.errstate(all="raise"):
        assert M.predictive_entropy(np.eye(3)).tolist() == [0.0, 0.0, 0.0]
        assert M.expected_entropy(np.eye(3)[None]).tolist() == [0.0, 0.0, 0.0]


def test_entropy_by_hand():
    h = M.predictive_entropy([[0.8, 0.2]])
    assert h[0] == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)), rel=1e-12)


def test_identical_passes_have_zero_mi_and_zero_variation(rng):
    one = rng.dirichlet(np.ones(4), size=7)
    samples = np.broadcast_to(one, (5, 7, 4))
    # the mean over T of identical rows can differ from the row in the last bit
    np.testing.assert_allclose(M.mutual_information(samples), 0.0, rtol=0, atol=1e-12)
    assert M.mutual_information(np.stack([np.eye(3)] * 4)).tolist() == [0.0] * 3
    assert M.variation_ratio(samples).tolist() == [0.0] * 7
    np.testing.assert_allclose(M.expected_entropy(samples), M.predictive_entropy(one), rtol=1e-12)


def test_two_pass_mi_by_hand():
    # sample 0: passes (0.8, 0.2) and (0.2, 0.8); mean (0.5, 0.5)
    # sample 1: passes (1, 0) and (0, 1): all uncertainty is epistemic
    samples = np.array([[[0.8, 0.2], [1.0, 0.0]], [[0.2, 0.8], [0.0, 1.0]]])
    h_pass = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
    np.testing.assert_allclose(M.predictive_entropy(samples), [math.log(2), math.log(2)], rtol=1e-12)
    np.testing.assert_allclose(M.expected_entropy(samples), [h_pass, 0.0], rtol=1e-12, atol=0)
    np.testing.assert_allclose(M.mutual_information(samples), [math.log(2) - h_pass, math.log(2)], rtol=1e-12)
    assert M.variation_ratio(samples).tolist() == [0.5, 0.5]


def test_variation_ratio_by_hand():
    eye = np.eye(3)
    # T=5 passes for N=3 samples; votes per sample: (0,0,0,1,2), (1,1,2,2,2), (0,1,2,0,1)
    votes = np.array([[0, 1, 0], [0, 1, 1], [0, 2, 2], [1, 2, 0], [2, 2, 1]])
    np.testing.assert_allclose(M.variation_ratio(eye[votes]), [1 - 3 / 5, 1 - 3 / 5, 1 - 2 / 5])


@pytest.mark.parametrize("alpha", [0.05, 1.0, 20.0])
def test_mi_between_zero_and_entropy(rng, alpha):
    # Dirichlet passes: sparse (alpha << 1), flat and concentrated, many near-identical rows
    base = rng.dirichlet(np.full(6, alpha), size=300)
    samples = np.stack([0.9 * base + 0.1 * rng.dirichlet(np.full(6, alpha), size=300) for _ in range(8)])
    mi = M.mutual_information(samples)
    h = M.predictive_entropy(samples)
    assert mi.shape == (300,)
    assert np.all(mi >= 0.0)
    assert np.all(mi <= h)
    assert np.all(h <= math.log(6) + 1e-12)
    np.testing.assert_allclose(mi, h - M.expected_entropy(samples), atol=1e-12)
    vr = M.variation_ratio(samples)
    assert np.all((vr >= 0.0) & (vr <= 1 - 1 / 6))


def test_mi_clipped_when_rounding_goes_negative():
    # identical passes differing only by rounding: H(mean) - E[H] may be -1e-17 before the clip
    row = np.array([1 / 3, 1 / 3, 1 / 3])
    samples = np.stack([row, np.nextafter(row, 1.0), np.nextafter(row, 0.0)])[:, None, :]
    mi = M.mutual_information(samples)
    assert 0.0 <= mi[0] <= M.predictive_entropy(samples)[0]


# ---------------------------------------------------------------- AUROC


def _auroc_brute(s_in, s_out):
    diff = np.asarray(s_out)[:, None] - np.asarray(s_in)[None, :]
    return (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size


def test_auroc_extremes():
    assert M.auroc([0.1, 0.2, 0.3], [0.5, 0.9]) == 1.0
    assert M.auroc([0.5, 0.9], [0.1, 0.2, 0.3]) == 0.0
    assert M.auroc([0.4, 0.4, 0.4], [0.4, 0.4]) == 0.5
    assert M.auroc([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.5


def test_auroc_ties_by_hand():
    # pairs (out, in): 1 vs {1, 2}: tie, loss; 3 vs {1, 2}: win, win -> (0.5 + 2) / 4
    assert M.auroc([1, 2], [1, 3]) == 0.625
    assert M.auroc([0.1, 0.2, 0.3], [0.3, 0.4]) == pytest.approx(5.5 / 6, rel=1e-15)


def test_auroc_matches_brute_force(rng):
    for _ in range(20):
        n_in, n_out = rng.integers(1, 60, size=2)
        # integer scores so that ties are common
        s_in = rng.integers(0, 8, size=n_in).astype(np.float64)
        s_out = rng.integers(2, 10, size=n_out).astype(np.float64)
        assert M.auroc(s_in, s_out) == pytest.approx(_auroc_brute(s_in, s_out), abs=1e-12)
    s_in, s_out = rng.normal(size=500), rng.normal(0.5, 1.0, size=300)
    assert M.auroc(s_in, s_out) == pytest.approx(_auroc_brute(s_in, s_out), abs=1e-12)


def test_auroc_complement_and_int_and_bool_scores(rng):
    s_in, s_out = rng.normal(size=50), rng.normal(size=40)
    assert M.auroc(s_in, s_out) + M.auroc(s_out, s_in) == pytest.approx(1.0, abs=1e-12)
    assert M.auroc(np.array([0, 1]), np.array([1, 2])) == 0.875
    assert M.auroc(np.array([False, False]), np.array([True, False])) == 0.75


# ---------------------------------------------------------------- cross-check with scikit-learn


def test_against_sklearn(rng):
    skm = pytest.importorskip("sklearn.metrics")
    s_in, s_out = rng.normal(size=200).round(1), rng.normal(0.7, 1.0, size=150).round(1)
    labels = np.r_[np.zeros(200), np.ones(150)]
    assert M.auroc(s_in, s_out) == pytest.approx(skm.roc_auc_score(labels, np.r_[s_in, s_out]), abs=1e-12)

    probs = rng.dirichlet(np.ones(4), size=120)
    y = rng.integers(0, 4, size=120)
    assert M.nll(probs, y) == pytest.approx(skm.log_loss(y, probs, labels=[0, 1, 2, 3]), rel=1e-9)
    assert M.accuracy(probs, y) == pytest.approx(skm.accuracy_score(y, probs.argmax(axis=1)))

    p2 = rng.dirichlet(np.ones(2), size=120)
    y2 = rng.integers(0, 2, size=120)
    # for K = 2 the multi-class Brier score is twice the binary one
    assert M.brier(p2, y2) == pytest.approx(2 * skm.brier_score_loss(y2, p2[:, 1]), rel=1e-12)


def test_module_does_not_import_sklearn():
    code = "import sys, droplab.metrics; sys.exit('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------- errors

SCORED = [M.accuracy, M.nll, M.brier, M.ece, M.reliability]
SAMPLED = [M.expected_entropy, M.mutual_information, M.variation_ratio]


@pytest.mark.parametrize("fn", SCORED, ids=lambda f: f.__name__)
def test_scored_errors(fn):
    name = fn.__name__
    with pytest.raises(TypeError, match=rf"^{name}: `probs` must be a numeric array; got probs="):
        fn(np.array([["a", "b"]]), [0])
    with pytest.raises(ValueError, match=rf"^{name}: `probs` must be a 2-D \(N, K\) array or a 3-D \(T, N, K\) array; got probs='array of shape \(2,\)'\.$"):
        fn([0.5, 0.5], [0])
    with pytest.raises(ValueError, match=rf"^{name}: `probs` must be an array with K >= 2 classes"):
        fn([[1.0], [1.0]], [0, 0])
    with pytest.raises(ValueError, match=rf"^{name}: `probs` must be finite"):
        fn([[np.nan, 1.0]], [0])
    with pytest.raises(ValueError, match=rf"^{name}: `probs` must be a non-empty array"):
        fn(np.zeros((0, 2)), [])
    with pytest.raises(ValueError, match=rf"^{name}: `probs` must be probabilities in \[0, 1\]; got probs='row 1 containing 1\.5'\. Pass class probabilities"):
        fn([[0.5, 0.5], [1.5, -0.5]], [0, 0])
    with pytest.raises(ValueError, match=rf"^{name}: `probs` must be rows summing to 1 \(within 0\.001\); got probs='row 2 summing to 0\.9'\. Pass class"):
        fn([[0.5, 0.5], [0.5, 0.5], [0.4, 0.5]], [0, 0, 0])
    with pytest.raises(ValueError, match=rf"^{name}: `probs` must be rows summing to 1 .*got probs='\(pass 1, row 0\) summing to 1\.1'"):
        fn([[[0.5, 0.5]], [[0.6, 0.5]]], [0])
    with pytest.raises(TypeError, match=rf"^{name}: `y` must be integer class labels; got y='array of dtype float64'\.$"):
        fn(P4, [0.0, 1.5, 1.0, 0.0])
    with pytest.raises(ValueError, match=rf"^{name}: `y` must be labels in \[0, 2\); got y='array containing 2'\.$"):
        fn(P4, [0, 1, 2, 0])
    with pytest.raises(ValueError, match=rf"^{name}: `y` must be a 1-D array of 4 labels \(one per row of probs\); got y='array of shape \(3,\)'\.$"):
        fn(P4, [0, 1, 1])
    with pytest.raises(ValueError, match=rf"^{name}: `y` must be a 1-D array of 4 labels"):
        fn(P4, [[0, 1, 1, 0]])


def test_row_sum_tolerance_accepts_small_error():
    assert M.accuracy([[0.5, 0.5004], [0.3, 0.6995]], [1, 1]) == 1.0


@pytest.mark.parametrize("fn", [M.ece, M.reliability], ids=lambda f: f.__name__)
def test_bins_errors(fn):
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"^{name}: `bins` must be a positive integer; got bins=0\.$"):
        fn(P4, Y4, bins=0)
    with pytest.raises(ValueError, match=rf"^{name}: `bins` must be a positive integer; got bins=-3\.$"):
        fn(P4, Y4, bins=-3)
    with pytest.raises(TypeError, match=rf"^{name}: `bins` must be a positive integer; got bins=2\.5\.$"):
        fn(P4, Y4, bins=2.5)
    with pytest.raises(TypeError, match=rf"^{name}: `bins` must be a positive integer; got bins=True\.$"):
        fn(P4, Y4, bins=True)


def test_nll_eps_errors():
    with pytest.raises(ValueError, match=r"^nll: `eps` must be a number in \(0, 1\); got eps=0\.$"):
        M.nll(P4, Y4, eps=0)
    with pytest.raises(ValueError, match=r"^nll: `eps` must be a number in \(0, 1\); got eps=1\.0\.$"):
        M.nll(P4, Y4, eps=1.0)
    with pytest.raises(ValueError, match=r"^nll: `eps` must be a number in \(0, 1\); got eps=nan\.$"):
        M.nll(P4, Y4, eps=float("nan"))
    with pytest.raises(TypeError, match=r"^nll: `eps` must be a real number; got eps='1e-9'\.$"):
        M.nll(P4, Y4, eps="1e-9")


def test_predictive_entropy_errors():
    with pytest.raises(ValueError, match=r"^predictive_entropy: `mean_probs` must be a 2-D \(N, K\) array or a 3-D"):
        M.predictive_entropy([0.5, 0.5])
    with pytest.raises(ValueError, match=r"^predictive_entropy: `mean_probs` must be rows summing to 1 .*row 0 summing to 2"):
        M.predictive_entropy([[1.0, 1.0]])
    with pytest.raises(ValueError, match=r"^predictive_entropy: `mean_probs` must be probabilities in \[0, 1\]"):
        M.predictive_entropy([[2.0, -1.0]])
    with pytest.raises(TypeError, match=r"^predictive_entropy: `mean_probs` must be a numeric array"):
        M.predictive_entropy([["x"]])
    # one class is degenerate but valid for entropy: always 0
    assert M.predictive_entropy([[1.0]]).tolist() == [0.0]


@pytest.mark.parametrize("fn", SAMPLED, ids=lambda f: f.__name__)
def test_sampled_errors(fn):
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"^{name}: `samples` must be a 3-D \(T, N, K\) array; got samples='array of shape \(4, 2\)'\.$"):
        fn(P4)
    with pytest.raises(ValueError, match=rf"^{name}: `samples` must be rows summing to 1 .*got samples='\(pass 2, row 1\) summing to 0\.5'"):
        fn(np.concatenate([np.broadcast_to(P4, (2, 4, 2)), [P4 * [[1], [0.5], [1], [1]]]]))
    with pytest.raises(ValueError, match=rf"^{name}: `samples` must be probabilities in \[0, 1\]; got samples='\(pass 0, row 0\) containing 1\.2'"):
        fn([[[1.2, -0.2]]])
    with pytest.raises(ValueError, match=rf"^{name}: `samples` must be finite"):
        fn([[[np.inf, 0.0]]])
    with pytest.raises(TypeError, match=rf"^{name}: `samples` must be a numeric array"):
        fn(np.array([[["a"]]]))


def test_auroc_errors():
    with pytest.raises(ValueError, match=r"^auroc: `scores_in` must be a non-empty array; got scores_in='array of shape \(0,\)'\.$"):
        M.auroc([], [1.0])
    with pytest.raises(ValueError, match=r"^auroc: `scores_out` must be a non-empty array"):
        M.auroc([1.0], [])
    with pytest.raises(ValueError, match=r"^auroc: `scores_out` must be a 1-D array of scores; got scores_out='array of shape \(1, 2\)'\.$"):
        M.auroc([1.0], [[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"^auroc: `scores_in` must be a 1-D array of scores; got scores_in='array of shape \(\)'\.$"):
        M.auroc(1.0, [1.0])
    with pytest.raises(ValueError, match=r"^auroc: `scores_in` must be finite \(no NaN or inf\)"):
        M.auroc([np.nan], [1.0])
    with pytest.raises(TypeError, match=r"^auroc: `scores_out` must be a numeric array"):
        M.auroc([1.0], ["high"])
