"""The dropout family: exact invariants, float64 gradient checks, then rates with derived bounds.

Bounds: |rate - p| <= Z * sqrt(p (1 - p) / n) with Z = 5 and n the number of INDEPENDENT
draws (channels, sequences, samples, blocks' feature maps, weights), not elements. A two-sided
5-sigma bound fails by chance with probability about 6e-7 per check.
"""

import math

import numpy as np
import pytest

from droplab import _rng, family, kernels, nn
from droplab.family import ALPHA_PRIME
from droplab.nn.gradcheck import check_gradients

Z = 5.0  # sigmas; false-failure probability ~6e-7 per bound

# name -> (factory(p, seed), input shape); the variants that map x to x-shaped outputs
SHAPED = {
    "Dropout1d": (lambda p, s: nn.Dropout1d(p, seed=s), (3, 4, 5)),
    "Dropout2d": (lambda p, s: nn.Dropout2d(p, seed=s), (3, 4, 3, 3)),
    "Dropout3d": (lambda p, s: nn.Dropout3d(p, seed=s), (2, 3, 2, 2, 2)),
    "DropPath-row": (lambda p, s: nn.DropPath(p, seed=s), (6, 3, 2)),
    "DropPath-batch": (lambda p, s: nn.DropPath(p, mode="batch", seed=s), (6, 3, 2)),
    "LockedDropout": (lambda p, s: nn.LockedDropout(p, seed=s), (3, 5, 4)),
    "GaussianDropout": (lambda p, s: nn.GaussianDropout(p, seed=s), (4, 6)),
    "AlphaDropout": (lambda p, s: nn.AlphaDropout(p, seed=s), (4, 6)),
    "DropBlock2d": (lambda p, s: nn.DropBlock2d(p, 2, seed=s), (2, 3, 5, 5)),
    "DropBlock2d-shared": (lambda p, s: nn.DropBlock2d(p, 3, shared_channels=True, seed=s), (2, 3, 5, 5)),
}


def _x(shape, rng, dtype=np.float64):
    return (rng.standard_normal(shape) + 3).astype(dtype)  # no zeros, so dropped units are visible


# -- every variant ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHAPED)
def test_gradient_check_with_frozen_masks(name, rng, seed):
    make, shape = SHAPED[name]
    report = check_gradients(make(0.4, seed), rng.standard_normal(shape))
    assert report.ok, report


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", SHAPED)
def test_shape_dtype_kept_eval_and_p0_identity(name, dtype, rng, seed):
    make, shape = SHAPED[name]
    x = _x(shape, rng, dtype)
    before = x.copy()
    layer = make(0.3, seed)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(x))
    assert y.shape == x.shape and y.dtype == x.dtype and dx.shape == x.shape and dx.dtype == x.dtype
    assert np.array_equal(x, before)  # the caller's array is never modified
    assert layer.eval().forward(x) is x and layer.backward(x) is x
    zero = make(0.0, seed)
    assert zero.forward(x) is x and zero.backward(x) is x


@pytest.mark.parametrize("name", SHAPED)
def test_seeded_reproducible_and_counter_replays(name, rng, seed):
    make, shape = SHAPED[name]
    x = _x((64,) + shape[1:], rng)

    def draws(layer, k=20):  # 20 calls: even DropPath(mode="batch"), one bit a call, repeats w.p. 2**-20
        return np.stack([layer.forward(x) for _ in range(k)])

    a, b, c = make(0.5, seed), make(0.5, seed), make(0.5, seed + 1)
    first = draws(a)
    assert np.array_equal(first, draws(b))
    assert not np.array_equal(first, draws(c))
    assert not all(np.array_equal(first[0], f) for f in first[1:])  # a fresh draw per call
    a.counter = 0
    assert np.array_equal(draws(a), first)
    model = nn.Sequential(make(0.5, None), seed=seed)
    assert np.array_equal(draws(model), draws(nn.Sequential(make(0.5, None), seed=seed)))


