"""One specification, two engines: every registered variant in ``droplab.nn`` and
``droplab.torch`` with the same seed gives the same outputs, gradients, defaults, config() and
errors; plus the faults of issue 14, each with a test that failed before the specs existed.

Exactness: droplab computes every noise itself (kernels' Bernoulli masks, Box-Muller normals,
the relaxed Bernoulli) and both engines multiply in the same dtype, so element-wise variants
agree bit for bit. DropConnect's products are BLAS's; its mask is compared exactly through an
identity input (products with 1 and 0 and sums of one non-zero term are exact).
"""

import inspect
import pathlib
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import droplab.torch as dt  # noqa: E402
from droplab import _rng, family, kernels, nn  # noqa: E402
from droplab.family import Option, Spec, rank_error  # noqa: E402
from droplab.nn.dropout import variant as nn_variant  # noqa: E402

PS = [0.0, 2.0**-20, 0.1, 0.4, 0.5, 1 - 2.0**-20, 1.0]
DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64),
          "float16": (np.float16, torch.float16)}
ROOT = pathlib.Path(__file__).resolve().parents[1]

# registry name -> [(options, input shape, a wrong-rank shape)]: several options and shapes each
CASES = {
    "dropout": [({}, (6, 7), None), ({"inverted": False}, (5, 4, 3), None), ({"axes": (0, 2)}, (4, 5, 6), (3,))],
    "dropout1d": [({}, (4, 6, 5), (4, 6))],
    "dropout2d": [({}, (3, 4, 3, 5), (4, 3, 5))],
    "dropout3d": [({}, (2, 3, 2, 3, 2), (3, 2, 3, 2))],
    "drop_path": [({}, (8, 3, 2), ()), ({"mode": "batch"}, (5, 4), ())],
    "locked_dropout": [({}, (3, 5, 4), (3, 5)), ({"batch_first": False}, (5, 3, 4), (5, 3, 4, 1))],
    "gaussian_dropout": [({}, (6, 9), None), ({"axes": 1}, (4, 5, 3), (2,))],
    "alpha_dropout": [({}, (6, 9), None), ({"axes": (2, 3)}, (2, 3, 4, 4), (4, 4))],
    "drop_block2d": [({"block_size": 3}, (2, 3, 6, 7), (3, 6, 7)),
                     ({"block_size": 5, "shared_channels": True}, (3, 2, 4, 3), (2, 4, 3)),  # clipped block
                     ({"block_size": 2, "gamma": "paper"}, (2, 2, 5, 5), None)],
}
ELEMENTWISE = [s.name for s in family.specs() if s.kind == "noise" and s.name in CASES]


def _ids():
    return [f"{n}-{i}" for n in ELEMENTWISE for i in range(len(CASES[n]))]


def _params():
    return [(n, *c) for n in ELEMENTWISE for c in CASES[n]]


def _pair(name, p, options, seed):
    spec = family.get(name)
    return nn_variant(spec)(p, seed=seed, **options), dt.variant(spec)(p, seed=seed, **options)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True) and np.array_equal(
        np.signbit(a), np.signbit(b))


def test_every_elementwise_variant_has_cases():
    assert set(ELEMENTWISE) == {s.name for s in family.specs() if s.kind == "noise"}


# -- outputs and gradients ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name,options,shape,bad", _params(), ids=_ids())
def test_same_seed_same_outputs_and_gradients_in_training_and_eval(name, options, shape, bad, dtype, rng, seed):
    np_dt, t_dt = DTYPES[dtype]
    spec = family.get(name)
    x = (rng.standard_normal(shape) + 0.5).astype(np_dt)
    dy = rng.standard_normal(shape).astype(np_dt)
    for p in PS:
        if (p == 1.0 and not spec.p_one) or (p == 0.0 and not spec.p_zero):
            continue
        ours, theirs = _pair(name, p, options, seed)
        for _ in range(2):  # two calls: the counters move alike
            xt = torch.from_numpy(x.copy()).requires_grad_()
            yt = theirs(xt)
            yt.backward(torch.from_numpy(dy))
            yn = ours.forward(x)
            assert _same(yt.detach().numpy(), yn), (p, "forward")
            assert _same(xt.grad.numpy(), ours.backward(dy)), (p, "backward")
        assert ours.counter == theirs.counter == (2 if p > 0 else 0)
        ours.eval(), theirs.eval()
        assert _same(theirs(torch.from_numpy(x)).numpy(), ours.forward(x)), (p, "eval")


