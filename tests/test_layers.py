"""Layers the dropout variants need: Conv2d, MaxPool2d, AvgPool2d, BatchNorm1d/2d, Residual,
RNN, GRU. Float64 gradient checks, exact references (naive loops, PyTorch where installed),
shapes/dtypes, train/eval, seeding, a toy sequence task, and every error path."""

import numpy as np
import pytest

from droplab import nn
from droplab.nn.gradcheck import check_gradients

F64 = np.float64


def distinct(rng, shape):
    """Values in [-0.5, 0.5) at least 1/size apart, so no max-pool tie or near tie
    (closer than the finite-difference step) can occur."""
    n = int(np.prod(shape))
    return rng.permutation(n).reshape(shape) / n - 0.5


def randomize(module, rng):
    """Non-zero biases / non-unit gammas, so their gradients are exercised away from defaults."""
    for p in module.parameters():
        if p.value.ndim == 1:
            p.value[:] = rng.uniform(0.5, 1.5, p.value.shape) * rng.choice([-1, 1], p.value.shape)
    return module


def naive_conv(x, w, b, stride, padding):
    """Direct definition: y[n, o, h, w] = b[o] + sum_{c,i,j} W[o,c,i,j] x_pad[n, c, s*h+i, s*w+j]."""
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    o, _, kh, kw = w.shape
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    y = np.zeros((x.shape[0], o, ho, wo))
    for a in range(ho):
        for c in range(wo):
            patch = xp[:, :, a * sh:a * sh + kh, c * sw:c * sw + kw]
            y[:, :, a, c] = np.einsum("nchw,ochw->no", patch, w) + b
    return y


# ----------------------------------------------------------------------------- gradients
CONV_CASES = {
    "conv-3x3": (lambda: nn.Conv2d(3, 4, 3, dtype=F64, seed=0), (2, 3, 5, 6)),
    "conv-stride-pad": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1, dtype=F64, seed=0), (2, 2, 7, 6)),
    "conv-rect-l2": (lambda: nn.Conv2d(2, 3, (3, 2), stride=(1, 2), padding=(2, 0), l2=0.05, dtype=F64, seed=0),
                     (2, 2, 5, 7)),
    "conv-1x1-torchinit": (lambda: nn.Conv2d(3, 2, 1, init="torch", dtype=F64, seed=0), (3, 3, 2, 2)),
    "maxpool": (lambda: nn.MaxPool2d(2), (2, 3, 4, 6)),
    "maxpool-overlap": (lambda: nn.MaxPool2d(3, stride=1), (2, 2, 5, 5)),
    "maxpool-rect-ragged": (lambda: nn.MaxPool2d((2, 3), stride=(2, 2)), (2, 2, 5, 7)),
    "avgpool": (lambda: nn.AvgPool2d(2), (2, 3, 4, 6)),
    "avgpool-overlap": (lambda: nn.AvgPool2d((2, 3), stride=1), (2, 2, 4, 5)),
    "bn1d": (lambda: nn.BatchNorm1d(3, dtype=F64), (6, 3)),
    "bn2d": (lambda: nn.BatchNorm2d(3, dtype=F64), (3, 3, 2, 3)),
    "bn1d-eval": (lambda: nn.BatchNorm1d(3, dtype=F64).eval(), (6, 3)),
    "bn2d-eval": (lambda: nn.BatchNorm2d(3, dtype=F64).eval(), (3, 3, 2, 3)),
    "residual-dense": (lambda: nn.Residual(nn.Sequential(nn.Dense(4, 4, dtype=F64), nn.Tanh(),
                                                         nn.Dense(4, 4, l2=0.01, dtype=F64), seed=0)), (5, 4)),
    "residual-conv-bn": (lambda: nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, dtype=F64),
                                                           nn.BatchNorm2d(2, dtype=F64), nn.Tanh(), seed=0)),
                         (2, 2, 4, 4)),
    "rnn-last": (lambda: nn.RNN(3, 4, dtype=F64, seed=0), (2, 5, 3)),
    "rnn-seq": (lambda: nn.RNN(3, 4, return_sequences=True, dtype=F64, seed=0), (2, 5, 3)),
    "gru-last": (lambda: nn.GRU(3, 4, dtype=F64, seed=0), (2, 5, 3)),
    "gru-seq": (lambda: nn.GRU(2, 3, return_sequences=True, dtype=F64, seed=0), (3, 4, 2)),
}


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_layer_gradients(name, rng):
    make, shape = CONV_CASES[name]
    module = randomize(make(), rng)
    x = distinct(rng, shape) * 4  # spread out, still far from ties
    report = check_gradients(module, x)
    assert report.ok, str(report)


