"""The training step's fast paths give the bits of the plain ones. No timing assertions.

* the optimizers' one-call-per-group updates (``nn/_optim_kernels.py``) against NumPy's update
  parameter by parameter: SGD (plain, momentum, Nesterov), Adam, AdamW, float32 and float64,
  more parameters than one group holds, mixed dtypes, a plan that must notice new arrays;
* softmax cross-entropy on labels in ``nn/_loss_kernels.py`` against the NumPy formula, and fit's
  label path (no per-batch label check, correct rows counted in the loss's pass) against the
  public call: same history, same weights;
* the optimizers zeroing the gradients they consume (fit's next zero_grad) only where nobody
  can tell: fit's history, weights, gradients and optimizer state as without.
"""

import copy
import pickle

import numpy as np
import pytest

from droplab import kernels, nn
from droplab.nn import optim
from droplab.nn.module import Parameter

needs_numba = pytest.mark.skipif(kernels.backend() != "numba", reason="the fused paths need numba")

# 11 parameters: more than one group of optim's GROUP (8), odd and empty shapes among them
SHAPES = ((40, 256), (256,), (256, 10), (10,), (3, 1), (0,), (7, 5), (5,), (1,), (2, 3, 4), (9,))

OPTIMIZERS = {
    "adam": lambda: nn.Adam(1e-2),
    "adam-options": lambda: nn.Adam(3e-3, beta1=0.5, beta2=0.9, eps=1e-3, decay=0.01),
    "adamw": lambda: nn.AdamW(1e-2, weight_decay=0.1),
    "adamw-decay": lambda: nn.AdamW(2e-3, weight_decay=0.3, beta2=0.99, decay=0.05),
    "sgd": lambda: nn.SGD(0.05),
    "sgd-decay": lambda: nn.SGD(0.05, decay=0.1),
    "momentum": lambda: nn.SGD(0.01, momentum=0.9),
    "nesterov": lambda: nn.SGD(0.01, momentum=0.7, nesterov=True, decay=0.02),
}


def _params(rng, dtypes):
    return [Parameter(rng.standard_normal(s).astype(dt)) for s, dt in zip(SHAPES, dtypes)]


def _numpy_steps(opt, params):
    """NumPy's update, parameter by parameter (what ``step`` does without numba)."""
    lr = opt.current_lr
    for p in params:
        opt._update(p, lr)
    opt.iterations += 1


def _grads(rng, pairs, scale=(-6, 4)):
    for p, q in pairs:  # over 10 orders of magnitude, some exactly zero, some negative zero
        g = (rng.standard_normal(p.value.shape) * 10.0 ** rng.uniform(*scale)).astype(p.value.dtype)
        g[rng.random(g.shape) < 0.1] = 0
        g[rng.random(g.shape) < 0.05] = -0.0
        p.grad[...] = g
        q.grad[...] = g


def _assert_same(fused, plain, a, b, skip=()):
    assert fused.iterations == plain.iterations
    for p, q in zip(a, b):
        assert p.value.dtype == q.value.dtype
        assert p.value.tobytes() == q.value.tobytes()
    assert len(fused._state) == len(plain._state)
    for p, q in zip(a, b):
        st, su = fused._state.get(id(p)), plain._state.get(id(q))
        assert (st is None) == (su is None)
        for slot in st or ():
            if (id(p), slot) not in skip:
                assert st[slot].tobytes() == su[slot].tobytes()


DTYPES = {
    "float32": [np.float32] * len(SHAPES),
    "float64": [np.float64] * len(SHAPES),
    "mixed": [np.float32, np.float32, np.float64, np.float32, np.float64, np.float64, np.float32,
              np.float32, np.float32, np.float64, np.float32],
}


@needs_numba
@pytest.mark.parametrize("dtypes", list(DTYPES), ids=list(DTYPES))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fused_updates_equal_numpy_parameter_by_parameter(rng, name, dtypes):
    fused, plain = OPTIMIZERS[name](), OPTIMIZERS[name]()
    a = _params(rng, DTYPES[dtypes])
    b = [Parameter(p.value.copy()) for p in a]
    for _ in range(40):
        _grads(rng, zip(a, b))
        fused.step(a)
        _numpy_steps(plain, b)
    assert fused._plan is not None  # the compiled path ran
    _assert_same(fused, plain, a, b)


