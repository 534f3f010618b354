"""Attack cases on the NumPy engine (issue 13, S2): no silent wrong result.

* a layer object called twice in one forward (weight sharing, a dropout shared by branches)
  gets the right gradients: checked by float64 central differences with masks frozen;
* integer and bool input is computed in floating point by every layer;
* a 0-row batch gives a 0-row output (and dx) in every layer;
* ``fit`` stops a diverging run with ``DivergenceError`` and keeps the last good checkpoint;
  an optimizer never silently freezes on overflow;
* a non-finite validation loss is recorded (NaN in memory, null in files) and training goes on;
* evaluating and predicting never change what training draws.
"""

from __future__ import annotations

import json
import math
import pickle
import warnings

import numpy as np
import pytest

from droplab import nn
from droplab.errors import DroplabError
from droplab.nn.gradcheck import check_gradients

F64 = np.float64


def _spec(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(z["__spec__"].tobytes())


def _strict_spec(path) -> dict:
    """The file's JSON, refusing NaN/Infinity (what strict JSON readers do)."""
    def bad(name):
        raise ValueError(f"non-strict JSON constant {name}")

    with np.load(path, allow_pickle=False) as z:
        return json.loads(z["__spec__"].tobytes(), parse_constant=bad)


def _problem(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5).astype(np.int64)
    return X, y


# ------------------------------------------------------------------------------ reused layers
def test_shared_dropout_in_a_sequential_gets_each_calls_mask():
    # the case: dx = [0,4,0,4,4,4] before, where [0,4,0,4,0,4] is right
    d = nn.Dropout(0.5, seed=3)
    eye = nn.Dense(6, 6, dtype=F64)
    eye.weight.value[...] = np.eye(6)
    eye.bias.value[...] = 0
    m = nn.Sequential(d, eye, d)
    x = np.ones((1, 6))
    y = m.forward(x)
    dx = m.backward(np.ones((1, 6)))
    # x = 1 and W = I: y = s1 * s2 and dx = dy * s2 * s1, the same numbers
    np.testing.assert_array_equal(dx, y)


def _dense(n_in, n_out, seed, **kw):
    # init="torch": non-zero biases, so no ReLU input sits exactly on the kink at 0
    return nn.Dense(n_in, n_out, dtype=F64, init="torch", seed=seed, **kw)


def _assert_grads(model, x):
    report = check_gradients(model, x)
    assert report.ok, str(report)


def test_shared_dense_with_penalties_passes_the_gradient_check(rng):
    dn = _dense(5, 5, 1, l1=0.01, l2=0.1, bias_l2=0.05)
    model = nn.Sequential(dn, nn.Tanh(), dn, nn.Dropout(0.3, seed=2), dn)
    _assert_grads(model, rng.standard_normal((4, 5)))


def test_shared_dropout_passes_the_gradient_check(rng):
    d = nn.Dropout(0.5, seed=4)
    model = nn.Sequential(_dense(5, 6, 1), nn.Tanh(), d, _dense(6, 6, 2), nn.Tanh(), d, _dense(6, 2, 3))
    _assert_grads(model, rng.standard_normal((4, 5)))


def test_shared_layers_of_fused_blocks_pass_the_gradient_check(rng):
    dd, r, q = _dense(5, 5, 1), nn.ReLU(), nn.Dropout(0.4, seed=5)
    model = nn.Sequential(dd, r, q, dd, r, q, _dense(5, 2, 3))
    assert sum(not isinstance(s, nn.Module) for s in model._steps()) == 2  # both run as fused blocks
    _assert_grads(model, rng.standard_normal((4, 5)))


def test_a_layer_run_alone_then_inside_a_fused_block_passes_the_gradient_check(rng):
    q = nn.Dropout(0.4, seed=5)
    model = nn.Sequential(q, _dense(5, 5, 1), nn.ReLU(), q)
    _assert_grads(model, rng.standard_normal((4, 5)))


def test_a_reused_sequential_passes_the_gradient_check(rng):
    q = nn.Dropout(0.4, seed=5)
    inner = nn.Sequential(_dense(5, 5, 1), nn.ReLU(), q)
    model = nn.Sequential(inner, inner, q, inner)
    _assert_grads(model, rng.standard_normal((4, 5)))


class _TwoBranches(nn.Module):
    """Keras-style: one dropout layer shared by two branches, ``y = a(d(x)) + b(d(x))``."""

    def __init__(self, d, a, b):
        super().__init__()
        self.d, self.a, self.b = d, a, b

    def children(self):
        return [self.d, self.a, self.b]

    def forward(self, x):
        return self.a.forward(self.d.forward(x)) + self.b.forward(self.d.forward(x))

    def backward(self, dy):
        # reverse order of the calls: branch b's dropout call was the later one
        return self.d.backward(self.b.backward(dy)) + self.d.backward(self.a.backward(dy))


def test_a_dropout_shared_by_two_branches_passes_the_gradient_check(rng):
    model = _TwoBranches(nn.Dropout(0.5, seed=8), _dense(5, 3, 1), _dense(5, 3, 2))
    _assert_grads(model, rng.standard_normal((4, 5)))


_N = 3  # rows of the reuse checks


class _Neg(nn.Module):
    """``-x``: between two calls, so that sign-gated layers (ReLU, LeakyReLU) see other signs."""

    def forward(self, x):
        return -x

    def backward(self, dy):
        return -dy


def _reusable():
    """(name, factory, input shape): layers whose output can be fed back into them."""
    return [
        ("Dense", lambda: _dense(4, 4, 1, l2=0.1), (4,)),
        ("Conv2d", lambda: nn.Conv2d(2, 2, 3, padding=1, l2=0.1, dtype=F64, init="torch", seed=1), (2, 4, 4)),
        ("RNN", lambda: nn.RNN(4, 4, return_sequences=True, dtype=F64, seed=1), (3, 4)),
        ("GRU", lambda: nn.GRU(4, 4, return_sequences=True, dtype=F64, seed=1), (3, 4)),
        ("GRU_bidirectional", lambda: nn.GRU(4, 2, return_sequences=True, bidirectional=True, dtype=F64, seed=1),
         (3, 4)),
        ("RNN_bidirectional", lambda: nn.RNN(4, 2, return_sequences=True, bidirectional=True, dtype=F64, seed=1),
         (3, 4)),
        ("Conv1d", lambda: nn.Conv1d(2, 2, 3, padding=2, dilation=2, l2=0.1, dtype=F64, init="torch", seed=1),
         (2, 5)),
        ("MaxPool1d", lambda: nn.MaxPool1d(2, stride=1), (2, 6)),
        ("AvgPool1d", lambda: nn.AvgPool1d(3, stride=1), (2, 7)),
        ("GlobalAvgPool1d", lambda: nn.GlobalAvgPool1d(keepdims=True), (3, 1)),
        ("BatchNorm1d", lambda: nn.BatchNorm1d(4, dtype=F64), (4,)),
        ("BatchNorm2d", lambda: nn.BatchNorm2d(2, dtype=F64), (2, 3, 3)),
        ("MaxPool2d", lambda: nn.MaxPool2d(2, stride=1), (2, 5, 5)),
        ("AvgPool2d", lambda: nn.AvgPool2d(2, stride=1), (2, 5, 5)),
        ("ReLU", nn.ReLU, (4,)),
        ("LeakyReLU", lambda: nn.LeakyReLU(0.2), (4,)),
        ("Tanh", nn.Tanh, (4,)),
        ("Sigmoid", nn.Sigmoid, (4,)),
        ("SELU", nn.SELU, (4,)),
        ("Softmax", nn.Softmax, (4,)),
        ("Residual", lambda: nn.Residual(nn.Sequential(_dense(4, 4, 1), nn.Tanh())), (4,)),
        ("Dropout", lambda: nn.Dropout(0.5, seed=1), (4,)),
        ("GaussianDropout", lambda: nn.GaussianDropout(0.3, seed=1), (4,)),
        ("AlphaDropout", lambda: nn.AlphaDropout(0.3, seed=1), (4,)),
        ("Dropout1d", lambda: nn.Dropout1d(0.5, seed=1), (4, 3)),
        ("Dropout2d", lambda: nn.Dropout2d(0.5, seed=1), (2, 3, 3)),
        ("DropPath", lambda: nn.DropPath(0.5, seed=1), (4,)),
        ("LockedDropout", lambda: nn.LockedDropout(0.5, seed=1), (3, 4)),
        ("DropBlock2d", lambda: nn.DropBlock2d(0.3, block_size=2, seed=1), (2, 4, 4)),
        ("DropConnect", lambda: nn.DropConnect(4, 4, p=0.4, activation=nn.Tanh(), dtype=F64, seed=1), (4,)),
        ("ConcreteDropout", lambda: nn.ConcreteDropout(_dense(4, 4, 1), weight_regularizer=0.0,
                                                       dropout_regularizer=0.0, seed=1), (4,)),
    ]


@pytest.mark.parametrize("name,make,shape", _reusable(), ids=[c[0] for c in _reusable()])
def test_every_layer_type_called_twice_passes_the_gradient_check(name, make, shape, rng):
    layer = make()
    # between the calls the input changes and its signs flip (ReLU: a mixing Dense, since after
    # tanh and a sign flip a ReLU would output zeros only)
    between = [_dense(4, 4, 9)] if name == "ReLU" else [nn.Tanh(), _Neg()]
    model = nn.Sequential(layer, *between, layer)
    _assert_grads(model, rng.standard_normal((_N,) + shape))


def test_a_shared_layer_is_one_set_of_parameters_and_one_penalty():
    dn = _dense(3, 3, 1, l2=0.5)
    model = nn.Sequential(dn, nn.Tanh(), dn)
    assert len(model.parameters()) == 2
    assert [type(m).__name__ for m in model.modules()] == ["Sequential", "Dense", "Tanh"]
    assert model.regularization_loss() == pytest.approx(dn._penalty())


def test_a_shared_layer_is_stepped_once_per_update(rng):
    dn = _dense(3, 3, 1)
    model = nn.Sequential(dn, nn.Tanh(), dn)
    x = rng.standard_normal((4, 3))
    model.zero_grad()
    model.backward(np.ones_like(model.forward(x)))
    before = dn.weight.value.copy()
    grad = dn.weight.grad.copy()
    nn.SGD(0.1).step(model.parameters())
    np.testing.assert_allclose(dn.weight.value, before - 0.1 * grad, rtol=1e-15)


def test_top_level_calls_are_separate_passes():
    # two top-level forwards are two passes: the layer keeps one state (the last call's),
    # and the tape never grows across passes (MC sampling calls forward without backward)
    d = nn.Dropout(0.5, seed=1)
    x = np.ones((2, 8), np.float32)
    for _ in range(50):
        d.forward(x)
    assert not d._tape_calls
    y = d.forward(x)
    np.testing.assert_array_equal(d.backward(np.ones_like(x)), y)


# ---------------------------------------------------------------------- integer and bool input
def _value_layers():
    """(name, factory, input shape) of every layer that computes on values, deterministic ones."""
    return [
        ("ReLU", nn.ReLU, (3,)),
        ("LeakyReLU", lambda: nn.LeakyReLU(0.1), (3,)),
        ("Tanh", nn.Tanh, (3,)),
        ("Sigmoid", nn.Sigmoid, (3,)),
        ("SELU", nn.SELU, (3,)),
        ("Softmax", nn.Softmax, (3,)),
        ("Flatten", nn.Flatten, (3, 2)),
        ("MaxPool2d", lambda: nn.MaxPool2d(2), (1, 4, 4)),
        ("AvgPool2d", lambda: nn.AvgPool2d(2), (1, 4, 4)),
        ("MaxPool1d", lambda: nn.MaxPool1d(2), (2, 5)),
        ("AvgPool1d", lambda: nn.AvgPool1d(2, stride=1), (2, 5)),
        ("GlobalAvgPool1d", nn.GlobalAvgPool1d, (2, 5)),
        ("Residual", lambda: nn.Residual(nn.Sequential(nn.Dense(3, 3, seed=0), nn.ReLU())), (3,)),
        ("Dense", lambda: nn.Dense(3, 2, seed=0), (3,)),
        ("Conv2d", lambda: nn.Conv2d(1, 2, 2, seed=0), (1, 3, 3)),
        ("Conv1d", lambda: nn.Conv1d(1, 2, 3, stride=2, padding=1, seed=0), (1, 6)),
        ("BatchNorm1d", lambda: nn.BatchNorm1d(3), (3,)),
        ("RNN", lambda: nn.RNN(3, 2, seed=0), (4, 3)),
        ("GRU", lambda: nn.GRU(3, 2, seed=0), (4, 3)),
        ("GRU_bidirectional", lambda: nn.GRU(3, 2, bidirectional=True, seed=0), (4, 3)),
        ("Sequential", lambda: nn.Sequential(nn.Dense(3, 4), nn.Sigmoid(), nn.Dense(4, 2), seed=0), (3,)),
    ]


@pytest.mark.parametrize("kind", ["int64", "int8", "uint16", "bool"])
@pytest.mark.parametrize("name,make,shape", _value_layers(), ids=[c[0] for c in _value_layers()])
def test_integer_and_bool_input_is_computed_in_float32(name, make, shape, kind):
    x = (np.arange(2 * math.prod(shape)).reshape((2,) + shape) % 5 - 2)
    x = (x > 0) if kind == "bool" else np.abs(x).astype(kind) if kind.startswith("u") else x.astype(kind)
    y = make().forward(x)
    expected = make().forward(x.astype(np.float32))
    assert y.dtype == np.float32, f"{name}: {y.dtype}"
    np.testing.assert_array_equal(y, expected)


def test_sigmoid_and_selu_on_integers_are_not_truncated():
    x = np.array([[-2, -1, 0, 1, 2]])
    np.testing.assert_allclose(nn.Sigmoid().forward(x), 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6)
    assert nn.SELU().forward(x)[0, 0] == pytest.approx(nn.SELU().forward(np.float32([[-2.0]]))[0, 0])
    assert nn.SELU().forward(x)[0, 0] < -1.5


def test_non_numeric_input_to_an_activation_is_a_type_error():
    with pytest.raises(TypeError, match=r"Sigmoid: `x` must be a real-valued array \(floating, integer or bool\); "
                                        r"got x='array of dtype <U1'"):
        nn.Sigmoid().forward(np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"Flatten: `x` must be an array \(N, \*\) with a batch axis"):
        nn.Flatten().forward(np.float32(3.0))


# ------------------------------------------------------------------------------- 0-row batches
def _all_layers():
    return _value_layers() + [
        ("RNN_sequences", lambda: nn.RNN(3, 2, return_sequences=True, seed=0), (4, 3)),
        ("GRU_sequences", lambda: nn.GRU(3, 2, return_sequences=True, seed=0), (4, 3)),
        ("GRU_bidirectional_sequences", lambda: nn.GRU(3, 2, return_sequences=True, bidirectional=True, seed=0),
         (4, 3)),
        ("RNN_bidirectional", lambda: nn.RNN(3, 2, bidirectional=True, seed=0), (4, 3)),
        ("Conv1d_no_bias_dilated", lambda: nn.Conv1d(2, 3, 2, dilation=2, bias=False, seed=0), (2, 5)),
        ("BatchNorm2d", lambda: nn.BatchNorm2d(1), (1, 3, 3)),
        ("Dropout", lambda: nn.Dropout(0.5, seed=0), (3,)),
        ("Dropout1d", lambda: nn.Dropout1d(0.5, seed=0), (2, 3)),
        ("Dropout2d", lambda: nn.Dropout2d(0.5, seed=0), (2, 3, 3)),
        ("Dropout3d", lambda: nn.Dropout3d(0.5, seed=0), (2, 2, 3, 3)),
        ("DropPath", lambda: nn.DropPath(0.5, seed=0), (3,)),
        ("LockedDropout", lambda: nn.LockedDropout(0.5, seed=0), (4, 3)),
        ("GaussianDropout", lambda: nn.GaussianDropout(0.5, seed=0), (3,)),
        ("AlphaDropout", lambda: nn.AlphaDropout(0.5, seed=0), (3,)),
        ("DropBlock2d", lambda: nn.DropBlock2d(0.5, block_size=2, seed=0), (1, 4, 4)),
        ("DropConnect", lambda: nn.DropConnect(3, 2, seed=0), (3,)),
        ("ConcreteDropout", lambda: nn.ConcreteDropout(nn.Dense(3, 2, seed=0), seed=0), (3,)),
        ("Sequential_fused", lambda: nn.Sequential(nn.Dense(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Dense(4, 2),
                                                   seed=0), (3,)),
        ("Conv_net", lambda: nn.Sequential(nn.Conv2d(1, 2, 2, padding=1), nn.MaxPool2d(2), nn.Flatten(),
                                           nn.Dense(8, 2), seed=0), (1, 3, 3)),
        ("Conv1d_net", lambda: nn.Sequential(nn.Conv1d(1, 3, 5, stride=2, padding=1), nn.ReLU(), nn.Conv1d(3, 3, 3),
                                             nn.Flatten(), nn.Dense(9, 2), seed=0), (1, 12)),
    ]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,make,shape", _all_layers(), ids=[c[0] for c in _all_layers()])
def test_a_0_row_batch_gives_a_0_row_output_and_gradient(name, make, shape, training):
    layer = make().train(training)
    if training and name.startswith("BatchNorm"):
        with pytest.raises(ValueError, match=rf"{name}: training needs more than one value per feature"):
            layer.forward(np.zeros((0,) + shape, np.float32))
        return
    full = make().train(training).forward(np.ones((2,) + shape, np.float32))
    y = layer.forward(np.zeros((0,) + shape, np.float32))
    assert y.shape == (0,) + full.shape[1:] and y.dtype == full.dtype
    layer.zero_grad()
    if name == "ConcreteDropout":  # its regulariser's gradient does not depend on the batch
        return
    if not training and name == "DropConnect":
        layer = nn.DropConnect(3, 2, seed=0).eval()
        y = layer.forward(np.zeros((0,) + shape, np.float32))
    dx = layer.backward(np.zeros_like(y))
    assert dx.shape == (0,) + shape
    for p in layer.parameters():
        assert not p.grad.any(), f"{name}: {p.name}"


# ---------------------------------------------------------------------------------- divergence
def _mlp(seed=0):
    return nn.Sequential(nn.Dense(2, 32), nn.ReLU(), nn.Dropout(0.2), nn.Dense(32, 3), seed=seed)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("batch_size", [None, 50])
def test_sgd_with_a_huge_learning_rate_stops_with_divergence_error(batch_size):
    X, y = _problem()
    # mini-batches reach NaN within an epoch (caught at the batch); full batch explodes by epochs
    with pytest.raises(nn.DivergenceError, match=r"^fit: the training loss (became nan at epoch \d+, batch \d+|"
                                                 r"diverged at epoch \d+: \S+ is more than divergence=1000 times "
                                                 r"max\(first batch loss \S+, 1\)); lower the learning rate or "
                                                 r"check the data\.$") as info:
        _mlp().fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(1e6), epochs=10, batch_size=batch_size,
                   verbose=False)
    err = info.value
    assert isinstance(err, FloatingPointError) and isinstance(err, DroplabError)
    assert "\n" not in str(err)
    assert isinstance(err.epoch, int) and 1 <= err.epoch <= 10
    assert not err.loss <= 1000  # above the threshold, or NaN


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    X, y = _problem()
    ck = tmp_path / "ck.npz"
    with pytest.raises(nn.DivergenceError) as info:
        _mlp().fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(1e6), epochs=10, verbose=False,
                   checkpoint=ck)
    assert info.value.epoch >= 2
    state = _strict_spec(ck)["extra"]["fit"]
    assert state["epoch"] == info.value.epoch - 1
    assert all(v <= 1000 * max(state["reference_loss"], 1) for v in state["history"]["loss"])