@pytest.mark.parametrize("name", SHAPED)
def test_backward_is_the_forward_noise(name, rng, seed):
    make, shape = SHAPED[name]
    x = _x(shape, rng)
    layer = make(0.5, seed)
    y = layer.forward(x)
    noise = layer.backward(np.ones_like(x))
    shift = y - x * noise  # zero except for Alpha's affine term, which does not depend on x
    layer.counter = 0
    assert np.allclose(layer.forward(2 * x), 2 * x * noise + shift, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in SHAPED if n not in ("GaussianDropout", "AlphaDropout")])
def test_p_one_gives_zeros_and_finite_gradients(name, rng, seed):
    make, shape = SHAPED[name]
    x = _x(shape, rng)
    layer = make(1.0, seed)
    with np.errstate(all="raise"):
        assert np.all(layer.forward(x) == 0) and np.all(layer.backward(np.ones_like(x)) == 0)


# -- shapes of the masks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("layer,shape,axes", [
    (nn.Dropout1d(0.5), (16, 32, 7), (2,)),
    (nn.Dropout2d(0.5), (16, 32, 3, 4), (2, 3)),
    (nn.Dropout3d(0.5), (8, 16, 2, 3, 2), (2, 3, 4)),
    (nn.LockedDropout(0.5), (16, 9, 32), (1,)),
    (nn.DropPath(0.5), (64, 3, 5), (1, 2)),
])
def test_units_are_dropped_whole(layer, shape, axes, rng):
    y = layer.forward(_x(shape, rng))
    dropped = y == 0
    assert np.array_equal(dropped.all(axis=axes), dropped.any(axis=axes))
    assert 0 < dropped.mean() < 1


def test_droppath_batch_mode_drops_all_or_nothing(seed):
    layer = nn.DropPath(0.5, mode="batch", seed=seed)
    outs = [layer.forward(np.ones((8, 3), np.float32)) for _ in range(40)]
    assert all(np.all(o == 0) or np.all(o == 2) for o in outs)
    assert any(np.all(o == 0) for o in outs) and any(np.all(o == 2) for o in outs)  # P(miss) = 2 * 2**-40


# -- drop rates with derived bounds -------------------------------------------------------------------
def _bound(p, n):
    return Z * math.sqrt(p * (1 - p) / n) + 2**-33  # + the 32-bit threshold's rounding of p


@pytest.mark.parametrize("layer,shape,draws", [
    (nn.Dropout1d(0.3), (256, 128, 4), lambda y: y[:, :, 0]),         # n = N*C = 32768 channels
    (nn.Dropout2d(0.3), (256, 128, 2, 2), lambda y: y[:, :, 0, 0]),   # n = N*C
    (nn.Dropout3d(0.3), (128, 128, 1, 2, 2), lambda y: y[:, :, 0, 0, 0]),
    (nn.LockedDropout(0.3), (256, 4, 128), lambda y: y[:, 0]),        # n = N*F sequences x features
    (nn.DropPath(0.3), (20000, 3), lambda y: y[:, 0]),                # n = N samples
])
def test_drop_rate_counts_independent_draws(layer, shape, draws, seed):
    layer.seed(seed)
    d = draws(layer.forward(np.ones(shape, np.float32)))
    assert abs(float(np.mean(d == 0)) - 0.3) <= _bound(0.3, d.size)


def test_droppath_batch_rate_counts_calls(seed):
    n = 4000  # one draw per call
    layer = nn.DropPath(0.3, mode="batch", seed=seed)
    rate = np.mean([layer.forward(np.ones((2, 1)))[0, 0] == 0 for _ in range(n)])
    assert abs(rate - 0.3) <= _bound(0.3, n)


def test_alpha_drop_rate(rng, seed):
    n = 500_000  # elements are independent draws here
    layer = nn.AlphaDropout(0.2, seed=seed)
    _, _, fill = family.alpha_coefficients(0.2)
    y = layer.forward(rng.standard_normal(n))
    dropped = y == fill
    assert abs(dropped.mean() - 0.2) <= _bound(0.2, n)


# -- Gaussian and Alpha: moments ---------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_gaussian_keeps_mean_and_has_bernoulli_variance(p, seed):
    n = 1_000_000
    var = p / (1 - p)
    y = nn.GaussianDropout(p, seed=seed).forward(np.ones(n))
    # y = 1 + sigma z: mean within Z sigma/sqrt(n); sample variance has sd sigma^2 sqrt(2/n) (normal kurtosis 3)
    assert abs(y.mean() - 1) <= Z * math.sqrt(var / n)
    assert abs(y.var() - var) <= Z * var * math.sqrt(2 / n)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5])