@needs_numba
@pytest.mark.parametrize("name", ["adamw", "momentum"])
def test_fused_plan_follows_new_arrays_and_state(rng, name):
    """The groups are kept between steps; a replaced weight, gradient or optimizer state (as
    nn.load and io's restore do), a deep copy of the optimizer, and a state set by hand that
    the kernels cannot take (non-contiguous) are all honoured."""
    fused, plain = OPTIMIZERS[name](), OPTIMIZERS[name]()
    a = _params(rng, DTYPES["float32"])
    b = [Parameter(p.value.copy()) for p in a]

    def steps(k):
        for _ in range(k):
            _grads(rng, zip(a, b))
            fused.step(a)
            _numpy_steps(plain, b)

    steps(3)
    a[2].value = a[2].value.copy()
    a[4].grad = np.zeros_like(a[4].grad)
    steps(3)
    fused._state = {k: {s: v.copy() for s, v in st.items()} for k, st in fused._state.items()}
    steps(3)
    twin = copy.deepcopy(fused)  # a copy never updates through the original's plan
    assert twin._plan is None and pickle.loads(pickle.dumps(fused))._plan is None
    twin.step(a)
    twin_values = [p.value.copy() for p in a]
    for p, v in zip(a, twin_values):
        p.value[...] = v
    plain_twin = copy.deepcopy(plain)
    _numpy_steps(plain_twin, b)
    for p, q in zip(a, b):
        assert p.value.tobytes() == q.value.tobytes()
    fused, plain = twin, plain_twin
    slot = next(iter(fused._state[id(a[0])]))
    odd = np.zeros((a[0].value.shape[1], a[0].value.shape[0]), np.float32).T  # a transposed view
    odd[...] = fused._state[id(a[0])][slot]
    fused._state[id(a[0])][slot] = odd
    steps(2)
    assert fused._plan is None  # that state took the NumPy path
    _assert_same(fused, plain, a, b)


@needs_numba
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e20])
@pytest.mark.parametrize("where", [1, 9])  # in the first group (float32), in a later one (float64)
def test_fused_adam_refuses_an_overflow_as_numpy_does(rng, bad, where):
    """The same parameters are updated before the refusal, and the same ones hold state after
    it (first step: none made for the parameters never reached). The refused parameter's first
    moment is the one difference: NumPy's path moves it before its check, the kernel leaves it."""
    for first in (True, False):
        fused, plain = nn.AdamW(1e-2), nn.AdamW(1e-2)
        a = _params(rng, DTYPES["mixed"])
        b = [Parameter(p.value.copy()) for p in a]
        if not first:
            _grads(rng, zip(a, b), (-2, 0))
            fused.step(a)
            _numpy_steps(plain, b)
        _grads(rng, zip(a, b), (-2, 0))
        big = bad if a[where].value.dtype == np.float32 or np.isnan(bad) else bad**8  # overflows its dtype's square
        a[where].grad.flat[0] = b[where].grad.flat[0] = big
        m = fused._state[id(a[where])]["m"].copy() if not first else np.zeros_like(a[where].value)
        for opt, ps, run in ((fused, a, fused.step), (plain, b, lambda ps: _numpy_steps(plain, ps))):
            with pytest.raises(nn.DivergenceError, match="AdamW: the gradient of `a parameter` "), \
                    np.errstate(over="ignore"):  # NumPy's g * g overflows on its way to the refusal
                run(ps)
        _assert_same(fused, plain, a, b, skip={(id(a[where]), "m")})
        assert fused._state[id(a[where])]["m"].tobytes() == m.tobytes()


def test_numpy_backend_and_subclasses_take_the_numpy_path(rng, monkeypatch):
    class Slow(nn.SGD):
        pass

    a = _params(rng, DTYPES["float32"])
    b = [Parameter(p.value.copy()) for p in a]
    _grads(rng, zip(a, b))
    sub = Slow(0.1, momentum=0.5)
    sub.step(a)
    assert sub._plan is None
    monkeypatch.setattr(kernels, "backend", lambda: "numpy")
    for make in OPTIMIZERS.values():
        opt = make()
        opt.step(b)
        assert opt._plan is None
    assert not optim._fusable(b)


# --- softmax cross-entropy on labels ---------------------------------------------------------------


def _textbook_softmax_ce(z, t):
    """The NumPy formula the loss used before its kernels, operation for operation."""
    n = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)
    logsum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    logp = shifted - logsum
    probs = np.exp(logp)
    value = -logp[np.arange(n), t].mean()
    probs[np.arange(n), t] -= 1
    probs /= n
    return float(value), probs.astype(z.dtype, copy=False)


