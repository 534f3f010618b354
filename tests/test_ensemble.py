"""droplab ensemble: exact enumeration of the 2^n sub-networks, weight scaling, MC averaging."""

import json

import numpy as np
import pytest

from droplab import kernels, nn
from droplab.cli import main
from droplab.lab import ensemble


class ForcedDropout(nn.Dropout):
    """A Dropout whose training mask is set by the test (the real layer with its mask forced)."""

    forced: np.ndarray

    def _noise(self, x, draw, shape, forward):  # the layer's one hook from noise to output (nn/dropout.py)
        return x * self.forced.astype(x.dtype)


def tiny_net(seed, *, units=5, head="relu", p=0.3, inverted=True, inputs=3, classes=3):
    f64 = np.float64
    layers = [nn.Dense(inputs, units, dtype=f64), nn.ReLU(), nn.Dropout(p, inverted=inverted)]
    if head == "softmax":
        layers.append(nn.Dense(units, classes, dtype=f64))
    else:
        layers += [nn.Dense(units, 4, dtype=f64), nn.ReLU(), nn.Dense(4, classes, dtype=f64)]
    return nn.Sequential(*layers, seed=seed)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def brute_force(model, X):
    """Loop over every mask through the real model, the dropout layer's mask forced."""
    i = next(k for k, layer in enumerate(model.layers) if layer.is_dropout)
    real = model.layers[i]
    forced = ForcedDropout(real.p, inverted=real.inverted)
    twin = nn.Sequential(*model.layers[:i], forced, *model.layers[i + 1:])  # same layer objects, same weights
    twin.train()
    n = model.layers[i - 2].out_features
    p_eff = kernels.effective_p(real.p)
    am = 0.0
    log_gm = 0.0
    m2 = 0.0
    total = 0.0
    for index in range(2 ** n):
        bits = np.array([(index >> j) & 1 for j in range(n)], dtype=bool)
        w = p_eff ** (n - bits.sum()) * (1 - p_eff) ** bits.sum()
        forced.forced = np.where(bits, forced.scale, 0.0)
        probs = softmax(twin.forward(X))
        am = am + w * probs
        log_gm = log_gm + w * np.log(probs)
        m2 = m2 + w * probs ** 2
        total += w
    return am, softmax(log_gm), m2, total


# ----------------------------------------------------------------------------- exact invariants

def test_mask_weights_enumerate_every_mask_once_and_sum_to_one():
    bits, w = ensemble.mask_weights(6, 0.3)
    assert bits.shape == (64, 6)
    assert len({tuple(b) for b in bits.tolist()}) == 64
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    # chunks concatenate to the whole
    b1, w1 = ensemble.mask_weights(6, 0.3, 0, 20)
    b2, w2 = ensemble.mask_weights(6, 0.3, 20, 64)
    assert np.array_equal(np.concatenate([b1, b2]), bits) and np.array_equal(np.concatenate([w1, w2]), w)
    _, w0 = ensemble.mask_weights(4, 0.0)
    assert w0.tolist() == [0.0] * 15 + [1.0]  # p = 0: only the all-kept mask