def test_alpha_keeps_zero_mean_unit_variance_of_standard_normal_input(p, rng, seed):
    n = 1_000_000
    layer = nn.AlphaDropout(p, seed=seed)
    y = layer.forward(rng.standard_normal(n))
    a, b, c = family.alpha_coefficients(p)
    q = 1 - kernels.effective_p(p)
    # exact fourth moment of y (mean 0): kept y = a x + b, dropped y = c
    mu4 = q * (3 * a**4 + 6 * a**2 * b**2 + b**4) + (1 - q) * c**4
    assert abs(y.mean()) <= Z * math.sqrt(1 / n)
    assert abs(y.var() - 1) <= Z * math.sqrt((mu4 - 1) / n)


def test_alpha_coefficients_match_the_paper():
    a, b, fill = family.alpha_coefficients(0.1)
    q = 1 - kernels.effective_p(0.1)
    assert fill == a * ALPHA_PRIME + b and family.alpha_coefficients(1.0) == (0.0, 0.0, 0.0)
    assert ALPHA_PRIME == pytest.approx(-1.7580993408473766, rel=1e-15)
    assert a == pytest.approx((q + ALPHA_PRIME**2 * q * (1 - q)) ** -0.5, rel=1e-15)
    assert b == pytest.approx(-a * (1 - q) * ALPHA_PRIME, rel=1e-15)


def test_normal_source_is_standard_normal(seed):
    n = 1_000_000
    draw = _rng.NoiseStream.from_seed(seed).at(3)
    z = draw.normal((n,))
    assert abs(z.mean()) <= Z / math.sqrt(n) and abs(z.var() - 1) <= Z * math.sqrt(2 / n)
    # the fourth moment too (Box-Muller is exact in distribution): sd of mean(z^4) is sqrt(96/n)
    assert abs(np.mean(z**4) - 3) <= Z * math.sqrt(96 / n)
    assert np.array_equal(z, draw.normal((n,))) and np.array_equal(z[:1000], draw.normal((10, 100)).ravel())
    u = _rng.NoiseStream.from_seed(1).at(0).uniform((n,))
    assert u.min() > 0 and u.max() < 1 and abs(u.mean() - 0.5) <= Z * math.sqrt(1 / 12 / n)


# -- DropBlock ------------------------------------------------------------------------------------------
def test_dropblock_coverage_counts_are_exact():
    from droplab.family.variants import _coverage

    H, W, b = 7, 9, 3
    brute = np.zeros((H, W), int)
    for r in range(H - b + 1):
        for c in range(W - b + 1):
            brute[r:r + b, c:c + b] += 1
    assert np.array_equal(_coverage(H, W, b), brute)


@pytest.mark.parametrize("p,b,size", [(0.1, 3, 8), (0.2, 3, 8), (0.1, 7, 14), (0.3, 2, 6)])
def test_dropblock_exact_gamma_hits_p_and_paper_gamma_is_biased_low(p, b, size):
    def expected(rule):
        return family.expected_drop_fraction(size, size, b, kernels.effective_p(
            family.dropblock_gamma(p, size, size, b, rule)))

    # the seed rate is rounded to a 32-bit threshold; dE/dgamma <= max coverage = b^2
    assert abs(expected("exact") - p) <= b * b * 2**-33
    g = p / b**2 * size**2 / (size - b + 1) ** 2
    assert family.dropblock_gamma(p, size, size, b, "paper") == pytest.approx(g, rel=1e-15)
    assert expected("paper") < p  # overlapping blocks are counted once