@pytest.mark.parametrize("p", [0.1, 0.3, 0.4])
def test_kept_values_are_x_times_float32_scale_exactly_in_both_engines(p, rng, seed):
    x = rng.standard_normal((64, 257)).astype(np.float32)
    s = np.float32(1 / (1 - p))
    for y in (nn.Dropout(p, seed=seed).forward(x), dt.Dropout(p, seed=seed)(torch.from_numpy(x)).numpy()):
        kept = y != 0
        assert np.array_equal(y[kept], x[kept] * s)


# -- defaults, config and signatures ----------------------------------------------------------------
@pytest.mark.parametrize("name", [s.name for s in family.specs()])
def test_same_defaults_config_and_signature(name):
    spec = family.get(name)
    n_cls, t_cls = nn_variant(spec), dt.variant(spec)
    assert n_cls.__name__ == t_cls.__name__ == spec.class_name
    n_sig, t_sig = inspect.signature(n_cls), inspect.signature(t_cls)
    for key in ["p"] + [o.name for o in spec.options]:
        assert n_sig.parameters[key].default == t_sig.parameters[key].default, key
        assert n_sig.parameters[key].kind == t_sig.parameters[key].kind, key
    if spec.kind == "noise":
        assert n_cls().config() == t_cls().config() == {"p": spec.p_default, **{o.name: o.default
                                                                                 for o in spec.options}}
        assert n_cls.__doc__.split("Args:")[0] == t_cls.__doc__.split("Args:")[0]  # one text
    elif spec.kind == "weights":
        n, t = nn.DropConnect(3, 2), dt.DropConnect(3, 2)
        assert {k: n.config()[k] for k in ("p", "per", "inference", "samples")} == \
               {k: t.config()[k] for k in ("p", "per", "inference", "samples")}
        assert dt.DropConnectLinear is dt.DropConnect
    else:
        assert nn.ConcreteDropout().config() == dt.ConcreteDropout().config()


# -- errors ----------------------------------------------------------------------------------------------
def _error(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the type and the message are what is compared
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize("name,options,shape,bad", [c for c in _params() if c[3] is not None],
                         ids=[i for i, c in zip(_ids(), _params()) if c[3] is not None])
def test_same_error_for_a_wrong_rank_in_every_mode_and_at_every_p(name, options, shape, bad):
    for p in (0.0, 0.5):
        for training in (True, False):
            ours, theirs = _pair(name, p, options, 0)
            ours.train(training), theirs.train(training)
            got_n = _error(lambda: ours.forward(np.ones(bad, np.float32)))
            got_t = _error(lambda: theirs(torch.ones(bad)))
            assert got_n is not None and got_n[0] is not None and issubclass(got_n[0], ValueError)
            assert got_n[1] == got_t[1] and issubclass(got_t[0], ValueError), (p, training)
            assert f"{family.get(name).class_name}: `" in got_n[1]


@pytest.mark.parametrize("name", [s.name for s in family.specs()])
@pytest.mark.parametrize("p", [-0.1, 1.5, 1.0, 0.0, "a"])
def test_same_error_for_a_bad_p(name, p):
    spec = family.get(name)
    if spec.kind == "noise":
        got = [_error(lambda: nn_variant(spec)(p)), _error(lambda: dt.variant(spec)(p))]
    elif spec.kind == "weights":
        got = [_error(lambda: nn.DropConnect(3, 2, p)), _error(lambda: dt.DropConnect(3, 2, p))]
    else:
        got = [_error(lambda: nn.ConcreteDropout(p=p)), _error(lambda: dt.ConcreteDropout(p=p))]
    legal = isinstance(p, float) and 0 < p < 1 or (p == 0.0 and spec.p_zero) or (p == 1.0 and spec.p_one)
    if legal:
        assert got == [None, None]
    else:
        assert got[0] is not None and got[0] == got[1]
        assert got[0][1].startswith(f"{spec.class_name}: `p` must be")


def test_gaussian_refuses_p_one_in_both_engines_and_alpha_accepts_it():
    msg = r"GaussianDropout: `p` must be a probability in \[0, 1\); got p=1.0. The noise variance"
    for make in (nn.GaussianDropout, dt.GaussianDropout):
        with pytest.raises(ValueError, match=msg):
            make(1.0)
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert np.all(nn.AlphaDropout(1.0, seed=0).forward(x) == 0)
    assert bool((dt.AlphaDropout(1.0, seed=0)(torch.from_numpy(x)) == 0).all())


# -- DropConnect and ConcreteDropout ------------------------------------------------------------------------
@pytest.mark.parametrize("per", ["batch", "example"])
@pytest.mark.parametrize("p", PS)
def test_dropconnect_one_mask_in_both_engines(per, p, seed):
    n_in, n_out = 5, 3
    ours = nn.DropConnect(n_in, n_out, p, per=per, seed=seed, dtype=np.float64)
    theirs = dt.DropConnect(n_in, n_out, p, per=per, seed=seed, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.value.T))
        theirs.bias.copy_(torch.from_numpy(ours.bias.value))
    x = np.eye(n_in)  # row i of the output is row i of the masked weights plus the bias: exact
    for _ in range(2):
        yt = theirs(torch.from_numpy(x)).detach().numpy()
        assert np.array_equal(yt, ours.forward(x))
    y = np.random.default_rng(seed).standard_normal((4, n_in))
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(theirs(torch.from_numpy(y)).detach().numpy(), ours.forward(y), rtol=1e-12,
                               atol=1e-12)