def test_cnn_gradients_with_dropout_masks_frozen(rng):
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, dtype=F64), nn.BatchNorm2d(3, dtype=F64), nn.Tanh(),
                          nn.Dropout(0.3), nn.MaxPool2d(2), nn.Flatten(), nn.Dense(12, 2, dtype=F64), seed=5)
    report = check_gradients(model, distinct(rng, (3, 1, 4, 4)))
    assert report.ok, str(report)


# ---------------------------------------------------------------- exact references
@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((1, 3), (2, 0)), ((3, 2), (0, 1))])
def test_conv_matches_naive_definition(stride, padding, rng):
    conv = randomize(nn.Conv2d(3, 5, (3, 2), stride=stride, padding=padding, dtype=F64, seed=1), rng)
    x = rng.standard_normal((2, 3, 8, 7))
    np.testing.assert_allclose(conv.forward(x), naive_conv(x, conv.weight.value, conv.bias.value, stride, padding),
                               rtol=1e-12, atol=1e-12)


def test_conv_float32_matches_float64(rng):
    w = rng.standard_normal((4, 3, 3, 3))
    x = rng.standard_normal((2, 3, 6, 6))
    c32, c64 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1, dtype=F64)
    c32.weight.value[:], c64.weight.value[:] = w, w
    y32 = c32.forward(x.astype(np.float32))
    assert y32.dtype == np.float32 and y32.flags.c_contiguous
    np.testing.assert_allclose(y32, c64.forward(x), rtol=1e-4, atol=1e-5)


def test_maxpool_routes_to_first_maximum_on_ties():
    x = np.zeros((1, 1, 2, 4))
    x[0, 0, 1, 3] = 5.0  # right window: a unique maximum; left window: four equal zeros
    pool = nn.MaxPool2d(2)
    np.testing.assert_array_equal(pool.forward(x), [[[[0.0, 5.0]]]])
    dx = pool.backward(np.array([[[[1.0, 2.0]]]]))
    np.testing.assert_array_equal(dx, [[[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]]]])


def test_pools_by_definition(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 2), axis=(2, 3))[:, :, ::2, ::1]
    np.testing.assert_array_equal(nn.MaxPool2d((3, 2), stride=(2, 1)).forward(x), win.max(axis=(-2, -1)))
    np.testing.assert_allclose(nn.AvgPool2d((3, 2), stride=(2, 1)).forward(x), win.mean(axis=(-2, -1)), rtol=1e-14)