@pytest.mark.parametrize("head", ["relu", "softmax"])
@pytest.mark.parametrize("inverted", [True, False])
def test_enumeration_matches_brute_force(seed, rng, head, inverted):
    model = tiny_net(seed, head=head, inverted=inverted, p=0.3)
    X = rng.normal(size=(7, 3))
    exact = ensemble.exact_means(model, X, chunk_elements=50)  # several chunks
    am, gm, m2, total = brute_force(model, X)
    assert total == pytest.approx(1.0, abs=1e-14)
    assert exact.masks == 32 and exact.units == 5
    np.testing.assert_allclose(exact.arithmetic, am, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(exact.geometric, gm, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(exact.second_moment, m2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(exact.arithmetic.sum(axis=1), 1.0, rtol=1e-13)
    assert model.layers[2].training  # modes are restored


def test_with_p_zero_every_estimate_coincides(seed, rng):
    model = tiny_net(seed, p=0.0)
    X = rng.normal(size=(9, 3))
    ws = ensemble.weight_scaling(model, X)
    exact = ensemble.exact_means(model, X)
    mc = np.concatenate(list(ensemble.mc_samples(model, X, 5)))
    assert exact.masks == 1
    for other in (exact.arithmetic, exact.geometric, *mc):
        np.testing.assert_allclose(other, ws, rtol=0, atol=1e-14)
    np.testing.assert_allclose(exact.variance, 0.0, atol=1e-14)


@pytest.mark.parametrize("inverted", [True, False])
def test_weight_scaling_is_the_exact_geometric_mean_for_a_softmax_layer(seed, rng, inverted):
    X = rng.normal(size=(11, 3))
    # dropout on the input of the final softmax layer, after a hidden ReLU layer
    model = tiny_net(seed, head="softmax", p=0.4, units=6, inverted=inverted)
    exact = ensemble.exact_means(model, X)
    np.testing.assert_allclose(ensemble.weight_scaling(model, X), exact.geometric, rtol=0,
                               atol=_geometric_bound(model, X))
    # input dropout into a single softmax layer (multinomial logistic regression)
    logreg = nn.Sequential(nn.Dropout(0.5, inverted=inverted), nn.Dense(3, 4, dtype=np.float64), seed=seed)
    exact = ensemble.exact_means(logreg, X)
    np.testing.assert_allclose(ensemble.weight_scaling(logreg, X), exact.geometric, rtol=0,
                               atol=_geometric_bound(logreg, X))


def _geometric_bound(model, X):
    """How far weight scaling may sit from the exact geometric mean, derived.

    The identity is exact when eval multiplies by E[m * scale]. Masks are drawn with the
    realised probability p_eff = threshold / 2**32 (within 2**-33 of p) while kept values are
    x * fl(1/(1-p)) and eval multiplies by 1 (or 1 - p, classic): the two differ by
    delta = |(1 - p_eff) * scale - eval factor| (about 1e-10). The logits z = W(c h) + b move by
    at most delta * |W||h| <= delta * max|z - b| per unit of c, and softmax moves each
    probability by at most twice the largest logit change; plus float64 rounding (1e-12).
    """
    from droplab import kernels

    layer = next(m for m in model.modules() if isinstance(m, nn.Dropout))
    delta = abs((1 - kernels.effective_p(layer.p)) * layer.scale - layer._eval_factor())
    head = model.layers[-1]
    h = X
    for m in model.layers[:-1]:
        h = m.eval().forward(h)
    reach = np.abs(h) @ np.abs(head.weight.value)
    return 2 * delta * float(reach.max()) + 1e-12


def test_weight_scaling_is_only_approximate_through_a_relu(seed, rng):
    X = rng.normal(size=(11, 3)) * 3
    model = tiny_net(seed, head="relu", p=0.5, units=6)
    exact = ensemble.exact_means(model, X)
    ws = ensemble.weight_scaling(model, X)
    # ReLU(E[a]) != E[ReLU(a)] whenever a pre-activation changes sign across masks (almost surely here)
    assert np.abs(ws - exact.geometric).max() > 1e-6
    np.testing.assert_allclose(ws.sum(axis=1), 1.0, rtol=1e-12)


# ----------------------------------------------------------------------------- MC convergence

def test_mc_average_converges_to_the_exact_arithmetic_mean_within_a_derived_bound(seed, rng):
    model = tiny_net(seed, head="relu", p=0.5, units=6)
    X = rng.normal(size=(20, 3)) * 2
    exact = ensemble.exact_means(model, X)
    checks = (10, 100, 1000)
    n_comparisons = X.shape[0] * exact.arithmetic.shape[1] * len(checks)
    # Each MC estimate is a mean of T independent draws in [0, 1] with the exact variance
    # computed by enumeration: Bernstein's inequality bounds |MC_T - mean| at level delta.
    # Union over n = 20 inputs x 3 classes x 3 values of T = 180 comparisons with
    # delta = 1e-6 / 180 each: false-failure probability <= 1e-6 (z ~ sqrt(2 log(2/delta)) ~ 6.4).
    delta = 1e-6 / n_comparisons
    previous = None
    for T in checks:
        mc = sum(block.sum(axis=0) for block in ensemble.mc_samples(model, X, T, block=64)) / T
        bound = ensemble.bernstein_bound(exact.variance, T, delta)
        assert np.all(np.abs(mc - exact.arithmetic) <= bound), T
        if previous is not None:
            assert bound.max() < previous  # the bound itself shrinks like 1/sqrt(T)
        previous = bound.max()


def test_mc_curve_reports_every_T(seed, rng):
    model = tiny_net(seed, head="softmax", p=0.5, units=4)
    X = rng.normal(size=(15, 3))
    y = rng.integers(0, 3, size=15)
    exact = ensemble.exact_means(model, X)
    curve = ensemble.mc_curve(model, X, y, [1, 5, 150, 5], repeats=3, reference=exact.arithmetic)
    assert curve["T"] == [1, 5, 150]
    for k in ("error_mean", "error_std", "nll_mean", "nll_std", "abs_diff_mean"):
        assert len(curve[k]) == 3 and all(np.isfinite(curve[k]))
    assert all(0 <= e <= 1 for e in curve["error_mean"])


def test_bernstein_bound_matches_its_formula():
    L = np.log(2 / 1e-3)
    t = ensemble.bernstein_bound(0.04, 400, 1e-3)
    assert t == pytest.approx((L / 3 + np.sqrt(L**2 / 9 + 2 * 400 * 0.04 * L)) / 400)
    # it is the root of T t^2 = L (2 sigma^2 + 2 t / 3)
    assert 400 * t**2 == pytest.approx(L * (2 * 0.04 + 2 * t / 3))


# ----------------------------------------------------------------------------- errors

def test_split_rejects_what_it_cannot_enumerate():
    dense = nn.Dense(3, 3)
    with pytest.raises(ValueError, match=r"ensemble: `model` must be a network with exactly one dropout layer; "
                                         r"got model='0 dropout layers'"):
        ensemble.split(nn.Sequential(dense))
    with pytest.raises(ValueError, match=r"got model='2 dropout layers'"):
        ensemble.split(nn.Sequential(nn.Dropout(0.1), dense, nn.Dropout(0.2)))
    with pytest.raises(TypeError, match=r"dropout layer is nn.Dropout with axes=None"):
        ensemble.split(nn.Sequential(nn.Dropout(0.1, axes=1), dense))
    with pytest.raises(TypeError, match=r"ensemble: `model` must be an nn.Sequential; got model='Dense'"):
        ensemble.split(dense)


def test_too_many_units_is_refused(rng):
    model = nn.Sequential(nn.Dense(2, 17), nn.ReLU(), nn.Dropout(0.5), nn.Dense(17, 2), seed=0)
    with pytest.raises(ValueError, match=r"`units` must be at most 16 \(2\*\*16 sub-networks\); got units=17"):
        ensemble.exact_means(model, rng.normal(size=(2, 2)))


@pytest.mark.parametrize("flag,value,message", [
    ("--units", "17", "ensemble: error: `--units` must be an integer in [1, 16] (2^16 sub-networks are averaged "
                      "exactly); got --units=17."),
    ("--p", "1", "ensemble: `p` must be a probability in [0, 1); got p=1.0."),
    ("--head", "sofmax", "Did you mean 'softmax'?"),
    ("--repeats", "0", "ensemble: error: `--repeats` must be an integer in [1, 1000]; got --repeats=0."),
])
def test_bad_flags_exit_2(tmp_path, capsys, flag, value, message):
    out = tmp_path / "e"
    assert main(["ensemble", "--quiet", "--out", str(out), flag, value]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


# ----------------------------------------------------------------------------- the command

def test_ensemble_command_writes_results(tmp_path, capsys):
    out = tmp_path / "ens"
    assert main(["ensemble", "--dataset", "spiral", "--units", "5", "--epochs", "3", "--batch-size", "0",
                 "--lr", "0.05", "--max-T", "30", "--repeats", "2", "--seeds", "1", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "ensemble" and res["config"]["units"] == 5
    assert [e["network"] for e in res["estimates"]] == ["softmax head", "relu head"]
    soft, relu = res["estimates"]
    assert soft["masks"] == 32 and soft["mc"]["T"][-1] == 30
    assert soft["ws_vs_geometric"]["max_abs_prob_diff"] < 1e-9
    assert soft["weight_scaling"] == soft["exact_geometric"] or (
        abs(soft["weight_scaling"]["nll"] - soft["exact_geometric"]["nll"]) < 1e-9)
    assert relu["ws_vs_geometric"]["max_abs_prob_diff"] > 0
    assert len(res["runs"]) == 2 and "val_accuracy" in res["runs"][0]["metrics"]
    assert (out / "ensemble.png").stat().st_size > 1000
    assert "| softmax head | weight scaling |" in (out / "table.md").read_text()
    printed = capsys.readouterr().out
    assert "identical to the exact geometric mean" in printed and "MC averaging" in printed
    assert "no T up to" not in printed  # issue 16: "reaches ... at T = no T up to 300"
    assert "Jensen's gap" in printed and relu["relu_gap"] >= 0 and soft["relu_gap"] is None


def test_ensemble_reading_never_says_t_equals_no_t(tmp_path, capsys):
    from droplab.lab import ensemble

    est = {"network": "relu head", "seed": 0, "masks": 4, "weight_scaling": {"error": 0.1, "nll": 0.3},
           "exact_arithmetic": {"error": 0.05, "nll": 0.2}, "exact_geometric": {"error": 0.06, "nll": 0.2},
           "ws_vs_geometric": {"max_abs_prob_diff": 0.1, "mean_kl": 0.01},
           "mc": {"T": [1, 300], "error_mean": [0.3, 0.2], "nll_mean": [0.5, 0.4], "abs_diff_mean": [0.1, 0.01],
                  "error_std": [0, 0], "nll_std": [0, 0]},
           "mc_T_matching_weight_scaling_error": None, "relu_gap": 0.12}
    lines = ensemble._reading([{**est, "seed": s} for s in range(3)], ["relu"], 0.5, 2)
    text = " ".join(lines)
    assert "T = no T" not in text and "stays above weight scaling's at every T up to 300" in text
    assert "Jensen's gap" in text and "12.0%" in text