def test_dropconnect_gaussian_inference_agrees_and_never_moves_the_stream(rng, seed):
    ours = nn.DropConnect(4, 3, 0.4, inference="gaussian", samples=7, activation=nn.ReLU(), seed=seed,
                          dtype=np.float64).eval()
    theirs = dt.DropConnect(4, 3, 0.4, inference="gaussian", samples=7, activation=torch.nn.ReLU(), seed=seed,
                            dtype=torch.float64).eval()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.value.T))
        theirs.bias.copy_(torch.from_numpy(ours.bias.value))
    x = rng.standard_normal((6, 4))
    y = ours.forward(x)
    np.testing.assert_allclose(theirs(torch.from_numpy(x)).detach().numpy(), y, rtol=1e-12, atol=1e-12)
    assert ours.counter == theirs.counter == 0 and np.array_equal(ours.forward(x), y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_concrete_dropout_same_noise_and_gradients(dtype, rng, seed):
    np_dt, t_dt = DTYPES[dtype]
    ours, theirs = nn.ConcreteDropout(p=0.3, seed=seed), dt.ConcreteDropout(p=0.3, seed=seed)
    x = rng.standard_normal((5, 6)).astype(np_dt)
    dy = rng.standard_normal((5, 6)).astype(np_dt)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = theirs(xt)
    yt.backward(torch.from_numpy(dy))
    ours.zero_grad()
    ours.p_logit.grad[...] = 0
    yn = ours.forward(x)
    dx = ours.backward(dy)
    assert _same(yt.detach().numpy(), yn) and _same(xt.grad.numpy(), dx)
    # the dropout's own dp_logit (nn's backward adds the regulariser's too: take it out)
    reg = ours.spec.penalty_logit_grad(float(ours.p_logit.value[0]), 0.0, ours.input_dim, 1e-6, 1e-5)
    assert float(theirs.p_logit.grad) == pytest.approx(float(ours.p_logit.grad[0]) - reg, rel=1e-6, abs=1e-9)
    assert theirs.input_dim == ours.input_dim == 6
    assert float(theirs.regularization_loss()) == pytest.approx(ours.regularization_loss(), rel=1e-6)


# -- the made-up variant: one spec and one registry line ----------------------------------------------------
class _RowGaussianSpec(Spec):
    """Made up for this test: one Gaussian factor per row, shared by the row's elements."""

    name, class_name = "row_gaussian_dropout", "RowGaussianDropout"
    bernoulli = False
    p_one = False
    layout = "(N, *)"
    options = (Option("shift", 0.0, lambda where, v: float(v), "(float): added in training. Default 0."),)
    summary = "A made-up variant."

    def noise_shape(self, where, options, shape):
        if len(shape) < 1:
            raise rank_error(where, shape, self.layout)
        return (shape[0],) + (1,) * (len(shape) - 1)

    def noise(self, options, p, draw, shape, dtype):
        sigma = (p / (1 - p)) ** 0.5
        shift = np.full(shape, options["shift"], dtype) if options["shift"] else None
        return (1.0 + sigma * draw.normal(shape)).astype(dtype), shift


@pytest.fixture
def made_up():
    spec = family.register(_RowGaussianSpec())
    yield spec
    family.unregister(spec)


def test_a_made_up_variant_works_in_both_engines_and_model_files(made_up, tmp_path, rng, seed):
    Ours, Theirs = nn.family.variant("row_gaussian_dropout"), dt.variant("RowGaussianDropout")
    assert Ours.__name__ == Theirs.__name__ == "RowGaussianDropout"
    ours, theirs = Ours(0.3, shift=0.5, seed=seed), Theirs(0.3, shift=0.5, seed=seed)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = theirs(xt)
    yt.backward(torch.ones_like(yt))
    yn = ours.forward(x)
    assert _same(yt.detach().numpy(), yn) and _same(xt.grad.numpy(), ours.backward(np.ones_like(x)))
    assert bool(((yn - 0.5) / x).std(axis=1).max() < 1e-5)  # one factor per row
    assert ours.config() == theirs.config() == {"p": 0.3, "shift": 0.5}
    assert nn.mc._batch_independent(ours)
    model = nn.Sequential(nn.Dense(4, 4), Ours(0.2), nn.Dense(4, 2), seed=seed)
    model.forward(x)
    model.save(tmp_path / "m.npz")
    twin = nn.load(tmp_path / "m.npz")
    assert type(twin[1]) is Ours and twin[1].config() == model[1].config()
    assert twin[1].rng.state() == model[1].rng.state()
    assert np.array_equal(twin.forward(x), model.forward(x))  # the next noise too


# -- the NumPy engine's faults (issue 14) --------------------------------------------------------------------
@pytest.mark.parametrize("make,shape", [
    (lambda p: nn.Dropout2d(p), (2, 3, 4)), (lambda p: nn.Dropout1d(p), (2, 3)),
    (lambda p: nn.Dropout3d(p), (2, 3, 4, 5)), (lambda p: nn.LockedDropout(p), (2, 3)),
    (lambda p: nn.DropBlock2d(p, 3), (2, 3, 4)), (lambda p: nn.Dropout(p, axes=5), (2, 3)),
])
def test_rank_errors_do_not_depend_on_the_mode_or_p(make, shape):
    for layer in (make(0.5).eval(), make(0.0), make(0.0).eval()):
        with pytest.raises(ValueError, match=r"`(x|axes)` must be"):
            layer.forward(np.ones(shape, np.float32))


def test_a_misplaced_layer_fails_at_the_first_epoch_of_a_rate_ramp():
    model = nn.Sequential(nn.Dense(4, 3), nn.Dropout2d(0.0), nn.Dense(3, 2), seed=0)
    X, y = np.ones((8, 4), np.float32), np.zeros(8, np.int64)
    with pytest.raises(ValueError, match=r"Dropout2d: `x` must be a 4-D array"):
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.1), epochs=2, verbose=False,
                  callbacks=[nn.LinearRamp(0.0, 0.2, 3)])