@pytest.mark.parametrize("rule,shared", [("exact", False), ("paper", False), ("exact", True)])
def test_dropblock_realised_fraction_matches_expectation(rule, shared, seed):
    N, C, H, b, p = 256, 32, 8, 3, 0.2
    layer = nn.DropBlock2d(p, b, gamma=rule, shared_channels=shared, seed=seed)
    y = layer.forward(np.ones((N, C, H, H)))
    # each (sample, channel) map (or sample, when shared) is an independent draw of its dropped
    # fraction f in [0, 1], so Var f <= mu (1 - mu) and the mean of n maps is within Z sqrt(mu(1-mu)/n)
    maps = (y[:, :1] if shared else y) == 0
    f = maps.reshape(-1, H * H).mean(axis=1)
    mu = family.expected_drop_fraction(H, H, b, kernels.effective_p(family.dropblock_gamma(p, H, H, b, rule)))
    assert abs(f.mean() - mu) <= Z * math.sqrt(mu * (1 - mu) / f.size)
    if shared:
        assert np.array_equal(y == 0, np.broadcast_to(y[:, :1] == 0, y.shape))
    kept = np.count_nonzero(maps)
    assert np.all((y == 0) | (y == maps.size / (maps.size - kept)))  # renormalised by count / kept


def test_dropblock_drops_whole_blocks(seed):
    layer = nn.DropBlock2d(0.15, 3, seed=seed)
    dropped = layer.forward(np.ones((4, 4, 10, 10))) == 0
    seeds = ~layer.rng.at(0).keep_mask((4, 4, 8, 8), family.dropblock_gamma(0.15, 10, 10, 3))
    expect = np.zeros_like(dropped)
    for n, c, r, s in zip(*np.nonzero(seeds)):
        expect[n, c, r:r + 3, s:s + 3] = True
    assert np.array_equal(dropped, expect)


# -- DropConnect ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("per", ["batch", "example"])
def test_dropconnect_gradient_check(per, rng, seed):
    layer = nn.DropConnect(4, 3, 0.4, per=per, activation=nn.Tanh(), seed=seed, dtype=np.float64)
    assert check_gradients(layer, rng.standard_normal((5, 4))).ok


@pytest.mark.parametrize("per", ["batch", "example"])
def test_dropconnect_masks_weights(per, rng, seed):
    layer = nn.DropConnect(6, 5, 0.5, per=per, seed=seed, dtype=np.float64)
    x = rng.standard_normal((7, 6))
    y = layer.forward(x)
    M = layer.rng.at(0).mask_values(layer.noise_shape(x.shape), 0.5, kernels.keep_scale(0.5), np.float64)
    W = layer.weight.value * M
    expect = (x @ W if per == "batch" else np.einsum("ni,nio->no", x, W)) + layer.bias.value
    assert np.allclose(y, expect, rtol=1e-13)
    assert y.shape == (7, 5) and y.dtype == np.float64


@pytest.mark.parametrize("per,shape", [("batch", (64, 64)), ("example", (16, 64, 64))])
def test_dropconnect_weight_drop_rate(per, shape, rng, seed):
    layer = nn.DropConnect(64, 64, 0.3, per=per, seed=seed)
    x = rng.standard_normal((shape[0] if per == "example" else 2, 64)).astype(np.float32)
    layer.forward(x)
    M = layer.rng.at(0).mask_values(layer.noise_shape(x.shape), 0.3, layer.scale, np.float32)
    n = M.size  # one draw per weight (per example: per example and weight)
    assert abs(np.mean(M == 0) - 0.3) <= _bound(0.3, n)


def test_dropconnect_scale_inference_is_the_mean_dense(rng, seed):
    layer = nn.DropConnect(5, 4, 0.5, activation=nn.ReLU(), seed=seed)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    y = layer.eval().forward(x)
    assert np.array_equal(y, np.maximum(x @ layer.weight.value + layer.bias.value, 0))
    layer.zero_grad()
    dx = layer.backward(np.ones_like(y))
    du = (y > 0).astype(np.float32)
    assert np.allclose(dx, du @ layer.weight.value.T) and np.allclose(layer.weight.grad, x.T @ du)


