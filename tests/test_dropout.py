"""nn.Dropout: exact invariants first, then rates with derived 5-sigma bounds.

Bounds: |rate - p| <= 5 * sqrt(p (1 - p) / n), n = INDEPENDENT draws; a 5-sigma two-sided
bound fails by chance with probability about 6e-7 per check.
"""

import numpy as np
import pytest

from droplab import kernels, nn

Z = 5.0  # sigmas; false-failure probability ~6e-7 per bound


def ones(shape, dtype=np.float32):
    return np.ones(shape, dtype)


@pytest.fixture(params=["numba", "numpy"])
def backend(request, monkeypatch):
    """Runs the layer on each kernel backend in turn (the resolved choice is restored after)."""
    if request.param == "numba":
        if kernels.backend() != "numba":
            pytest.skip("the numba kernels are not in use in this process")
    else:
        monkeypatch.setattr(kernels, "_fast", None)
        monkeypatch.setattr(kernels, "_backend_name", "numpy")
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.3, 0.4, 0.5, 0.9])
def test_outputs_are_zero_or_scaled_input(p, dtype, rng, seed):
    x = rng.standard_normal((64, 33)).astype(dtype)
    layer = nn.Dropout(p, seed=seed)
    y = layer.forward(x)
    scaled = x * dtype(1 / (1 - p))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert np.all((y == 0) | (y == scaled))


@pytest.mark.parametrize("axes", [None, (1,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.3, 0.4])
def test_kept_values_are_exactly_x_over_keep(backend, p, dtype, axes, rng, seed):
    # As PyTorch computes them: s = 1/(1-p) in float64, rounded once to the dtype, one rounding
    # for the product. (16-bit thresholds gave x * 1.666650 for p = 0.4, not x * 1.666667.)
    x = rng.uniform(1, 2, (300, 65)).astype(dtype)  # no zeros: y == 0 exactly where dropped
    layer = nn.Dropout(p, axes=axes, seed=seed)
    y = layer.forward(x)
    kept = y != 0
    assert 0 < kept.sum() < x.size
    assert np.array_equal(y[kept], x[kept] * dtype(1 / (1 - p)))
    dx = layer.backward(x)
    assert np.array_equal(dx, y)  # the same linear map, the same mask


def test_eval_and_p0_are_bitwise_identity(rng, seed):
    x = rng.standard_normal((8, 5)).astype(np.float32)
    layer = nn.Dropout(0.5, seed=seed).eval()
    assert layer.forward(x) is x
    dy = rng.standard_normal(x.shape).astype(np.float32)
    assert layer.backward(dy) is dy
    zero = nn.Dropout(0.0, seed=seed)
    assert zero.forward(x) is x and zero.backward(dy) is dy


def test_train_eval_return_self_and_set_mode():
    layer = nn.Dropout(0.5)
    assert layer.eval() is layer and layer.training is False
    assert layer.train() is layer and layer.training is True


@pytest.mark.parametrize("inverted", [True, False])
def test_p_one_gives_zeros_and_finite_gradients(inverted, rng):
    x = rng.standard_normal((10, 7))
    layer = nn.Dropout(1.0, inverted=inverted, seed=1)
    with np.errstate(all="raise"):
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(x))
        assert np.all(y == 0) and np.all(dx == 0) and np.all(np.isfinite(dx))
        assert np.all(layer.eval().forward(x) == (0 if not inverted else x))


def test_input_not_mutated(rng):
    x = rng.standard_normal((50, 20)).astype(np.float32)
    before = x.copy()
    layer = nn.Dropout(0.5, seed=3)
    layer.forward(x)
    layer.backward(x)
    assert np.array_equal(x, before)


def test_axes_drop_whole_units(rng, seed):
    x = rng.standard_normal((16, 8, 5, 5)).astype(np.float32) + 10  # no zeros in x
    y = nn.Dropout(0.5, axes=(2, 3), seed=seed).forward(x)
    dropped = (y == 0).reshape(16, 8, -1)
    assert np.all(dropped.all(axis=2) | ~dropped.any(axis=2))
    # locked dropout on (N, T, F): the same features dropped at every time step
    z = nn.Dropout(0.3, axes=1, seed=seed).forward(np.ones((4, 12, 6), np.float32))
    assert np.all((z == 0) == (z[:, :1] == 0))


