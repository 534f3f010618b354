"""The engine: float64 finite-difference gradients of every layer and loss, optimizers,
fit/predict/evaluate, seeding, and every error path."""

import numpy as np
import pytest

from droplab import nn
from droplab.nn.gradcheck import check_gradients

F64 = np.float64


def away_from_zero(rng, shape, margin=0.05):
    """Inputs not within `margin` of 0, so ReLU-like kinks are not straddled by the difference."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin, x)


@pytest.mark.parametrize("layer", [
    lambda: nn.Dense(4, 3, dtype=F64, seed=0),
    lambda: nn.Dense(4, 3, l1=0.01, l2=0.02, bias_l1=0.03, bias_l2=0.04, init="torch", dtype=F64, seed=0),
    lambda: nn.ReLU(), lambda: nn.LeakyReLU(0.1), lambda: nn.Tanh(), lambda: nn.Sigmoid(), lambda: nn.SELU(),
    lambda: nn.Softmax(), lambda: nn.Flatten(),
    lambda: nn.Dropout(0.4, seed=1), lambda: nn.Dropout(0.4, inverted=False, seed=1),
    lambda: nn.Dropout(0.5, axes=1, seed=1), lambda: nn.Dropout(1.0, seed=1),
], ids=["dense", "dense-penalties", "relu", "leaky", "tanh", "sigmoid", "selu", "softmax", "flatten",
        "dropout", "dropout-classic", "dropout-axes", "dropout-p1"])
def test_layer_gradients(layer, rng):
    if isinstance(layer(), nn.Dense):
        x = rng.standard_normal((5, 4))
        # bias penalties need non-zero biases for sign() to be smooth around the point
        module = layer()
        module.bias.value[:] = rng.uniform(0.1, 0.5, module.bias.value.shape)
    else:
        module, x = layer(), away_from_zero(rng, (5, 4))
    report = check_gradients(module, x)
    assert report.ok, str(report)


def test_network_gradients_with_frozen_masks(rng):
    model = nn.Sequential(nn.Dense(3, 6, l2=1e-3, dtype=F64), nn.Tanh(), nn.Dropout(0.3),
                          nn.Dense(6, 4, l1=1e-3, dtype=F64), nn.SELU(), nn.Dropout(0.5, inverted=False),
                          nn.Dense(4, 2, dtype=F64), seed=3)
    report = check_gradients(model, rng.standard_normal((7, 3)))
    assert report.ok, str(report)


def numeric_loss_grad(loss, pred, target, eps=1e-6):
    g = np.zeros_like(pred)
    for i in range(pred.size):
        old = pred.flat[i]
        pred.flat[i] = old + eps
        fp = loss(pred, target)
        pred.flat[i] = old - eps
        fm = loss(pred, target)
        pred.flat[i] = old
        g.flat[i] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize("case", ["sce-int", "sce-onehot", "bce-logits", "bce-probs", "mse"])
def test_loss_gradients(case, rng):
    pred = rng.standard_normal((6, 3))
    if case == "sce-int":
        loss, target = nn.SoftmaxCrossEntropy(), rng.integers(0, 3, 6)
    elif case == "sce-onehot":
        loss, target = nn.SoftmaxCrossEntropy(), np.eye(3)[rng.integers(0, 3, 6)]
    elif case == "bce-logits":
        loss, target = nn.BinaryCrossEntropy(), rng.integers(0, 2, (6, 3)).astype(F64)
    elif case == "bce-probs":
        loss, target = nn.BinaryCrossEntropy(from_logits=False), rng.integers(0, 2, (6, 3)).astype(F64)
        pred = rng.uniform(0.1, 0.9, (6, 3))
    else:
        loss, target = nn.MSELoss(), rng.standard_normal((6, 3))
    loss(pred, target)
    analytic = loss.backward().copy()
    numeric = numeric_loss_grad(loss, pred, target)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    loss = nn.SoftmaxCrossEntropy()
    value = loss(np.array([[1000.0, -1000.0, 0.0]]), np.array([0]))
    assert value == 0.0 and np.all(np.isfinite(loss.backward()))
    assert np.isclose(loss(np.array([[-1000.0, 1000.0]]), np.array([0])), 2000.0)


def test_regularization_loss_matches_formula():
    d = nn.Dense(2, 2, l1=0.1, l2=0.2, bias_l1=0.3, bias_l2=0.4, dtype=F64, seed=0)
    d.weight.value[:] = [[1, -2], [3, -4]]
    d.bias.value[:] = [0.5, -1]
    expected = 0.1 * 10 + 0.2 * 30 + 0.3 * 1.5 + 0.4 * 1.25
    model = nn.Sequential(d, nn.ReLU())
    assert np.isclose(model.regularization_loss(), expected)


def test_backward_adds_into_grad(rng):
    d = nn.Dense(3, 2, dtype=F64, seed=0)
    x = rng.standard_normal((4, 3))
    d.forward(x)
    d.backward(np.ones((4, 2)))
    g1 = d.weight.grad.copy()
    d.backward(np.ones((4, 2)))
    assert np.allclose(d.weight.grad, 2 * g1)
    d.zero_grad()
    assert not d.weight.grad.any()


def test_dense_dtype_and_float64_on_request():
    assert nn.Dense(3, 2).forward(np.ones((1, 3))).dtype == np.float32
    assert nn.Dense(3, 2, dtype=np.float64).forward(np.ones((1, 3), np.float32)).dtype == np.float64


def test_adam_matches_the_textbook_update():
    p = nn.Parameter(np.array([1.0, -2.0]))
    opt = nn.Adam(0.1, beta1=0.9, beta2=0.999, eps=1e-7, decay=0.01)
    m = v = np.zeros(2)
    w = p.value.copy()
    for t in range(3):
        g = np.array([0.5, -1.5]) * (t + 1)
        p.grad[:] = g
        opt.step([p])
        lr = 0.1 / (1 + 0.01 * t)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - lr * (m / (1 - 0.9 ** (t + 1))) / (np.sqrt(v / (1 - 0.999 ** (t + 1))) + 1e-7)
    np.testing.assert_allclose(p.value, w, rtol=1e-12)


def test_sgd_momentum_and_nesterov():
    for nesterov in (False, True):
        p = nn.Parameter(np.array([1.0]))
        opt = nn.SGD(0.1, momentum=0.5, nesterov=nesterov)
        v, w = 0.0, 1.0
        for _ in range(3):
            p.grad[:] = 2.0
            opt.step([p])
            v = 0.5 * v - 0.1 * 2.0
            w = w + (0.5 * v - 0.1 * 2.0 if nesterov else v)
        assert np.isclose(p.value[0], w)


def test_adamw_decouples_weight_decay():
    p = nn.Parameter(np.array([2.0]))
    nn.AdamW(0.1, weight_decay=0.5).step([p])  # zero gradient: only the decay acts
    assert np.isclose(p.value[0], 2.0 * (1 - 0.1 * 0.5))


def spiral_small(seed=0):
    from droplab import data
    X, y = data.spiral(100, 3, seed=seed)
    return X, y


def test_fit_learns_and_reports_history():
    X, y = spiral_small()
    model = nn.Sequential(nn.Dense(2, 64), nn.ReLU(), nn.Dropout(0.1), nn.Dense(64, 3), seed=0)
    h = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.05), epochs=400,
                  validation_data=(X, y), verbose=False)
    assert set(h) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 400 for v in h.values())
    assert h["loss"][-1] < 0.8 * h["loss"][0]
    assert model.evaluate(X, y, nn.SoftmaxCrossEntropy())["accuracy"] > 0.7  # chance is 1/3
    probs = model.predict(X)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5) and model.training is True


def test_same_seed_gives_bit_identical_training():
    X, y = spiral_small()

    def train(seed):
        model = nn.Sequential(nn.Dense(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Dense(16, 3), seed=seed)
        h = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01), epochs=5, batch_size=32,
                      verbose=False)
        return h, [p.value.copy() for p in model.parameters()]

    (h1, w1), (h2, w2), (h3, w3) = train(4), train(4), train(5)
    assert h1 == h2 and all(np.array_equal(a, b) for a, b in zip(w1, w2))
    assert h1 != h3


def test_sequential_seed_overrides_only_unseeded_layers():
    a = nn.Sequential(nn.Dense(2, 3, seed=11), nn.Dense(3, 3), seed=0)
    b = nn.Sequential(nn.Dense(2, 3, seed=11), nn.Dense(3, 3), seed=1)
    assert np.array_equal(a[0].weight.value, b[0].weight.value)
    assert not np.array_equal(a[1].weight.value, b[1].weight.value)


def test_early_stopping_restores_best():
    X, y = spiral_small()
    model = nn.Sequential(nn.Dense(2, 32), nn.ReLU(), nn.Dense(32, 3), seed=0)
    h = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(5.0), epochs=200,
                  validation_data=(X, y), early_stopping=3, verbose=False)
    assert len(h["loss"]) < 200
    best = min(h["val_loss"])
    assert np.isclose(model.evaluate(X, y, nn.SoftmaxCrossEntropy())["loss"], best, rtol=1e-5)


def test_callbacks_are_called():
    X, y = spiral_small()
    seen = []

    class CB:
        def on_epoch_begin(self, epoch, model):
            seen.append(("begin", epoch))

        def on_batch_end(self, step, model):
            seen.append(("batch", step))

    nn.Sequential(nn.Dense(2, 3), seed=0).fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.1), epochs=2,
                                              batch_size=150, verbose=False, callbacks=[CB()])
    assert seen == [("begin", 0), ("batch", 1), ("batch", 2), ("begin", 1), ("batch", 3), ("batch", 4)]


def test_engine_errors():
    X, y = spiral_small()
    m = nn.Sequential(nn.Dense(2, 3), seed=0)
    L, opt = nn.SoftmaxCrossEntropy(), nn.SGD(0.1)
    with pytest.raises(ValueError, match=r"fit: `epochs` must be a positive integer; got epochs=0"):
        m.fit(X, y, loss=L, optimizer=opt, epochs=0)
    with pytest.raises(TypeError, match=r"fit: `loss` must be a droplab loss"):
        m.fit(X, y, loss="mse", optimizer=opt, epochs=1)
    with pytest.raises(TypeError, match=r"fit: `optimizer` must be a droplab optimizer"):
        m.fit(X, y, loss=L, optimizer="adam", epochs=1)
    with pytest.raises(ValueError, match=r"fit: `y` must be 300 targets"):
        m.fit(X, y[:10], loss=L, optimizer=opt, epochs=1)
    bad = X.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"fit: `X` must be finite \(no NaN or inf\); got X='array with 1 non-finite"):
        m.fit(bad, y, loss=L, optimizer=opt, epochs=1)
    with pytest.raises(ValueError, match=r"fit: `y` must be labels in \[0, 3\); got y=.array containing 5"):
        m.fit(X, y + 5, loss=L, optimizer=opt, epochs=1, verbose=False)
    with pytest.raises(ValueError, match=r"fit: `monitor` must be one of 'loss', 'accuracy'"):
        m.fit(X, y, loss=L, optimizer=opt, epochs=1, early_stopping=2, monitor="val_loss")
    with pytest.raises(TypeError, match=r"fit: `validation_data` must be a pair"):
        m.fit(X, y, loss=L, optimizer=opt, epochs=1, validation_data=X)
    huge = np.full((300, 3), np.float32(3e38))  # the squared error overflows to inf
    with pytest.raises(FloatingPointError, match=r"fit: the training loss became inf at epoch 1, batch 1"), \
            np.errstate(over="ignore"):
        m.fit(X, huge, loss=nn.MSELoss(), optimizer=opt, epochs=1, verbose=False)
    with pytest.raises(ValueError, match=r"Dense: input must have shape \(N, 2\); got shape \(4, 5\)"):
        m.forward(np.ones((4, 5)))
    with pytest.raises(RuntimeError, match=r"Dense: backward\(\) was called before forward\(\)"):
        nn.Dense(2, 2).backward(np.ones((1, 2)))
    with pytest.raises(RuntimeError, match=r"SoftmaxCrossEntropy: backward\(\) was called before"):
        nn.SoftmaxCrossEntropy().backward()
    with pytest.raises(TypeError, match=r"Sequential: every layer must be a droplab Module; got layer 1="):
        nn.Sequential(nn.ReLU(), "relu")
    with pytest.raises(TypeError, match=r"Dense: `dtype` must be float32 or float64"):
        nn.Dense(2, 2, dtype=np.int32)
    with pytest.raises(ValueError, match=r"Dense: `init` must be one of 'he', 'glorot', 'lecun', 'torch', 'small'; "
                                         r"got init='hee'\. Did you mean 'he'\?"):
        nn.Dense(2, 2, init="hee")
    with pytest.raises(ValueError, match=r"Dense: `l2` must be a finite number >= 0; got l2=-1"):
        nn.Dense(2, 2, l2=-1)
    with pytest.raises(ValueError, match=r"SGD: `momentum` must be in \[0, 1\); got momentum=1"):
        nn.SGD(0.1, momentum=1)
    with pytest.raises(ValueError, match=r"Adam: `beta2` must be in \[0, 1\); got beta2=1.5"):
        nn.Adam(beta2=1.5)
    with pytest.raises(ValueError, match=r"Adam: `lr` must be a finite number > 0; got lr=0"):
        nn.Adam(0)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: `pred` must be logits of shape \(N, K\)"):
        nn.SoftmaxCrossEntropy()(np.ones(3), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: `target` must be 2 labels"):
        nn.SoftmaxCrossEntropy()(np.ones((2, 3)), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: `target` must be labels of shape \(2,\)"):
        nn.SoftmaxCrossEntropy()(np.ones((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"MSELoss: `target` must be an array of shape \(2, 3\)"):
        nn.MSELoss()(np.ones((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy: `target` must be an array of shape"):
        nn.BinaryCrossEntropy()(np.ones((2, 3)), np.zeros((2, 2)))
    with pytest.raises(TypeError, match=r"evaluate: `loss` must be a droplab loss"):
        m.evaluate(X, y, "x")