def test_dropconnect_gaussian_inference_is_wans_moment_matching(rng, seed):
    p, T = 0.4, 50
    layer = nn.DropConnect(5, 4, p, inference="gaussian", samples=T, activation=nn.ReLU(), seed=seed,
                           dtype=np.float64).eval()
    x = rng.standard_normal((6, 5))
    W, b = layer.weight.value, layer.bias.value
    y = layer.forward(x)
    mean, var = x @ W + b, p / (1 - p) * ((x * x) @ (W * W))
    z = layer.spec.inference_noise(layer.rng, 6, T, 4)  # (rows, samples, out): a row's draws are its own
    assert np.allclose(y, np.maximum(mean[:, None] + np.sqrt(var)[:, None] * z, 0).mean(axis=1), rtol=1e-12)
    # the inference side stream: the training counter never moves, and predictions repeat
    assert layer.counter == 0 and np.array_equal(layer.forward(x), y)
    assert np.array_equal(layer.forward(x[:3]), y[:3])  # row i's draws do not depend on the batch size
    with pytest.raises(RuntimeError, match=r"DropConnect: backward\(\) through the sampled Gaussian inference"):
        layer.backward(np.ones_like(y))


def test_dropconnect_moments_match_training(rng, seed):
    # the matched moments are those of the training pre-activation u = x @ (W * M) + b (per example)
    p, S = 0.3, 4000  # S independent masks
    layer = nn.DropConnect(8, 1, p, per="example", seed=seed, dtype=np.float64)
    x = np.repeat(rng.standard_normal((1, 8)), S, axis=0)
    u = layer.forward(x)[:, 0]
    W, b = layer.weight.value, layer.bias.value
    q = 1 - kernels.effective_p(p)
    mean, var = float(x[0] @ W[:, 0] + b[0]), float((1 - q) / q * (x[0] ** 2) @ (W[:, 0] ** 2))
    assert abs(u.mean() - mean) <= Z * math.sqrt(var / S)


# -- ConcreteDropout ------------------------------------------------------------------------------------
def test_concrete_gradient_check_includes_p_and_regulariser(rng, seed):
    layer = nn.ConcreteDropout(nn.Dense(4, 3, dtype=np.float64), weight_regularizer=0.05,
                               dropout_regularizer=0.02, p=0.3, seed=seed)
    report = check_gradients(layer, rng.standard_normal((6, 4)))
    assert report.ok and "0.p_logit" in report.errors, report


def test_concrete_eval_is_the_layer_and_p_is_sigmoid_of_logit(rng, seed):
    dense = nn.Dense(4, 3, dtype=np.float64)
    layer = nn.ConcreteDropout(dense, p=0.25, seed=seed)
    assert layer.p == pytest.approx(0.25, rel=1e-12)
    x = rng.standard_normal((5, 4))
    assert np.array_equal(layer.eval().forward(x), dense.forward(x))
    assert np.allclose(dense.forward(x), x @ dense.weight.value + dense.bias.value, rtol=1e-14, atol=0)
    layer.train()
    y1 = layer.forward(x)
    layer.counter = 0
    assert np.array_equal(layer.forward(x), y1)


def test_concrete_regulariser_signs():
    layer = nn.ConcreteDropout(nn.Dense(10, 2, dtype=np.float64), weight_regularizer=0.0,
                               dropout_regularizer=1.0, init_p=0.5)
    q = 0.2
    layer.p = q
    assert layer.regularization_loss() == pytest.approx(10 * (q * math.log(q) + (1 - q) * math.log(1 - q)))

    def dlogit(p):
        layer.p = p
        layer.zero_grad()
        layer.eval().forward(np.zeros((1, 10)))
        layer.backward(np.zeros((1, 2)))
        return float(layer.p_logit.grad[0])

    # the entropy term alone: gradient descent moves p towards 0.5 from either side
    assert dlogit(0.2) < 0 < dlogit(0.8) and abs(dlogit(0.5)) < 1e-12
    # the weight term alone pushes p down
    layer.weight_regularizer, layer.dropout_regularizer = 1.0, 0.0
    assert dlogit(0.5) > 0