def test_backward_uses_the_forward_mask(rng, seed):
    x = rng.standard_normal((40, 30)) + 5
    layer = nn.Dropout(0.4, seed=seed)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(x))
    assert np.array_equal(y == 0, dx == 0)
    assert np.all(dx[dx != 0] == 1 / (1 - 0.4))  # float64: the scale itself, exactly


def test_no_mask_is_held_between_forward_and_backward():
    x = np.ones((300, 200), np.float32)
    layer = nn.Dropout(0.5, seed=0)
    layer.forward(x)
    held = [v for v in vars(layer).values() if isinstance(v, np.ndarray)]
    held += [v for s in (layer._state or ()) if isinstance(s, tuple) for v in s if isinstance(v, np.ndarray)]
    assert sum(a.nbytes for a in held) == 0


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.8])
def test_drop_rate_within_derived_bound(p, seed):
    n = 1_000_000  # independent elements
    y = nn.Dropout(p, seed=seed).forward(ones(n))
    rate = float(np.mean(y == 0))
    assert abs(rate - p) <= Z * np.sqrt(p * (1 - p) / n)


def test_tiny_p_drops_at_its_rate(seed):
    # p = 5e-6 rounded to 0 at 16 bits (nothing dropped). n = 2**24 independent elements:
    # 84 drops expected, sd 9.2; |rate - p| <= 5 sqrt(p(1-p)/n) fails by chance with probability
    # ~6e-7 (the 32-bit threshold's rounding, <= 2**-33, is 2e-4 sigma).
    n, p = 1 << 24, 5e-6
    y = nn.Dropout(p, seed=seed).forward(ones(n))
    rate = float(np.mean(y == 0))
    assert abs(rate - p) <= Z * np.sqrt(p * (1 - p) / n)


def test_channel_rate_counts_channels_as_draws(seed):
    n_units = 64 * 512  # (N, C) pairs are the independent draws, not the 64*512*9 elements
    y = nn.Dropout(0.25, axes=(2, 3), seed=seed).forward(ones((64, 512, 3, 3)))
    rate = float(np.mean(y[:, :, 0, 0] == 0))
    assert abs(rate - 0.25) <= Z * np.sqrt(0.25 * 0.75 / n_units)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_expectation_is_preserved(p, seed):
    # y in {0, s} with s = 1/(1-p): Var(y) = p/(1-p), so the mean of n draws is within Z*sqrt(p/(1-p)/n) of 1
    n = 1_000_000
    y = nn.Dropout(p, seed=seed).forward(ones(n, np.float64))
    assert abs(y.mean() - 1) <= Z * np.sqrt(p / (1 - p) / n)


def test_classic_form_scales_at_inference(rng, seed):
    x = rng.standard_normal((20, 10)).astype(np.float32)
    layer = nn.Dropout(0.25, inverted=False, seed=seed)
    y = layer.forward(x)
    assert np.all((y == 0) | (y == x))
    ev = layer.eval().forward(x)
    assert np.array_equal(ev, x * np.float32(1 - 0.25))
    assert np.array_equal(layer.backward(np.ones_like(x)), np.full_like(x, 0.75))
    # p itself, not a quantised p: 0.3 is no multiple of 2**-16 (or 2**-32)
    layer = nn.Dropout(0.3, inverted=False, seed=seed)
    y = layer.forward(x)
    assert np.all((y == 0) | (y == x)) and (y == 0).any()
    assert np.array_equal(layer.eval().forward(x), x * np.float32(1 - 0.3))


def test_same_seed_same_mask_different_seed_different_mask():
    x = ones((100, 100))
    a = nn.Dropout(0.5, seed=7).forward(x)
    b = nn.Dropout(0.5, seed=7).forward(x)
    c = nn.Dropout(0.5, seed=8).forward(x)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    layer = nn.Dropout(0.5, seed=7)
    assert not np.array_equal(layer.forward(x), layer.forward(x))  # a fresh mask per call


def test_counter_replays_a_mask():
    layer = nn.Dropout(0.5, seed=2)
    x = ones((30, 30))
    first = layer.forward(x)
    layer.counter = 0
    assert np.array_equal(layer.forward(x), first)