def _same_float(a, b):
    return np.float64(a).tobytes() == np.float64(b).tobytes() or (np.isnan(a) and np.isnan(b))


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_label_loss_equals_the_numpy_formula_bit_for_bit(rng, dtype):
    """Value, gradient and correct-row count, over class counts and batch sizes on both sides
    of NumPy's pairwise-sum thresholds (8, 128, and the halving above), ties, rounded logits,
    magnitudes from 1e-3 to 1e4, and NaN, infinities and signed zeros among the logits."""
    cases = [(n, k) for k in (2, 3, 7, 8, 9, 10, 16, 17, 127, 128, 129, 300) for n in (1, 7, 8, 9, 100, 129, 1000)]
    cases += [(4003, 10), (2500, 33)]
    for n, k in cases:
        for special in (None, np.nan, np.inf, -np.inf, 0.0, -0.0):
            z = (rng.standard_normal((n, k)) * 10.0 ** rng.uniform(-3, 4)).astype(dtype)
            if rng.random() < 0.3:
                z[:, : k // 2] = z[:, :1]  # ties for the maximum
            if rng.random() < 0.3:
                z = np.round(z)
            if special is not None:
                z[rng.random(z.shape) < 0.02] = special
            t = rng.integers(0, k, n)
            with np.errstate(all="ignore"):
                want, grad = _textbook_softmax_ce(z, t)
                loss = nn.SoftmaxCrossEntropy()
                got, correct = loss._forward_labels(z, t)
                public = nn.SoftmaxCrossEntropy()
                value = public(z, t)
            assert _same_float(got, want) and _same_float(value, want), (n, k, special, got, want)
            assert loss.backward().dtype == dtype
            assert loss.backward().tobytes() == grad.tobytes() == public.backward().tobytes(), (n, k, special)
            assert correct == int((z.argmax(axis=1) == t).sum())


def test_label_loss_falls_back_to_numpy_where_the_kernels_do_not_apply(rng, monkeypatch):
    z = rng.standard_normal((50, 6)).astype(np.float32)
    t = rng.integers(0, 6, 50)
    want, grad = _textbook_softmax_ce(z, t)
    for pred in (z, np.asfortranarray(z), z.astype(np.float16)):
        loss = nn.SoftmaxCrossEntropy()
        value, correct = loss._forward_labels(pred, t)
        if pred.dtype == np.float16:
            assert correct is None and loss.backward().dtype == np.float16
            continue
        assert _same_float(value, want) and loss.backward().tobytes() == grad.tobytes()
        assert correct == (None if not pred.flags.c_contiguous else int((z.argmax(1) == t).sum()))
    monkeypatch.setattr(kernels, "backend", lambda: "numpy")
    loss = nn.SoftmaxCrossEntropy()
    value, correct = loss._forward_labels(z, t)
    assert correct is None and _same_float(value, want) and loss.backward().tobytes() == grad.tobytes()


@pytest.mark.parametrize("bad", [-1, 6])
def test_label_path_still_refuses_a_label_outside_the_outputs(rng, bad):
    """fit checks its labels once; should the outputs then not match (a model changed during
    training), the label path reports it as the public call does, one line."""
    z = rng.standard_normal((5, 6)).astype(np.float32)
    t = np.array([0, 1, bad, 2, 3])
    for call in (lambda: nn.SoftmaxCrossEntropy()._forward_labels(z, t), lambda: nn.SoftmaxCrossEntropy()(z, t)):
        with pytest.raises(ValueError, match=rf"^SoftmaxCrossEntropy: `target` must be labels in \[0, 6\); "
                                             rf"got target='array containing {bad}'\.$"):
            call()


class _PlainLoss(nn.SoftmaxCrossEntropy):
    """A subclass: fit takes the public call for it (label check per batch, accuracy apart)."""


@pytest.mark.parametrize("batch_size", [None, 32, 100])
@pytest.mark.parametrize("labels", ["int64", "int32", "float"])
def test_fit_label_path_gives_the_public_calls_history_and_weights(rng, batch_size, labels):
    X = rng.standard_normal((230, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] > 0.3)
    y = y.astype({"int64": np.int64, "int32": np.int32, "float": np.float64}[labels])
    Xv, yv = X[:40] + 0.1, y[:40]
    runs = []
    for loss in (nn.SoftmaxCrossEntropy(), _PlainLoss()):
        model = nn.Sequential(nn.Dense(5, 16), nn.ReLU(), nn.Dropout(0.2), nn.Dense(16, 4), seed=3)
        h = model.fit(X, y, loss=loss, optimizer=nn.Adam(1e-2), epochs=4, batch_size=batch_size, seed=1,
                      validation_data=(Xv, yv), verbose=False)
        runs.append((h, [p.value.copy() for p in model.parameters()], [p.grad.copy() for p in model.parameters()]))
    (h1, w1, g1), (h2, w2, g2) = runs
    assert h1.keys() == h2.keys() and all(np.array(h1[k]).tobytes() == np.array(h2[k]).tobytes() for k in h1)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(w1 + g1, w2 + g2))


# --- gradients zeroed by the update, in place of the next zero_grad --------------------------------