def test_divergence_factor_is_configurable_and_checked():
    X, y = _problem()

    class Scale:  # multiplies the last layer's weights after epoch 1: the loss jumps up
        def on_epoch_end(self, epoch, logs, model):
            if epoch == 0:
                model.layers[-1].weight.value[...] *= 40

    def run(divergence):
        return _mlp().fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(1e-9), epochs=2,
                          verbose=False, callbacks=[Scale()], divergence=divergence)

    h = run(None)  # only non-finite losses count
    assert h["loss"][1] > 1.5 * max(h["loss"][0], 1)
    with pytest.raises(nn.DivergenceError, match=r"at epoch 2: .* divergence=1.5 times") as info:
        run(1.5)
    assert info.value.epoch == 2 and info.value.loss == pytest.approx(h["loss"][1], rel=1e-6)
    with pytest.raises(ValueError, match=r"fit: `divergence` must be a finite number > 1 or None; got divergence=1"):
        run(1)
    with pytest.raises(TypeError, match=r"fit: `divergence` must be a real number"):
        run("big")


def test_divergence_error_pickles_with_its_attributes():
    err = pickle.loads(pickle.dumps(nn.DivergenceError("fit: diverged", 3, 2.5)))
    assert (str(err), err.epoch, err.loss) == ("fit: diverged", 3, 2.5)