def test_layers_match_torch(rng):
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    x = rng.standard_normal((2, 3, 7, 6))
    conv = randomize(nn.Conv2d(3, 4, 3, stride=2, padding=1, dtype=F64, seed=0), rng)
    xt = torch.tensor(x, requires_grad=True)
    wt, bt = torch.tensor(conv.weight.value, requires_grad=True), torch.tensor(conv.bias.value, requires_grad=True)
    yt = f.conv2d(xt, wt, bt, stride=2, padding=1)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(conv.forward(x), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad, wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.bias.grad, bt.grad.numpy(), rtol=1e-12, atol=1e-12)

    bn, tbn = nn.BatchNorm2d(3, momentum=0.3, dtype=F64), torch.nn.BatchNorm2d(3, momentum=0.3).double()
    for _ in range(3):
        x = rng.standard_normal((4, 3, 3, 2)) * 2 + 1
        xt = torch.tensor(x, requires_grad=True)
        yt = tbn(xt)
        dy = rng.standard_normal(x.shape)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(bn.forward(x), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bn.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), rtol=1e-12)
    assert bn.num_batches_tracked == int(tbn.num_batches_tracked) == 3
    x = rng.standard_normal((2, 3, 3, 2))
    np.testing.assert_allclose(bn.eval().forward(x), tbn.eval()(torch.tensor(x)).detach().numpy(), rtol=1e-10)

    gru = randomize(nn.GRU(3, 4, return_sequences=True, dtype=F64, seed=0), rng)
    tg = torch.nn.GRU(3, 4, batch_first=True).double()
    with torch.no_grad():
        tg.weight_ih_l0[:] = torch.tensor(gru.weight_ih.value.T)
        tg.weight_hh_l0[:] = torch.tensor(gru.weight_hh.value.T)
        tg.bias_ih_l0[:] = torch.tensor(gru.bias_ih.value)
        tg.bias_hh_l0[:] = torch.tensor(gru.bias_hh.value)
    x = rng.standard_normal((2, 5, 3))
    np.testing.assert_allclose(gru.forward(x), tg(torch.tensor(x))[0].detach().numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- BatchNorm
@pytest.mark.parametrize("cls,shape,axes", [(nn.BatchNorm1d, (50, 4), (0,)), (nn.BatchNorm2d, (6, 4, 3, 5), (0, 2, 3))])
def test_batchnorm_train_eval_and_running_stats(cls, shape, axes, rng):
    bn = cls(4, momentum=0.25, dtype=F64)
    x = rng.standard_normal(shape) * 3 + 2
    y = bn.forward(x)
    np.testing.assert_allclose(y.mean(axis=axes), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=axes), 1 / (1 + 1e-5 / x.var(axis=axes)), rtol=1e-12)
    n = x.size // 4
    np.testing.assert_allclose(bn.running_mean, 0.25 * x.mean(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.75 + 0.25 * x.var(axis=axes) * n / (n - 1), rtol=1e-12)
    assert bn.num_batches_tracked == 1
    assert len(bn.parameters()) == 2  # running statistics are buffers, not Parameters
    assert set(bn._buffers()) == {"running_mean", "running_var", "num_batches_tracked"}
    bn.eval()
    frozen = bn.running_mean.copy(), bn.running_var.copy()
    x2 = rng.standard_normal(shape)
    c = (1,) + (-1,) + (1,) * (len(shape) - 2)
    expected = (x2 - frozen[0].reshape(c)) / np.sqrt(frozen[1].reshape(c) + 1e-5)
    np.testing.assert_allclose(bn.forward(x2), expected, rtol=1e-12)
    np.testing.assert_allclose(bn.forward(x2[:1]), expected[:1], rtol=1e-12)  # independent of the batch
    np.testing.assert_array_equal(bn.running_mean, frozen[0])
    assert bn.num_batches_tracked == 1


def test_batchnorm_keeps_float32(rng):
    bn = nn.BatchNorm2d(2)
    y = bn.forward(rng.standard_normal((3, 2, 4, 4)))
    assert y.dtype == np.float32 and bn.running_var.dtype == np.float32
    assert bn.backward(np.ones_like(y)).dtype == np.float32


# --------------------------------------------------------------------------- Residual
def test_residual_adds_the_block_and_its_gradient(rng):
    block = nn.Dense(3, 3, dtype=F64, seed=0)
    res = nn.Residual(block)
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(res.forward(x), x + x @ block.weight.value + block.bias.value, rtol=1e-14)
    dy = rng.standard_normal((4, 3))
    np.testing.assert_allclose(res.backward(dy), dy + dy @ block.weight.value.T, rtol=1e-14)
    assert res.children() == [block] and res.parameters() == block.parameters()
    res.eval()
    assert not block.training


# --------------------------------------------------------------------- shapes, dtypes
@pytest.mark.parametrize("make,shape,out", [
    (lambda d: nn.Conv2d(3, 8, 3, padding=1, dtype=d, seed=0), (2, 3, 8, 8), (2, 8, 8, 8)),
    (lambda d: nn.Conv2d(3, 8, 5, stride=2, dtype=d, seed=0), (2, 3, 9, 11), (2, 8, 3, 4)),
    (lambda d: nn.MaxPool2d(2), (2, 3, 9, 8), (2, 3, 4, 4)),
    (lambda d: nn.AvgPool2d(3, stride=2), (2, 3, 7, 8), (2, 3, 3, 3)),
    (lambda d: nn.BatchNorm1d(5, dtype=d), (4, 5), (4, 5)),
    (lambda d: nn.BatchNorm2d(3, dtype=d), (2, 3, 4, 4), (2, 3, 4, 4)),
    (lambda d: nn.Residual(nn.Conv2d(3, 3, 3, padding=1, dtype=d, seed=0)), (2, 3, 5, 5), (2, 3, 5, 5)),
    (lambda d: nn.RNN(4, 6, dtype=d, seed=0), (3, 7, 4), (3, 6)),
    (lambda d: nn.RNN(4, 6, return_sequences=True, dtype=d, seed=0), (3, 7, 4), (3, 7, 6)),
    (lambda d: nn.GRU(4, 6, dtype=d, seed=0), (3, 7, 4), (3, 6)),
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


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Conv2d(2, 3, 3, seed=0), (2, 2, 4, 4)), (lambda: nn.MaxPool2d(2), (2, 2, 4, 4)),
    (lambda: nn.RNN(2, 3, seed=0), (2, 4, 2)), (lambda: nn.GRU(2, 3, seed=0), (2, 4, 2)),
    (lambda: nn.Residual(nn.Tanh()), (2, 3)),
])
def test_eval_changes_nothing_for_layers_without_mode(make, shape, rng):
    layer = make()
    x = rng.standard_normal(shape).astype(np.float32)
    y_train = layer.forward(x)
    np.testing.assert_array_equal(layer.eval().forward(x), y_train)


