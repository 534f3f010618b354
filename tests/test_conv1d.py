"""Conv1d, MaxPool1d, AvgPool1d and GlobalAvgPool1d: float64 gradient checks, the direct
definition, PyTorch on the same weights (float64 exactly, float32 to 1e-5), model files,
the fit path that skips the first layer's input gradient, and every error path."""

import numpy as np
import pytest

from droplab import nn
from droplab.nn.gradcheck import check_gradients

F64 = np.float64


def distinct(rng, shape):
    """Values in [-0.5, 0.5) at least 1/size apart: no max-pool tie closer than the
    finite-difference step."""
    n = int(np.prod(shape))
    return rng.permutation(n).reshape(shape) / n - 0.5


def naive_conv1d(x, w, b, stride, padding, dilation):
    """Direct definition: y[n, o, l] = b[o] + sum_{c,i} W[o, c, i] x_pad[n, c, s*l + d*i]."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    o, _, k = w.shape
    lo = (xp.shape[2] - dilation * (k - 1) - 1) // stride + 1
    y = np.zeros((x.shape[0], o, lo))
    for l in range(lo):
        taps = xp[:, :, l * stride + dilation * np.arange(k)]  # (N, C, k)
        y[:, :, l] = np.einsum("nck,ock->no", taps, w) + (0 if b is None else b)
    return y


# ----------------------------------------------------------------------------- gradients
CASES = {
    "k3": (lambda: nn.Conv1d(2, 3, 3, dtype=F64, seed=0), (2, 2, 7)),
    "k5-s2-p1": (lambda: nn.Conv1d(1, 4, 5, stride=2, padding=1, dtype=F64, seed=0), (3, 1, 12)),
    "k3-s2-p1-no-bias": (lambda: nn.Conv1d(3, 2, 3, stride=2, padding=1, bias=False, dtype=F64, seed=0), (2, 3, 9)),
    "k3-d2-p2": (lambda: nn.Conv1d(2, 3, 3, padding=2, dilation=2, dtype=F64, seed=0), (2, 2, 6)),
    "k2-s3-d3-no-bias": (lambda: nn.Conv1d(2, 2, 2, stride=3, dilation=3, bias=False, dtype=F64, seed=0), (2, 2, 11)),
    "k1-l2-torchinit": (lambda: nn.Conv1d(3, 2, 1, l2=0.05, init="torch", dtype=F64, seed=0), (2, 3, 4)),
    "maxpool": (lambda: nn.MaxPool1d(2), (2, 3, 7)),
    "maxpool-overlap": (lambda: nn.MaxPool1d(3, stride=1), (2, 2, 6)),
    "avgpool": (lambda: nn.AvgPool1d(2), (2, 3, 6)),
    "avgpool-overlap": (lambda: nn.AvgPool1d(3, stride=2), (2, 2, 9)),
    "global-avg": (lambda: nn.GlobalAvgPool1d(), (3, 2, 5)),
    "global-avg-keepdims": (lambda: nn.GlobalAvgPool1d(keepdims=True), (3, 2, 5)),
    "paper-cnn": (lambda: nn.Sequential(
        nn.Conv1d(1, 3, 5, stride=2, padding=1, dtype=F64), nn.Tanh(),
        nn.Conv1d(3, 3, 3, stride=2, padding=1, dtype=F64), nn.Tanh(),
        nn.Conv1d(3, 3, 3, stride=2, padding=1, dtype=F64), nn.Flatten(), nn.Dense(15, 2, dtype=F64), seed=3),
        (2, 1, 40)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_float64(name, rng):
    make, shape = CASES[name]
    layer = make()
    for p in layer.parameters():  # non-zero biases, so their gradients are exercised
        if p.value.ndim == 1:
            p.value[:] = rng.uniform(0.5, 1.5, p.value.shape)
    report = check_gradients(layer, distinct(rng, shape))
    assert report.ok, f"{name}: {report}"


@pytest.mark.parametrize("stride,padding,dilation,bias", [(1, 0, 1, True), (2, 1, 1, True), (3, 2, 2, False),
                                                          (1, 3, 3, True), (2, 0, 2, False)])
def test_conv1d_matches_the_direct_definition(stride, padding, dilation, bias, rng):
    conv = nn.Conv1d(3, 4, 3, stride=stride, padding=padding, dilation=dilation, bias=bias, dtype=F64, seed=1)
    x = rng.standard_normal((2, 3, 13))
    b = conv.bias.value if bias else None
    expected = naive_conv1d(x, conv.weight.value, b, stride, padding, dilation)
    np.testing.assert_allclose(conv.forward(x), expected, rtol=1e-12, atol=1e-12)
    assert [p.name for p in conv.parameters()] == (["weight", "bias"] if bias else ["weight"])


def test_conv1d_is_conv2d_on_a_height_of_one(rng):
    # one mechanism: the 1-D layer is the 2-D code with one spatial axis
    c1 = nn.Conv1d(3, 4, 3, stride=2, padding=1, dtype=F64, seed=0)
    c2 = nn.Conv2d(3, 4, (1, 3), stride=(1, 2), padding=(0, 1), dtype=F64, seed=0)
    c2.weight.value[...] = c1.weight.value[:, :, None, :]
    c2.bias.value[...] = c1.bias.value
    x = rng.standard_normal((2, 3, 11))
    np.testing.assert_allclose(c1.forward(x), c2.forward(x[:, :, None])[:, :, 0], rtol=1e-14, atol=1e-15)
    dy = rng.standard_normal((2, 4, 6))
    np.testing.assert_allclose(c1.backward(dy), c2.backward(dy[:, :, None])[:, :, 0], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(c1.weight.grad, c2.weight.grad[:, :, 0], rtol=1e-14)


def test_pools_match_their_definitions(rng):
    x = rng.standard_normal((2, 3, 11))
    win = np.lib.stride_tricks.sliding_window_view(x, 3, axis=2)[:, :, ::2]
    np.testing.assert_array_equal(nn.MaxPool1d(3, stride=2).forward(x), win.max(axis=-1))
    np.testing.assert_allclose(nn.AvgPool1d(3, stride=2).forward(x), win.mean(axis=-1), rtol=1e-14)
    np.testing.assert_allclose(nn.GlobalAvgPool1d().forward(x), x.mean(axis=2), rtol=1e-14)
    # ties: the first maximum of a window takes the gradient, as in MaxPool2d
    pool = nn.MaxPool1d(2)
    pool.forward(np.ones((1, 1, 4)))
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 2))), [[[1.0, 0.0, 1.0, 0.0]]])


# ------------------------------------------------------------------------------ PyTorch
# Tolerance in float32. Every output and gradient element is a K-term dot product: K = C*k
# (+1 bias) for an output, O*k for an input gradient, N*Lo for a weight gradient (here at most
# 16*19 = 304). Each implementation rounds it with error at most gamma_K * sum|a_i b_i|,
# gamma_K = K*u/(1 - K*u), u = 2**-24 (Higham, Accuracy and Stability, Thm 3.1), and in
# practice, with blocked BLAS sums of mixed signs, about sqrt(K)*u times the array's scale:
# sqrt(304)*6e-8 = 1e-6. The two implementations sum in different orders, so they differ by
# about twice that. 1e-5 relative to the array's largest magnitude leaves a margin of ~5x
# over this; element-wise it is always within the worst-case bound (checked too).
U32 = 2.0 ** -24


def _gamma(k):
    return k * U32 / (1 - k * U32)


def assert_close32(ours, theirs, worst=None):
    """|ours - theirs| <= 1e-5 * max(1, max|theirs|), and <= ``worst`` element-wise if given."""
    theirs = np.asarray(theirs, np.float64)
    diff = np.abs(np.asarray(ours, np.float64) - theirs)
    assert diff.max(initial=0.0) <= 1e-5 * max(1.0, np.abs(theirs).max(initial=0.0)), diff.max()
    if worst is not None:
        assert np.all(diff <= worst), (diff - worst).max()


def _torch_conv(torch, conv):
    t = torch.nn.Conv1d(conv.in_channels, conv.out_channels, conv.kernel_size[0], stride=conv.stride[0],
                        padding=conv.padding[0], dilation=conv.dilation[0], bias=conv.use_bias)
    t = t.double() if conv.dtype == np.float64 else t
    with torch.no_grad():
        t.weight[:] = torch.tensor(conv.weight.value)
        if conv.use_bias:
            t.bias[:] = torch.tensor(conv.bias.value)
    return t


@pytest.mark.parametrize("spec", [
    dict(in_channels=1, out_channels=25, kernel_size=5, stride=2, padding=1, length=40),  # the paper's CNN
    dict(in_channels=25, out_channels=25, kernel_size=3, stride=2, padding=1, length=19),
    dict(in_channels=25, out_channels=25, kernel_size=3, stride=2, padding=1, length=10),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=1, padding=3, dilation=3, length=12),
    dict(in_channels=3, out_channels=5, kernel_size=4, stride=3, padding=0, bias=False, length=17),
], ids=["paper-1", "paper-2", "paper-3", "dilated", "no-bias"])
def test_conv1d_matches_torch_in_float32(spec, rng):
    torch = pytest.importorskip("torch")
    spec = dict(spec)
    length = spec.pop("length")
    conv = nn.Conv1d(**spec, init="torch", seed=int(rng.integers(2**31)))
    t = _torch_conv(torch, conv)
    x = rng.standard_normal((16, spec["in_channels"], length)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(dy))
    y = conv.forward(x)
    dx = conv.backward(dy)
    # the worst-case bounds, from the same convolution in float64 on absolute values
    absconv = nn.Conv1d(**spec, dtype=F64)
    absconv.weight.value[...] = np.abs(conv.weight.value)
    absconv.bias.value[...] = np.abs(conv.bias.value)
    k, o = spec["kernel_size"], spec["out_channels"]
    terms_y = absconv.forward(np.abs(x).astype(F64))
    terms_dx = absconv.backward(np.abs(dy).astype(F64))
    rows = x.shape[0] * y.shape[2]
    assert y.dtype == dx.dtype == np.float32
    assert_close32(y, yt.detach().numpy(), 2 * _gamma(spec["in_channels"] * k + 1) * terms_y)
    assert_close32(dx, xt.grad.numpy(), 2 * _gamma(o * k) * terms_dx)
    assert_close32(conv.weight.grad, t.weight.grad.numpy(), 2 * _gamma(rows) * absconv.weight.grad)
    if conv.use_bias:
        assert_close32(conv.bias.grad, t.bias.grad.numpy(), 2 * _gamma(rows) * np.abs(dy).sum(axis=(0, 2)))


def test_conv1d_matches_torch_in_float64(rng):
    torch = pytest.importorskip("torch")
    conv = nn.Conv1d(3, 4, 3, stride=2, padding=2, dilation=2, init="torch", dtype=F64, seed=0)
    t = _torch_conv(torch, conv)
    x = rng.standard_normal((3, 3, 14))
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(conv.forward(x), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad, t.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.bias.grad, t.bias.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make,make_torch", [
    (lambda: nn.MaxPool1d(2), lambda t: t.nn.MaxPool1d(2)),
    (lambda: nn.MaxPool1d(3, stride=1), lambda t: t.nn.MaxPool1d(3, stride=1)),
    (lambda: nn.AvgPool1d(2), lambda t: t.nn.AvgPool1d(2)),
    (lambda: nn.AvgPool1d(3, stride=2), lambda t: t.nn.AvgPool1d(3, stride=2)),
    (lambda: nn.GlobalAvgPool1d(keepdims=True), lambda t: t.nn.AdaptiveAvgPool1d(1)),
], ids=["max", "max-overlap", "avg", "avg-stride", "global-avg"])
def test_pools_match_torch_in_float32(make, make_torch, rng):
    torch = pytest.importorskip("torch")
    x = distinct(rng, (4, 3, 11)).astype(np.float32)  # no ties: both pick the same maximum
    xt = torch.tensor(x, requires_grad=True)
    yt = make_torch(torch)(xt)
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(dy))
    pool = make()
    y = pool.forward(x)
    dx = pool.backward(dy)
    assert y.dtype == dx.dtype == np.float32
    # sums of at most L = 11 terms: a few u of rounding, far inside 1e-5 (see above)
    assert_close32(y, yt.detach().numpy())
    assert_close32(dx, xt.grad.numpy())


def test_global_avg_pool_drops_the_length_axis_for_a_dense_head():
    model = nn.Sequential(nn.Conv1d(1, 8, 3, padding=1), nn.ReLU(), nn.GlobalAvgPool1d(), nn.Dense(8, 3), seed=0)
    assert model.forward(np.zeros((5, 1, 20), np.float32)).shape == (5, 3)


# ----------------------------------------------------------------------------- shapes, dtypes
@pytest.mark.parametrize("make,shape,out", [
    (lambda d: nn.Conv1d(1, 25, 5, stride=2, padding=1, dtype=d, seed=0), (4, 1, 40), (4, 25, 19)),
    (lambda d: nn.Conv1d(25, 25, 3, stride=2, padding=1, dtype=d, seed=0), (4, 25, 19), (4, 25, 10)),
    (lambda d: nn.Conv1d(25, 25, 3, stride=2, padding=1, dtype=d, seed=0), (4, 25, 10), (4, 25, 5)),
    (lambda d: nn.Conv1d(2, 3, 3, dilation=4, bias=False, dtype=d, seed=0), (2, 2, 9), (2, 3, 1)),
    (lambda d: nn.MaxPool1d(2), (2, 3, 9), (2, 3, 4)),
    (lambda d: nn.AvgPool1d(3, stride=2), (2, 3, 8), (2, 3, 3)),
    (lambda d: nn.GlobalAvgPool1d(), (2, 3, 8), (2, 3)),
])
@pytest.mark.parametrize("dtype", [np.float32, F64])
def test_shape_and_dtype(make, shape, out, dtype, rng):
    layer = make(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    x0 = x.copy()
    y = layer.forward(x)
    assert y.shape == out and y.dtype == dtype
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == shape and dx.dtype == dtype
    np.testing.assert_array_equal(x, x0)  # the caller's array is never written
    assert all(p.grad.dtype == dtype for p in layer.parameters())


def test_the_papers_cnn_has_125_features():
    model = nn.Sequential(nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
                          nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), seed=0)
    assert model.forward(np.zeros((3, 1, 40), np.float32)).shape == (3, 125)


def test_a_first_conv_layer_in_fit_skips_its_input_gradient_with_the_same_weight_gradients(rng):
    def build():
        return nn.Sequential(nn.Conv1d(1, 4, 5, stride=2, padding=1, dtype=F64), nn.ReLU(), nn.Flatten(),
                             nn.Dense(4 * 9, 3, dtype=F64), seed=2)

    x = rng.standard_normal((5, 1, 20))
    a, b = build(), build()
    dy = rng.standard_normal((5, 3))
    a.forward(x)
    assert a.backward(dy).shape == x.shape
    b.forward(x)
    assert b._backward(dy, False) is None
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)


def test_a_cnn_trains_with_fit(rng):
    x = rng.standard_normal((60, 1, 16)).astype(np.float32)
    y = (x[:, 0, :8].sum(axis=1) > x[:, 0, 8:].sum(axis=1)).astype(np.int64)
    model = nn.Sequential(nn.Conv1d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Dense(32, 2), seed=0)
    hist = model.fit(x, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(1e-2), epochs=30, batch_size=20,
                     verbose=False)
    assert hist["loss"][-1] < hist["loss"][0]


# ------------------------------------------------------------------------------ model files
@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Conv1d(2, 3, 3, seed=0), (2, 2, 7)),
    (lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1, dilation=2, bias=False, l2=0.1, init="torch",
                       dtype=F64, seed=0), (2, 2, 9)),
    (lambda: nn.MaxPool1d(3, stride=1), (2, 2, 7)),
    (lambda: nn.AvgPool1d(2), (2, 2, 7)),
    (lambda: nn.GlobalAvgPool1d(keepdims=True), (2, 2, 7)),
    (lambda: nn.Sequential(nn.Conv1d(1, 4, 5, stride=2, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(),
                           nn.Dense(16, 3), seed=1), (2, 1, 19)),
], ids=["conv", "conv-options", "maxpool", "avgpool", "global-avg", "cnn"])
def test_model_files_round_trip(make, shape, tmp_path, rng):
    layer = make()
    x = rng.standard_normal(shape)
    layer.save(tmp_path / "m.npz")
    twin = nn.load(tmp_path / "m.npz")
    assert type(twin) is type(layer) and repr(twin) == repr(layer) and twin.config() == layer.config()
    for p, q in zip(layer.parameters(), twin.parameters()):
        assert p.name == q.name and p.value.dtype == q.value.dtype and np.array_equal(p.value, q.value)
    np.testing.assert_array_equal(twin.forward(x), layer.forward(x))


def test_seeded_init_is_reproducible_and_bias_off_keeps_the_weights(seed):
    for init in ("he", "glorot", "lecun", "torch"):
        a, b = nn.Conv1d(2, 3, 3, init=init, seed=seed), nn.Conv1d(2, 3, 3, init=init, seed=seed)
        np.testing.assert_array_equal(a.weight.value, b.weight.value)
        np.testing.assert_array_equal(nn.Conv1d(2, 3, 3, init=init, bias=False, seed=seed).weight.value, a.weight.value)
        assert not np.array_equal(nn.Conv1d(2, 3, 3, init=init, seed=seed + 1).weight.value, a.weight.value)


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("make,exc,message", [
    (lambda: nn.Conv1d(0, 3, 3), ValueError, r"Conv1d: `in_channels` must be a positive integer; got in_channels=0"),
    (lambda: nn.Conv1d(2, 3, 0), ValueError, r"Conv1d: `kernel_size` must be a positive integer; got kernel_size=0"),
    (lambda: nn.Conv1d(2, 3, (3, 3)), TypeError, r"Conv1d: `kernel_size` must be a positive integer; got kernel_size=\(3, 3\)"),
    (lambda: nn.Conv1d(2, 3, True), TypeError, r"Conv1d: `kernel_size` must be a positive integer; got kernel_size=True"),
    (lambda: nn.Conv1d(2, 3, 3, stride=0), ValueError, r"Conv1d: `stride` must be a positive integer; got stride=0"),
    (lambda: nn.Conv1d(2, 3, 3, padding=-1), ValueError, r"Conv1d: `padding` must be a non-negative integer; got padding=-1"),
    (lambda: nn.Conv1d(2, 3, 3, padding="same"), TypeError, r"Conv1d: `padding` must be a non-negative integer; got padding='same'"),
    (lambda: nn.Conv1d(2, 3, 3, dilation=0), ValueError, r"Conv1d: `dilation` must be a positive integer; got dilation=0"),
    (lambda: nn.Conv1d(2, 3, 3, bias=1), TypeError, r"Conv1d: `bias` must be True or False; got bias=1"),
    (lambda: nn.Conv1d(2, 3, 3, l2=-1.0), ValueError, r"Conv1d: `l2` must be a finite number >= 0; got l2=-1.0"),
    (lambda: nn.Conv1d(2, 3, 3, init="kaiming"), ValueError, r"Conv1d: `init` must be one of 'he', 'glorot'"),
    (lambda: nn.Conv1d(2, 3, 3, dtype=np.int32), TypeError, r"Conv1d: `dtype` must be float32 or float64"),
    (lambda: nn.MaxPool1d(0), ValueError, r"MaxPool1d: `kernel_size` must be a positive integer; got kernel_size=0"),
    (lambda: nn.AvgPool1d(2, stride=0), ValueError, r"AvgPool1d: `stride` must be a positive integer; got stride=0"),
    (lambda: nn.AvgPool1d([2, 2]), TypeError, r"AvgPool1d: `kernel_size` must be a positive integer; got kernel_size=\[2, 2\]"),
    (lambda: nn.GlobalAvgPool1d(keepdims="yes"), TypeError, r"GlobalAvgPool1d: `keepdims` must be True or False; got keepdims='yes'"),
])
def test_constructor_errors(make, exc, message):
    with pytest.raises(exc, match=message):
        make()


def test_a_one_tuple_is_an_int_as_in_pytorch():
    conv = nn.Conv1d(2, 3, (3,), stride=[2], padding=(1,), dilation=(1,))
    assert conv.config()["kernel_size"] == 3 and conv.config()["stride"] == 2


@pytest.mark.parametrize("make,shape,message", [
    (lambda: nn.Conv1d(2, 3, 3, seed=0), (2, 2, 4, 4), r"Conv1d: input must have shape \(N, 2, L\); got shape \(2, 2, 4, 4\)"),
    (lambda: nn.Conv1d(2, 3, 3, seed=0), (2, 3, 8), r"Conv1d: input must have shape \(N, 2, L\); got shape \(2, 3, 8\)"),
    (lambda: nn.Conv1d(2, 3, 5, padding=1, seed=0), (2, 2, 2),
     r"Conv1d: input must be at least the kernel size 5 in L \(after any padding\); got shape \(2, 2, 2\)"),
    (lambda: nn.Conv1d(2, 3, 3, dilation=3, seed=0), (2, 2, 6),
     r"Conv1d: input must be at least the dilated kernel size 7 in L \(after any padding\); got shape \(2, 2, 6\)"),
    (lambda: nn.MaxPool1d(2), (2, 3), r"MaxPool1d: input must have shape \(N, C, L\); got shape \(2, 3\)"),
    (lambda: nn.AvgPool1d(4), (2, 3, 3), r"AvgPool1d: input must be at least the kernel size 4 in L"),
    (lambda: nn.GlobalAvgPool1d(), (2, 3, 0), r"GlobalAvgPool1d: input must have shape \(N, C, L\) with L >= 1; "
                                              r"got shape \(2, 3, 0\)"),
    (lambda: nn.GlobalAvgPool1d(), (2, 3), r"GlobalAvgPool1d: input must have shape \(N, C, L\)"),
])
def test_input_errors(make, shape, message):
    with pytest.raises(ValueError, match=message):
        make().forward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("make", [lambda: nn.Conv1d(2, 3, 3), lambda: nn.MaxPool1d(2), lambda: nn.AvgPool1d(2),
                                  nn.GlobalAvgPool1d])
def test_backward_before_forward(make):
    layer = make()
    with pytest.raises(RuntimeError, match=rf"{type(layer).__name__}: backward\(\) was called before forward\(\)"):
        layer.backward(np.zeros((1, 2, 3), np.float32))