def test_a_non_finite_batch_loss_is_a_divergence_error():
    X, y = _problem()
    huge = np.full((300, 3), np.float32(3e38))
    with pytest.raises(nn.DivergenceError, match=r"fit: the training loss became inf at epoch 1, batch 1") as info, \
            np.errstate(over="ignore"):
        _mlp().fit(X, huge, loss=nn.MSELoss(), optimizer=nn.SGD(0.01), epochs=1, verbose=False)
    assert info.value.epoch == 1 and info.value.loss == math.inf


def test_parameters_that_become_non_finite_in_the_last_epoch_are_caught():
    X, y = _problem()

    class Poison:  # after the very last step: no later loss would see it
        def on_batch_end(self, step, model):
            if step == 2:
                model.layers[0].bias.value[0] = np.nan

    with pytest.raises(nn.DivergenceError, match=r"fit: parameter 1 \(bias\) became NaN or infinite at epoch 2"):
        _mlp().fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.01), epochs=2, verbose=False,
                   callbacks=[Poison()])


_OPTIMIZERS = [
    ("SGD", lambda: nn.SGD(0.01)),
    ("SGD_momentum", lambda: nn.SGD(0.01, momentum=0.9)),
    ("SGD_nesterov", lambda: nn.SGD(0.01, momentum=0.9, nesterov=True)),
    ("Adam", lambda: nn.Adam(0.001)),
    ("AdamW", lambda: nn.AdamW(0.001)),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name,make", _OPTIMIZERS, ids=[o[0] for o in _OPTIMIZERS])
def test_no_optimizer_freezes_silently_on_1e30_inputs(name, make):
    X, y = _problem()
    model = _mlp()
    with pytest.raises(nn.DivergenceError, match=r"^fit: ") as info:
        model.fit(X * np.float32(1e30), y, loss=nn.SoftmaxCrossEntropy(), optimizer=make(), epochs=3,
                  batch_size=50, verbose=False)
    assert "\n" not in str(info.value) and info.value.epoch == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("cls", [nn.Adam, nn.AdamW])
def test_adam_step_raises_instead_of_overflowing_its_second_moment(cls):
    p = nn.Parameter(np.ones(3, np.float32), "weight")
    p.grad[:] = np.float32(1e30)
    opt = cls(0.1)
    with pytest.raises(nn.DivergenceError, match=rf"{cls.__name__}: the gradient of `weight` reaches 1e\+30, whose "
                                                 r"square overflows float32 in the second moment"):
        opt.step([p])
    np.testing.assert_array_equal(p.value, 1.0)
    p.grad[:] = np.nan
    with pytest.raises(nn.DivergenceError, match=r"the gradient of `weight` is NaN or infinite"):
        opt.step([p])


def test_adam_moments_are_unchanged_for_ordinary_gradients(rng):
    # the overflow check must not change Adam's arithmetic: v = b2 v + (1 - b2) g^2, bit for bit
    p = nn.Parameter(rng.standard_normal(50).astype(np.float32))
    opt = nn.Adam(0.01)
    m = np.zeros(50, np.float32)
    v = np.zeros(50, np.float32)
    w = p.value.copy()
    for t in range(1, 4):
        g = rng.standard_normal(50).astype(np.float32)
        p.grad[:] = g
        opt.step([p])
        m = m * np.float32(0.9) + np.float32(0.1) * g
        v = v * np.float32(0.999) + (1 - 0.999) * (g * g)
        w = w - (0.01 / (1 - 0.9**t) * m / (np.sqrt(v / (1 - 0.999**t)) + 1e-7)).astype(np.float32)
    st = opt._state[id(p)]
    np.testing.assert_array_equal(st["v"], v)
    np.testing.assert_array_equal(p.value, w)


# ------------------------------------------------------------------- non-finite validation loss
def _val_blowup():
    X, y = _problem()
    Xv = np.full((30, 2), np.float32(3e38))  # finite input; the eval forward overflows
    return X, y, Xv, y[:30]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_non_finite_validation_loss_is_recorded_and_training_goes_on(tmp_path):
    X, y, Xv, yv = _val_blowup()
    ck = tmp_path / "ck.npz"
    h = _mlp().fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01), epochs=3, batch_size=100,
                   validation_data=(Xv, yv), verbose=False, checkpoint=ck)
    assert len(h["loss"]) == 3 and all(math.isfinite(v) for v in h["loss"])
    assert len(h["val_loss"]) == 3 and all(math.isnan(v) for v in h["val_loss"])
    state = _strict_spec(ck)["extra"]["fit"]  # strict JSON: null, not NaN
    assert state["epoch"] == 3 and state["history"]["val_loss"] == [None, None, None]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_checkpoint_with_null_validation_losses_resumes(tmp_path):
    X, y, Xv, yv = _val_blowup()
    ck = tmp_path / "ck.npz"
    kw = dict(loss=nn.SoftmaxCrossEntropy(), batch_size=100, validation_data=(Xv, yv), verbose=False, checkpoint=ck)
    full = _mlp().fit(X, y, optimizer=nn.Adam(0.01), epochs=4, **kw)
    ck.unlink()
    model, opt = _mlp(), nn.Adam(0.01)
    model.fit(X, y, optimizer=opt, epochs=2, **kw)
    resumed = _mlp().fit(X, y, optimizer=nn.Adam(0.01), epochs=4, resume=True, **kw)
    assert resumed["loss"] == full["loss"]
    assert all(math.isnan(v) for v in resumed["val_loss"]) and len(resumed["val_loss"]) == 4


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_early_stopping_never_takes_a_nan_as_the_best(tmp_path):
    X, y, Xv, yv = _val_blowup()
    model = _mlp()
    h = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01), epochs=6, batch_size=100,
                  validation_data=(Xv, yv), verbose=False, early_stopping=2, checkpoint=tmp_path / "ck.npz")
    assert len(h["loss"]) == 2  # never improved: stopped after `early_stopping` epochs
    assert _strict_spec(tmp_path / "ck.npz")["extra"]["fit"]["best"] is None