# ------------------------------------------------------------------------------ seeding
@pytest.mark.parametrize("make", [
    lambda s: nn.Conv2d(2, 3, 3, seed=s), lambda s: nn.Conv2d(2, 3, 3, init="glorot", seed=s),
    lambda s: nn.Conv2d(2, 3, 3, init="lecun", seed=s), lambda s: nn.Conv2d(2, 3, 3, init="torch", seed=s),
    lambda s: nn.RNN(2, 3, seed=s), lambda s: nn.GRU(2, 3, seed=s),
])
def test_seeded_init_is_reproducible(make, seed):
    a, b, c = make(seed), make(seed), make(seed + 1)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.value, pb.value)
    assert not np.array_equal(a.parameters()[0].value, c.parameters()[0].value)


def test_sequential_seed_seeds_every_layer(seed, rng):
    def build():
        return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.MaxPool2d(2),
                             nn.Residual(nn.Conv2d(2, 2, 3, padding=1)), nn.AvgPool2d(2), nn.Flatten(),
                             nn.Dense(2, 4), nn.ReLU(), seed=seed)
    a, b = build(), build()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(pa.value, pb.value)
    convs = [a[0].weight.value, a[3].block.weight.value]
    assert not np.array_equal(convs[0][:2, :1], convs[1][:2, :1])  # each layer its own child seed
    x = rng.standard_normal((2, 1, 4, 4))
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    r1 = nn.Sequential(nn.RNN(2, 3), nn.Dense(3, 2), seed=seed)
    r2 = nn.Sequential(nn.RNN(2, 3), nn.Dense(3, 2), seed=seed)
    np.testing.assert_array_equal(r1[0].weight_hh.value, r2[0].weight_hh.value)


def test_init_scales(seed):
    conv = nn.Conv2d(16, 32, 3, seed=seed)
    # He: std sqrt(2 / fan_in), fan_in = 16*9; 4608 draws, relative sd of the sample std ~ 1/sqrt(2n) ~ 0.0104,
    # so a 5-sigma band is +-5.2% (false-failure probability ~ 6e-7)
    std = conv.weight.value.std()
    assert abs(std / np.sqrt(2 / 144) - 1) < 5 * np.sqrt(1 / (2 * conv.weight.value.size))
    w = nn.RNN(3, 20, seed=seed).weight_hh.value
    np.testing.assert_allclose(w @ w.T, np.eye(20), atol=1e-5)  # orthogonal recurrent weights