@pytest.mark.parametrize("name,options,shape,bad", _params(), ids=_ids())
def test_float16_computes_in_float32_and_returns_float16(name, options, shape, bad, rng, seed):
    x = (rng.standard_normal(shape) + 0.5).astype(np.float16)
    a, b = nn_variant(name)(0.3, seed=seed, **options), nn_variant(name)(0.3, seed=seed, **options)
    y = a.forward(x)
    assert y.dtype == np.float16 and y.shape == x.shape
    ref = b.forward(x.astype(np.float32))
    if family.get(name).bernoulli:  # as PyTorch: (x.astype(float32) * float32(s)).astype(float16)
        assert np.array_equal(y, ref.astype(np.float16))


def test_integer_input_is_computed_in_float32():
    for layer in (nn.Dropout(0.5, seed=0), nn.Dropout2d(0.5, seed=0), nn.GaussianDropout(0.3, seed=0)):
        y = layer.forward(np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2))
        assert y.dtype == np.float32
        assert layer.backward(np.ones((2, 3, 2, 2), np.int64)).dtype == np.float32


def test_dropconnect_gaussian_inference_at_p_one_is_the_mean_layer(rng):
    layer = nn.DropConnect(6, 2, p=1.0, inference="gaussian", activation=nn.ReLU(), seed=0, dtype=np.float64)
    x = rng.standard_normal((3, 6))
    assert np.all(layer.forward(x) == np.maximum(layer.bias.value, 0))  # every weight dropped in training
    y = layer.eval().forward(x)  # was a ZeroDivisionError
    assert np.array_equal(y, np.maximum(x @ layer.weight.value + layer.bias.value, 0))