# --------------------------------------------------------- evaluation never moves training's draws
def _gaussian_model():
    return nn.Sequential(nn.DropConnect(2, 16, p=0.3, inference="gaussian", samples=4, activation=nn.ReLU()),
                         nn.Dense(16, 3), seed=5)


def test_predict_and_evaluate_leave_every_counter_alone():
    X, y = _problem()
    model = _gaussian_model()
    dc = model.layers[0]
    before = dc.counter
    first = model.predict(X[:5])
    model.evaluate(X, y, nn.SoftmaxCrossEntropy())
    assert dc.counter == before
    np.testing.assert_array_equal(model.predict(X[:5]), first)


def test_fit_in_two_calls_through_a_file_equals_one_call(tmp_path):
    X, y = _problem()
    kw = dict(loss=nn.SoftmaxCrossEntropy(), batch_size=100, verbose=False)
    model, opt = _gaussian_model(), nn.Adam(0.01)
    whole = model.fit(X, y, optimizer=opt, epochs=2, **kw)
    split, sopt = _gaussian_model(), nn.Adam(0.01)
    first = split.fit(X, y, optimizer=sopt, epochs=1, **kw)
    split.save(tmp_path / "m.npz", optimizer=sopt)
    loaded = nn.load(tmp_path / "m.npz")
    second = loaded.fit(X, y, optimizer=nn.load_optimizer(tmp_path / "m.npz", loaded), epochs=1, **kw)
    assert first["loss"] + second["loss"] == whole["loss"]
    assert loaded.layers[0].counter == model.layers[0].counter