def test_save_load_round_trip(tmp_path, rng, seed):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=(1, 2), padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Tanh())),
                          nn.Flatten(), nn.Dense(8, 3), seed=seed)
    for _ in range(2):
        model.forward(rng.standard_normal((4, 1, 4, 8)))
    model.save(tmp_path / "m.npz")
    back = nn.load(tmp_path / "m.npz")
    x = rng.standard_normal((3, 1, 4, 8)).astype(np.float32)
    np.testing.assert_array_equal(back.eval().forward(x), model.eval().forward(x))
    assert back[1].num_batches_tracked == 2
    seq = nn.Sequential(nn.GRU(2, 3, return_sequences=True), nn.RNN(3, 2), seed=seed)
    seq.save(tmp_path / "r.npz")
    xs = rng.standard_normal((2, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(nn.load(tmp_path / "r.npz").forward(xs), seq.forward(xs))


# ---------------------------------------------------------------------------- learning
def test_rnn_learns_sign_of_sum(seed):
    # Sign of the sum of 10 N(0, 1) numbers: needs the whole sequence. Over 20 seeds this
    # scored 0.92-0.975 on 200 held-out sequences; chance is 0.5 (sd 0.035 at n = 200), so
    # 0.8 is 8.5 sd above chance and far below every observed run.
    data = np.random.default_rng(seed)
    X = data.standard_normal((800, 10, 1)).astype(np.float32)
    y = (X.sum(axis=(1, 2)) > 0).astype(np.int64)
    model = nn.Sequential(nn.RNN(1, 16), nn.Dense(16, 2), seed=seed)
    model.fit(X[:600], y[:600], loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01), epochs=15,
              batch_size=50, verbose=False, seed=seed)
    accuracy = float((model.predict(X[600:]).argmax(axis=1) == y[600:]).mean())
    assert accuracy > 0.8


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Conv2d(2, 3, 3, seed=0), (2, 2, 4, 4)), (lambda: nn.MaxPool2d(2), (1, 1, 2, 2)),
    (lambda: nn.AvgPool2d(2), (1, 1, 2, 2)), (lambda: nn.BatchNorm1d(2), (3, 2)),
    (lambda: nn.BatchNorm2d(2), (3, 2, 2, 2)), (lambda: nn.Residual(nn.Tanh()), (2, 2)),
    (lambda: nn.RNN(2, 3, seed=0), (2, 3, 2)), (lambda: nn.GRU(2, 3, seed=0), (2, 3, 2)),
])
def test_backward_before_forward(make, shape):
    layer = make()
    with pytest.raises(RuntimeError, match=rf"{type(layer).__name__}: backward\(\) was called before forward"):
        layer.backward(np.ones(shape))


@pytest.mark.parametrize("make,shape,match", [
    (lambda: nn.Conv2d(2, 3, 3, seed=0), (2, 2, 4), r"Conv2d: input must have shape \(N, 2, H, W\); got shape \(2, 2, 4\)"),
    (lambda: nn.Conv2d(2, 3, 3, seed=0), (2, 3, 4, 4), r"Conv2d: input must have shape \(N, 2, H, W\); got shape \(2, 3, 4, 4\)"),
    (lambda: nn.Conv2d(2, 3, 5, padding=1, seed=0), (2, 2, 2, 8), r"Conv2d: input must be at least the kernel size \(5, 5\) in H and W \(after any padding\); got shape \(2, 2, 2, 8\)"),
    (lambda: nn.MaxPool2d(2), (2, 3, 4), r"MaxPool2d: input must have shape \(N, C, H, W\); got shape \(2, 3, 4\)"),
    (lambda: nn.AvgPool2d(3), (2, 3, 2, 5), r"AvgPool2d: input must be at least the kernel size \(3, 3\) in H and W \(after any padding\); got shape \(2, 3, 2, 5\)"),
    (lambda: nn.BatchNorm1d(3), (4, 3, 2), r"BatchNorm1d: input must have shape \(N, 3\); got shape \(4, 3, 2\)"),
    (lambda: nn.BatchNorm1d(3), (4, 2), r"BatchNorm1d: input must have shape \(N, 3\); got shape \(4, 2\)"),
    (lambda: nn.BatchNorm2d(3), (4, 3), r"BatchNorm2d: input must have shape \(N, 3, H, W\); got shape \(4, 3\)"),
    (lambda: nn.BatchNorm1d(3), (1, 3), r"BatchNorm1d: training needs more than one value per feature"),
    (lambda: nn.BatchNorm2d(3), (1, 3, 1, 1), r"BatchNorm2d: training needs more than one value per feature"),
    (lambda: nn.RNN(2, 3, seed=0), (4, 2), r"RNN: input must have shape \(N, T, 2\) with T >= 1; got shape \(4, 2\)"),
    (lambda: nn.RNN(2, 3, seed=0), (4, 0, 2), r"RNN: input must have shape \(N, T, 2\) with T >= 1; got shape \(4, 0, 2\)"),
    (lambda: nn.GRU(2, 3, seed=0), (4, 5, 3), r"GRU: input must have shape \(N, T, 2\) with T >= 1; got shape \(4, 5, 3\)"),
    (lambda: nn.Residual(nn.Dense(3, 2, seed=0)), (4, 3),
     r"Residual: the block's output must have its input's shape \(4, 3\); got shape \(4, 2\)"),
])
def test_bad_input_shapes(make, shape, match):
    with pytest.raises(ValueError, match=match):
        make().forward(np.zeros(shape, np.float32))