def _dc_model(seed):
    return nn.Sequential(nn.DropConnect(4, 8, 0.3, inference="gaussian", samples=5, activation=nn.Tanh()),
                         nn.Dense(8, 3), seed=seed)


def test_evaluation_never_changes_what_training_draws(tmp_path, seed):
    data = np.random.default_rng(seed)
    X, y = data.standard_normal((40, 4)).astype(np.float32), data.integers(0, 3, 40)
    Xv, yv = data.standard_normal((10, 4)).astype(np.float32), data.integers(0, 3, 10)

    def fit(model, epochs, **kw):
        return model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.1), epochs=epochs, batch_size=8,
                         verbose=False, **kw)["loss"]

    plain = fit(_dc_model(seed), 2)
    assert fit(_dc_model(seed), 2, validation_data=(Xv, yv)) == plain
    m = _dc_model(seed)
    first = fit(m, 1)
    m.predict(Xv)
    m.save(tmp_path / "m.npz")
    second = fit(nn.load(tmp_path / "m.npz"), 1)
    assert first + second == plain


def test_concrete_regulariser_gradient_once_per_pass_when_reused(rng, seed):
    from droplab.nn.gradcheck import check_gradients

    cd = nn.ConcreteDropout(nn.Dense(4, 4, dtype=np.float64), weight_regularizer=0.05, dropout_regularizer=0.02,
                            p=0.3, seed=seed)
    model = nn.Sequential(cd, nn.Tanh(), cd)
    report = check_gradients(model, rng.standard_normal((5, 4)))
    assert report.ok, report


def test_mc_stacking_follows_the_specs_row_answer():
    from droplab.nn.mc import _batch_independent

    assert _batch_independent(nn.Dropout(0.5)) and _batch_independent(nn.Dropout2d(0.5))
    assert not _batch_independent(nn.Dropout(0.5, axes=0)) and not _batch_independent(nn.Dropout(0.5, axes=-2))
    assert not _batch_independent(nn.DropPath(0.5, mode="batch")) and not _batch_independent(nn.DropBlock2d())
    assert not _batch_independent(nn.DropConnect(3, 2)) and _batch_independent(nn.DropConnect(3, 2, per="example"))
    assert dt.Dropout(0.5, axes=0).rows_independent is False and dt.Dropout2d().rows_independent is True


# -- one owner, one direction -----------------------------------------------------------------------------------
def test_no_file_outside_the_rng_object_touches_its_fields():
    offenders = []
    for path in list((ROOT / "src").rglob("*.py")) + list((ROOT / "tests").rglob("*.py")):
        if (path.name == "_rng.py" and path.parent.name == "droplab") or path.name == "test_family_parity.py":
            continue
        text = path.read_text()
        if re.search(r"\._key\b|\._counter\b|\.key, \w+\.counter|\bkey = .*\._key", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_library_never_imports_the_lab():
    for path in (ROOT / "src" / "droplab" / "torch").rglob("*.py"):
        assert not re.search(r"droplab\.lab|from droplab import .*\blab\b", path.read_text()), path


def test_stream_operations():
    s = _rng.NoiseStream.from_seed(3)
    d = s.next()
    assert s.counter == 1 and s.at(0) == d and s.next() != d
    s.seek(0)
    assert s.next() == d
    c1, c2 = s.child(), s.child()
    assert len({str(x.state()) for x in (s, c1, c2)}) == 3
    assert s.substream(1).state() == s.substream(1).state() != s.substream(2).state()
    with pytest.raises(ValueError, match=r"NoiseStream: `key` must be two integers in \[0, 2\*\*32\)"):
        _rng.NoiseStream.from_state({"key": [1, 2**40], "counter": 0})
    assert np.array_equal(d.keep_mask((3, 4), 0.5), kernels.keep_mask((3, 4), 0.5, *d.call(lambda k, c: (k, c))))