def test_validation_data_does_not_change_the_training_losses():
    X, y = _problem()
    kw = dict(loss=nn.SoftmaxCrossEntropy(), epochs=3, batch_size=100, verbose=False)
    plain = _gaussian_model().fit(X, y, optimizer=nn.Adam(0.01), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checked = _gaussian_model().fit(X, y, optimizer=nn.Adam(0.01), validation_data=(X[:60], y[:60]), **kw)
    assert checked["loss"] == plain["loss"]


def test_a_model_with_shared_layers_is_refused_before_a_file_is_written(tmp_path):
    # model files name each layer once per place: a shared layer would not load back
    dn = nn.Dense(2, 2, seed=0)
    model = nn.Sequential(dn, nn.Tanh(), dn, nn.Dense(2, 3, seed=1))
    msg = r"`model` must be a model that uses each layer object once; got model='a Dense used twice'"
    with pytest.raises(ValueError, match=r"save: " + msg):
        model.save(tmp_path / "m.npz")
    X, y = _problem()
    with pytest.raises(ValueError, match=r"fit: " + msg):
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.1), epochs=1, verbose=False,
                  checkpoint=tmp_path / "ck.npz")
    assert list(tmp_path.iterdir()) == []
    h = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.1), epochs=1, verbose=False)
    assert math.isfinite(h["loss"][0])  # without files, shared layers train


def test_a_resumed_run_judges_divergence_by_the_first_runs_initial_loss(tmp_path):
    X, y = _problem()
    ck = tmp_path / "ck.npz"
    kw = dict(loss=nn.SoftmaxCrossEntropy(), batch_size=100, verbose=False, checkpoint=ck, divergence=1.5)
    _mlp().fit(X, y, optimizer=nn.SGD(0.05), epochs=2, **kw)
    first = _strict_spec(ck)["extra"]["fit"]["reference_loss"]

    class Scale:  # the loss jumps in the resumed part
        def on_epoch_begin(self, epoch, model):
            if epoch == 2:
                model.layers[-1].weight.value[...] *= 40

    with pytest.raises(nn.DivergenceError, match=rf"at epoch 3: .* max\(first batch loss {first:.4g}, 1\)"):
        _mlp().fit(X, y, optimizer=nn.SGD(0.05), epochs=4, resume=True, callbacks=[Scale()], **kw)
    assert _strict_spec(ck)["extra"]["fit"]["epoch"] == 2