def test_batchnorm_eval_accepts_a_single_row():
    assert nn.BatchNorm1d(3).eval().forward(np.ones((1, 3))).shape == (1, 3)


@pytest.mark.parametrize("make,exc,match", [
    (lambda: nn.Conv2d(0, 3, 3), ValueError, r"Conv2d: `in_channels` must be a positive integer; got in_channels=0"),
    (lambda: nn.Conv2d(2, 3.0, 3), TypeError, r"Conv2d: `out_channels` must be a positive integer; got out_channels=3.0"),
    (lambda: nn.Conv2d(2, 3, 0), ValueError, r"Conv2d: `kernel_size` must be a positive integer or a pair of them; got kernel_size=0"),
    (lambda: nn.Conv2d(2, 3, (3, 3, 3)), TypeError, r"Conv2d: `kernel_size` must be a positive integer or a pair"),
    (lambda: nn.Conv2d(2, 3, True), TypeError, r"Conv2d: `kernel_size` must be .*; got kernel_size=True"),
    (lambda: nn.Conv2d(2, 3, 3, stride=(1, 0)), ValueError, r"Conv2d: `stride` must be a positive integer or a pair"),
    (lambda: nn.Conv2d(2, 3, 3, padding=-1), ValueError, r"Conv2d: `padding` must be a non-negative integer or a pair"),
    (lambda: nn.Conv2d(2, 3, 3, padding="same"), TypeError, r"Conv2d: `padding` must be .*; got padding='same'"),
    (lambda: nn.Conv2d(2, 3, 3, l2=-1.0), ValueError, r"Conv2d: `l2` must be a finite number >= 0; got l2=-1.0"),
    (lambda: nn.Conv2d(2, 3, 3, init="kaiming"), ValueError, r"Conv2d: `init` must be one of 'he', 'glorot'"),
    (lambda: nn.Conv2d(2, 3, 3, dtype=np.int32), TypeError, r"Conv2d: `dtype` must be float32 or float64"),
    (lambda: nn.Conv2d(2, 3, 3, seed=-1), ValueError, r"Conv2d: `seed` must be a non-negative integer"),
    (lambda: nn.MaxPool2d(0), ValueError, r"MaxPool2d: `kernel_size` must be a positive integer or a pair"),
    (lambda: nn.MaxPool2d(2, stride=0), ValueError, r"MaxPool2d: `stride` must be a positive integer or a pair"),
    (lambda: nn.AvgPool2d([2]), TypeError, r"AvgPool2d: `kernel_size` must be a positive integer or a pair"),
    (lambda: nn.BatchNorm1d(0), ValueError, r"BatchNorm1d: `features` must be a positive integer; got features=0"),
    (lambda: nn.BatchNorm2d(-2), ValueError, r"BatchNorm2d: `channels` must be a positive integer; got channels=-2"),
    (lambda: nn.BatchNorm1d(3, momentum=1.5), ValueError, r"BatchNorm1d: `momentum` must be a number in \[0, 1\]; got momentum=1.5"),
    (lambda: nn.BatchNorm1d(3, momentum="0.1"), TypeError, r"BatchNorm1d: `momentum` must be a number in \[0, 1\]"),
    (lambda: nn.BatchNorm2d(3, eps=0.0), ValueError, r"BatchNorm2d: `eps` must be a finite number > 0; got eps=0.0"),
    (lambda: nn.BatchNorm2d(3, dtype="float16"), TypeError, r"BatchNorm2d: `dtype` must be float32 or float64"),
    (lambda: nn.Residual(lambda x: x), TypeError, r"Residual: `block` must be a droplab Module; got block=<function"),
    (lambda: nn.RNN(0, 3), ValueError, r"RNN: `input_size` must be a positive integer; got input_size=0"),
    (lambda: nn.RNN(2, 3, return_sequences=1), TypeError, r"RNN: `return_sequences` must be True or False; got return_sequences=1"),
    (lambda: nn.GRU(2, -1), ValueError, r"GRU: `hidden_size` must be a positive integer; got hidden_size=-1"),
    (lambda: nn.GRU(2, 3, dtype=np.float16), TypeError, r"GRU: `dtype` must be float32 or float64"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