def test_generator_seed_is_accepted():
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    x = ones((10, 10))
    assert np.array_equal(nn.Dropout(0.5, seed=g1).forward(x), nn.Dropout(0.5, seed=g2).forward(x))


def test_effective_p_is_within_resolution():
    for p in np.linspace(0, 1, 1001):
        assert abs(kernels.effective_p(p) - p) <= 2**-33  # a 32-bit threshold (the contract: 2**-24)


@pytest.mark.parametrize("p,exc,match", [
    (1.5, ValueError, r"Dropout: `p` must be a probability in \[0, 1\]; got p=1.5\."),
    (-0.1, ValueError, r"`p` must be a probability in \[0, 1\]; got p=-0.1"),
    (float("nan"), ValueError, r"got p=nan"),
    ("0.5", TypeError, r"`p` must be a real number; got p='0.5'"),
    (True, TypeError, r"`p` must be a real number; got p=True"),
])
def test_bad_p_raises(p, exc, match):
    with pytest.raises(exc, match=match):
        nn.Dropout(p)


def test_bad_calls_raise():
    layer = nn.Dropout(0.5)
    with pytest.raises(RuntimeError, match=r"Dropout: backward\(\) was called before forward\(\)"):
        layer.backward(np.ones(3))
    with pytest.raises(TypeError, match=r"Dropout: `x` must be a real-valued array"):
        layer.forward(np.array(["a"]))
    with pytest.raises(TypeError, match=r"Dropout: `x` must be a float16, float32 or float64 array"):
        layer.forward(np.ones(3, dtype=np.longdouble))
    with pytest.raises(ValueError, match=r"`axes` must be axes of the 2-D input"):
        nn.Dropout(0.5, axes=(3,)).forward(np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"`axes` must be None, an int or a tuple of ints"):
        nn.Dropout(0.5, axes="1")
    with pytest.raises(ValueError, match=r"`axes` must be distinct axes"):
        nn.Dropout(0.5, axes=(1, 1))
    with pytest.raises(TypeError, match=r"Dropout: `seed` must be an int, a numpy Generator or None"):
        nn.Dropout(0.5, seed=1.5)
    with pytest.raises(ValueError, match=r"`seed` must be a non-negative integer"):
        nn.Dropout(0.5, seed=-1)
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"`dy` must be an array of the forward input's shape \(2, 3\)"):
        layer.backward(np.ones((3, 2)))


@pytest.mark.parametrize("axes", [None, (1,)])  # the fused CPU kernel; a broadcast mask multiplied in torch
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("p", [0.1, 0.3, 0.4])
def test_torch_kept_values_are_exactly_x_over_keep(p, dtype, axes, seed):
    # droplab.torch's Dropout, forward and backward: the same masks as nn.Dropout and kept
    # values x * dtype(1/(1-p)); float16/bfloat16 as PyTorch rounds them,
    # (x.float() * float32(1/(1-p))).to(dtype).
    torch = pytest.importorskip("torch")
    import droplab.torch as dt

    tdtype = getattr(torch, dtype)

    def scaled(t):  # t * (1/(1-p)) with the scale rounded once to the compute dtype, as torch does
        if dtype in ("float32", "float64"):
            return t * torch.tensor(1 / (1 - p), dtype=tdtype)
        return (t.float() * torch.tensor(1 / (1 - p), dtype=torch.float32)).to(tdtype)

    x = torch.rand(300, 65, generator=torch.Generator().manual_seed(seed)).add_(1).to(tdtype).requires_grad_()
    layer = dt.Dropout(p, axes=axes, seed=seed)
    y = layer(x)
    kept = y != 0
    assert 0 < int(kept.sum()) < x.numel()
    assert torch.equal(y.detach()[kept], scaled(x.detach())[kept])
    if dtype in ("float32", "float64"):
        xn = x.detach().numpy()
        assert np.array_equal(y.detach()[kept].numpy(), (xn * xn.dtype.type(1 / (1 - p)))[kept.numpy()])
        ref = nn.Dropout(p, axes=axes, seed=seed).forward(xn)
        assert np.array_equal(y.detach().numpy(), ref)  # one mask source for both engines
    y.backward(torch.ones_like(x))
    assert torch.equal(x.grad, scaled(kept.to(tdtype)))