@needs_numba
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_clearing_step_equals_step_then_zero_grad(rng, name):
    a = _params(rng, DTYPES["float32"][:8])  # one group: Adam clears only then
    b = [Parameter(p.value.copy()) for p in a]
    fused, plain = OPTIMIZERS[name](), OPTIMIZERS[name]()
    for _ in range(5):
        _grads(rng, zip(a, b))
        assert fused._step(a, True) is True
        plain.step(b)
        assert all(not p.grad.any() and not np.signbit(p.grad).any() for p in a)  # +0, as fill(0)
        for q in b:
            q.grad.fill(0)
        _assert_same(fused, plain, a, b)
    assert fused._step(a, False) is False  # without clear: gradients kept
    plain.step(b)
    _assert_same(fused, plain, a, b)


@needs_numba
@pytest.mark.parametrize("where", [0, 3, 7])
def test_clearing_adam_refusal_zeroes_nothing(rng, where):
    a = _params(rng, DTYPES["float32"][:8])
    b = [Parameter(p.value.copy()) for p in a]
    fused, plain = nn.Adam(1e-2), nn.Adam(1e-2)
    _grads(rng, zip(a, b), (-2, 0))
    fused.step(a)
    plain.step(b)
    _grads(rng, zip(a, b), (-2, 0))
    a[where].grad.flat[0] = b[where].grad.flat[0] = np.inf
    for opt, ps, run in ((fused, a, lambda ps: fused._step(ps, True)), (plain, b, plain.step)):
        with pytest.raises(nn.DivergenceError, match="Adam: the gradient of `a parameter` is NaN or infinite"):
            run(ps)
    _assert_same(fused, plain, a, b)
    for p, q in zip(a, b):
        assert p.grad.tobytes() == q.grad.tobytes()


def test_more_groups_or_other_optimizers_do_not_clear(rng):
    ps = _params(rng, DTYPES["float32"])  # 11 parameters: two groups
    for p in ps:
        p.grad[...] = 0.5
    assert nn.Adam(1e-3)._step(ps, True) is (False)
    assert all((p.grad == 0.5).all() for p in ps)

    class Mine(nn.Adam):
        pass

    assert Mine(1e-3)._step(ps[:3], True) is False
    assert all((p.grad == 0.5).all() for p in ps)


class _Watch:
    """An on_batch_end callback: fit then leaves every gradient for it to read."""

    def __init__(self):
        self.grads = []

    def on_batch_end(self, step, model):
        self.grads.append([p.grad.copy() for p in model.parameters()])


@pytest.mark.parametrize("make", [lambda: nn.Adam(1e-2), lambda: nn.AdamW(1e-2, weight_decay=0.1),
                                  lambda: nn.SGD(0.05, momentum=0.9)], ids=["adam", "adamw", "sgd"])
@pytest.mark.parametrize("layers", [1, 5], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("batch_size", [None, 40, 64])
def test_fit_with_cleared_gradients_matches_fit_without(rng, monkeypatch, make, layers, batch_size):
    """History, weights, the last batch's gradients and the optimizer's state, against a run
    whose on_batch_end callback keeps fit from clearing (and which sees real gradients)."""
    X = rng.standard_normal((200, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    zero_grad, calls = nn.Module.zero_grad, []
    monkeypatch.setattr(nn.Module, "zero_grad", lambda self: calls.append(1) or zero_grad(self))
    runs = []
    for watch in (None, _Watch()):
        calls.clear()
        mods = [nn.Dense(6, 12), nn.ReLU(), nn.Dropout(0.1)]
        for _ in range(layers - 1):
            mods += [nn.Dense(12, 12), nn.ReLU()]
        model = nn.Sequential(*mods, nn.Dense(12, 3), seed=5)
        opt = make()
        h = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=opt, epochs=3, batch_size=batch_size, seed=2,
                      verbose=False, callbacks=[watch] if watch else [])
        ps = model.parameters()
        runs.append((h, [p.value.copy() for p in ps] + [p.grad.copy() for p in ps],
                     [a.copy() for p in ps for a in opt._state.get(id(p), {}).values()], opt.iterations))
        batches = 1 if batch_size is None else -(-200 // batch_size)
        clears = watch is None and not (layers > 1 and isinstance(opt, nn.Adam))
        assert len(calls) == 3 * (1 if clears else batches)  # cleared: one zero_grad an epoch
        if watch:
            assert all(any(g.any() for g in gs) for gs in watch.grads)
    (h1, a1, s1, i1), (h2, a2, s2, i2) = runs
    assert h1.keys() == h2.keys() and all(np.array(h1[k]).tobytes() == np.array(h2[k]).tobytes() for k in h1)
    assert i1 == i2 and len(s1) == len(s2) and len(a1) == len(a2)
    assert all(u.tobytes() == v.tobytes() for u, v in zip(a1 + s1, a2 + s2))