def _learned_p(n, seed, steps=400):
    """Mean learned p of two ConcreteDropout layers on y = sin(2x) + 0.3 noise with n points."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (n, 1))
    y = np.sin(2 * X) + 0.3 * rng.standard_normal((n, 1))
    wr, dr = 1e-4 / n, 2.0 / n  # the paper's l^2 / N and 2 / N: the prior's weight shrinks with N

    def cd(layer):
        return nn.ConcreteDropout(layer, weight_regularizer=wr, dropout_regularizer=dr, init_p=0.1)

    model = nn.Sequential(nn.Dense(1, 32, dtype=np.float64), nn.ReLU(), cd(nn.Dense(32, 32, dtype=np.float64)),
                          nn.ReLU(), cd(nn.Dense(32, 1, dtype=np.float64)), seed=seed)
    bs = min(n, 100)
    model.fit(X, y, loss=nn.MSELoss(), optimizer=nn.Adam(2e-2), epochs=max(1, steps * bs // n), batch_size=bs,
              verbose=False)
    return float(np.mean([m.p for m in model.modules() if isinstance(m, nn.ConcreteDropout)]))


def test_concrete_learned_p_falls_as_data_grows():
    # Gal et al. 2017, Figure 2: more data, smaller p. Over 10 seeds (100..109) this setting gave
    # p = 0.463 +- 0.005 (n=50), 0.306 +- 0.041 (n=300), 0.030 +- 0.007 (n=3000) (mean +- sd).
    # The margins below are >= 5 sd of the differences under those spreads: 0.2 is 25 sd below
    # the observed 0.433 gap (sd 0.009) and 0.05 is 5.4 sd below the 0.276 gap (sd 0.042).
    small, mid, large = (_learned_p(n, seed=0) for n in (50, 300, 3000))
    assert small - large > 0.2
    assert mid - large > 0.05


# -- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,x,match", [
    (lambda: nn.Dropout2d(0.5), np.ones((3, 4, 4)),
     r"Dropout2d: `x` must be a 4-D array \(N, C, H, W\); got x='array of shape \(3, 4, 4\)'\. Use Dropout1d"),
    (lambda: nn.Dropout1d(0.5), np.ones((3, 4)), r"Dropout1d: `x` must be a 3-D array \(N, C, L\)"),
    (lambda: nn.Dropout3d(0.5), np.ones((3, 4, 4, 4)), r"Dropout3d: `x` must be a 5-D array \(N, C, D, H, W\)"),
    (lambda: nn.LockedDropout(0.5), np.ones((3, 4)), r"LockedDropout: `x` must be a 3-D array \(N, T, F\)"),
    (lambda: nn.DropBlock2d(0.5, 3), np.ones((3, 4, 4)), r"DropBlock2d: `x` must be a 4-D array"),
    (lambda: nn.DropPath(0.5), np.ones(()), r"DropPath: `x` must be an array of rank >= 1 \(N, \*\)"),
    (lambda: nn.DropConnect(3, 2), np.ones((4, 5)), r"DropConnect: `x` must be an array of rank >= 1 \(\*, 3\)"),
    (lambda: nn.DropConnect(3, 2, per="example"), np.ones((2, 4, 3)), r"DropConnect: `x` must be a 2-D array \(N, 3\)"),
])
def test_wrong_input_shape_raises(make, x, match):
    with pytest.raises(ValueError, match=match):
        make().forward(x)


@pytest.mark.parametrize("make,exc,match", [
    (lambda: nn.GaussianDropout(1.0), ValueError,
     r"GaussianDropout: `p` must be a probability in \[0, 1\); got p=1.0\. The noise variance"),
    (lambda: nn.AlphaDropout(1.5), ValueError, r"AlphaDropout: `p` must be a probability in \[0, 1\]; got p=1.5"),
    (lambda: nn.Dropout2d(1.5), ValueError, r"Dropout2d: `p` must be a probability in \[0, 1\]; got p=1.5"),
    (lambda: nn.DropPath(0.1, mode="rows"), ValueError, r"DropPath: `mode` must be one of 'row', 'batch'.*'row'"),
    (lambda: nn.DropBlock2d(0.1, 0), ValueError, r"DropBlock2d: `block_size` must be a positive integer"),
    (lambda: nn.DropBlock2d(0.1, 3, gamma="ghiasi"), ValueError, r"DropBlock2d: `gamma` must be one of 'exact'"),
    (lambda: nn.DropConnect(3, 2, per="sample"), ValueError, r"DropConnect: `per` must be one of 'batch', 'example'"),
    (lambda: nn.DropConnect(3, 2, inference="mc"), ValueError, r"DropConnect: `inference` must be one of"),
    (lambda: nn.DropConnect(3, 2, samples=0), ValueError, r"DropConnect: `samples` must be a positive integer"),
    (lambda: nn.DropConnect(3, 2, activation="relu"), TypeError, r"DropConnect: `activation` must be a droplab"),
    (lambda: nn.ConcreteDropout(nn.Dense(2, 2), p=0.0), ValueError,
     r"ConcreteDropout: `p` must be a probability in \(0, 1\); got p=0.0\. A learned p needs a finite logit"),
    (lambda: nn.ConcreteDropout(nn.Dense(2, 2), init_p=1.0), ValueError,
     r"ConcreteDropout: `p` must be a probability in \(0, 1\); got p=1.0"),
    (lambda: nn.ConcreteDropout("dense"), TypeError, r"ConcreteDropout: `layer` must be a droplab Module"),
    (lambda: nn.ConcreteDropout(nn.ReLU(), input_dim=0), ValueError, r"ConcreteDropout: `input_dim` must be a posi"),
    (lambda: nn.ConcreteDropout(nn.Dense(2, 2), temperature=0), ValueError, r"`temperature` must be a finite"),
])
def test_bad_arguments_raise(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_setting_p_validates():
    layer = nn.GaussianDropout(0.5)
    layer.p = 0.2
    assert layer.p == 0.2 and layer.config() == {"p": 0.2, "axes": None}
    with pytest.raises(ValueError, match=r"GaussianDropout: `p` must be a probability in \[0, 1\); got p=1"):
        layer.p = 1
    with pytest.raises(ValueError, match=r"ConcreteDropout: `p` must be a probability in \(0, 1\)"):
        nn.ConcreteDropout(nn.Dense(2, 2)).p = 1.0


@pytest.mark.parametrize("layer", [nn.Dropout2d(0.5), nn.DropConnect(2, 2), nn.ConcreteDropout(nn.Dense(2, 2))])
def test_backward_before_forward_raises(layer):
    with pytest.raises(RuntimeError, match=r"backward\(\) was called before forward\(\)"):
        layer.backward(np.ones((1, 2)))


def test_every_variant_is_a_dropout_layer():
    for cls in (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.GaussianDropout, nn.AlphaDropout, nn.DropBlock2d,
                nn.DropPath, nn.LockedDropout, nn.DropConnect, nn.ConcreteDropout):
        assert issubclass(cls, nn.Dropout) and cls.is_dropout


@pytest.mark.parametrize("p", [math.nextafter(1.0, 0.0), 1.0])
def test_alpha_p_rounding_to_one_gives_zeros_as_pytorch(p, rng):
    # where the 32-bit threshold drops every unit (and at p = 1) the output is zeros, as PyTorch's
    x = rng.standard_normal((4, 50))
    layer = nn.AlphaDropout(p, seed=0)
    y = layer.forward(x)
    assert np.all(y == 0) and np.all(layer.backward(np.ones_like(x)) == 0)


def test_save_load_round_trip_keeps_weights_masks_and_p(tmp_path, rng, seed):
    def model():
        return nn.Sequential(
            nn.Dropout2d(0.2), nn.DropBlock2d(0.2, 2, shared_channels=True, gamma="paper"), nn.Flatten(),
            nn.GaussianDropout(0.3), nn.DropPath(0.1, mode="batch"),
            nn.DropConnect(32, 8, 0.4, per="example", inference="gaussian", samples=5, activation=nn.ReLU()),
            nn.AlphaDropout(0.1), nn.ConcreteDropout(nn.Dense(8, 6), p=0.3, temperature=0.2), seed=seed)

    m = model()
    x = _x((5, 2, 4, 4), rng, np.float32)
    m.forward(x)
    m.layers[7].p = 0.45
    path = tmp_path / "family.npz"
    m.save(path)
    loaded = nn.load(path)
    assert repr(loaded) == repr(m) and loaded.layers[7].p == pytest.approx(0.45)
    assert np.array_equal(loaded.forward(x), m.forward(x))  # the next masks too: key and counter kept
    assert np.array_equal(loaded.eval().forward(x), m.eval().forward(x))
