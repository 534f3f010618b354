"""droplab.torch: PyTorch's own Dropout* behaviours, exact invariants, parity with the NumPy
engine, gradients, memory, MC dropout, patching, schedules and `compare --backend torch`.

Bounds: |rate - p| <= 5 * sqrt(p (1 - p) / n), n = INDEPENDENT draws (elements, channels,
samples); a 5-sigma two-sided bound fails by chance with probability about 6e-7 per check.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import droplab.torch as dt  # noqa: E402
from droplab import family, kernels, nn  # noqa: E402
from droplab.kernels import _reference  # noqa: E402
from droplab.torch import _core  # noqa: E402
from droplab.torch import functional as F  # noqa: E402

Z = 5.0  # sigmas; false-failure probability ~6e-7 per bound

# every class that PyTorch's suite checks, with an input of the rank it expects
TORCH_LIKE = [
    (dt.Dropout, (4, 6, 8, 10)),
    (dt.Dropout1d, (4, 6, 40)),
    (dt.Dropout2d, (4, 6, 8, 10)),
    (dt.Dropout3d, (4, 6, 4, 5, 6)),
    (dt.AlphaDropout, (4, 6, 8, 10)),
]
ALL_MODULES = TORCH_LIKE + [
    (dt.GaussianDropout, (4, 6, 8)),
    (dt.DropPath, (4, 6, 8)),
    (dt.LockedDropout, (4, 6, 8)),
    (dt.DropBlock2d, (4, 6, 8, 10)),
]


def bound(p, n):
    return Z * math.sqrt(p * (1 - p) / n)


# -- import without torch ---------------------------------------------------------------------
def test_droplab_imports_without_torch_and_droplab_torch_says_how_to_install():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import droplab, droplab.nn, droplab.lab.compare, droplab.cli\n"
        "try:\n    import droplab.torch\nexcept ImportError as e:\n    print('ERR', e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # droplab is not on a package index: the hint installs a CPU torch, then the extra from the clone
    assert "ERR droplab.torch needs PyTorch" in r.stdout and "'.[torch]'" in r.stdout and "whl/cpu" in r.stdout


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,shape", ALL_MODULES)
@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_invalid_p_raises_value_error(cls, shape, p):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: `p` must be a probability in \[0, 1\]?\)?; got p={p}"):
        cls(p)


def test_other_bad_arguments_raise_one_line_errors():
    with pytest.raises(TypeError, match=r"Dropout: `p` must be a real number; got p='a'"):
        dt.Dropout("a")
    with pytest.raises(ValueError, match=r"GaussianDropout: `p` must be a probability in \[0, 1\); got p=1"):
        dt.GaussianDropout(1.0)
    with pytest.raises(ValueError, match=r"Dropout: `generator` must be None when `seed` is given"):
        dt.Dropout(0.5, seed=1, generator=torch.Generator())
    with pytest.raises(TypeError, match=r"Dropout: `generator` must be a torch.Generator or None"):
        dt.Dropout(0.5, generator=3)
    with pytest.raises(ValueError, match=r"Dropout: `seed` must be a non-negative integer; got seed=-1"):
        dt.Dropout(0.5, seed=-1)
    with pytest.raises(TypeError, match=r"Dropout: `x` must be a floating-point tensor; got x='tensor of dtype"):
        dt.Dropout(0.5)(torch.ones(3, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"Dropout: `x` must be a torch.Tensor; got x='ndarray'"):
        dt.Dropout(0.5)(np.ones(3))
    with pytest.raises(ValueError, match=r"Dropout: `axes` must be axes of the 2-D input"):
        dt.Dropout(0.5, axes=(3,))(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"DropPath: `mode` must be one of 'row', 'batch'; got mode='rows'"):
        dt.DropPath(0.1, mode="rows")
    with pytest.raises(ValueError, match=r"LockedDropout: `x` must be a 3-D array \(N, T, F\); got x='array"):
        dt.LockedDropout(0.5)(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"DropBlock2d: `x` must be a 4-D array \(N, C, H, W\); got x='array of "
                                         r"shape \(3, 4, 4\)'. Add a batch axis"):
        dt.DropBlock2d(0.1, 3)(torch.ones(3, 4, 4))
    with pytest.raises(ValueError, match=r"DropBlock2d: `block_size` must be a positive integer; got block_size=0"):
        dt.DropBlock2d(0.1, 0)
    with pytest.raises(ValueError, match=r"ConcreteDropout: `p` must be a probability in \(0, 1\); got p=0.0"):
        dt.ConcreteDropout(p=0.0)
    with pytest.raises(TypeError, match=r"ConcreteDropout: `layer` must be a torch.nn.Module or None"):
        dt.ConcreteDropout(3)
    with pytest.raises(ValueError, match=r"dropout: `counter` must be a non-negative integer; got counter=-1"):
        F.dropout(torch.ones(3), 0.5, counter=-1)
    layer = dt.Dropout(0.5)
    with pytest.raises(ValueError, match=r"Dropout: `p` must be a probability in \[0, 1\]; got p=2"):
        layer.p = 2


@pytest.mark.parametrize("cls,good,bad", [
    (dt.Dropout1d, "3-D array \\(N, C, L\\)", (2, 3, 4, 5)),
    (dt.Dropout2d, "4-D array \\(N, C, H, W\\)", (2, 3)),
    (dt.Dropout3d, "5-D array \\(N, C, D, H, W\\)", (2, 3, 4)),
])
def test_channel_dropout_rejects_wrong_rank_even_in_eval(cls, good, bad):
    for layer in (cls(0.5), cls(0.5).eval(), cls(0.0)):
        with pytest.raises(ValueError, match=rf"{cls.__name__}: `x` must be a {good}; got x='array of shape"):
            layer(torch.ones(bad))


# -- PyTorch's suite: eval, p = 0, empty, channels, mean, layout, unbatched ---------------------
@pytest.mark.parametrize("cls,shape", ALL_MODULES)
def test_eval_and_p0_are_identity(cls, shape, seed):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    layer = cls(0.3, seed=seed).eval()
    assert layer(x) is x
    assert cls(0.0, seed=seed)(x) is x
    assert repr(layer).startswith("droplab." + cls.__name__ + "(p=0.3") and str(layer)


@pytest.mark.parametrize("cls,shape", ALL_MODULES)
def test_empty_tensors_keep_their_shape(cls, shape):
    empty = (0,) + shape[1:]
    x = torch.ones(empty, requires_grad=True)
    y = cls(0.5, seed=0)(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("cls,shape", [c for c in TORCH_LIKE if c[0] not in (dt.Dropout, dt.AlphaDropout)])
def test_whole_channels_are_dropped(cls, shape, seed):
    x = torch.ones(shape)
    y = cls(0.5, seed=seed)(x)
    per_channel = (y != 0).flatten(2).sum(-1)
    channel_numel = math.prod(shape[2:])
    assert bool(((per_channel == 0) | (per_channel == channel_numel)).all())


@pytest.mark.parametrize("cls,shape", [c for c in TORCH_LIKE if c[0] is not dt.AlphaDropout])
@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_output_and_gradient_means_are_preserved(cls, shape, memory_format, seed):
    # PyTorch's _test_dropout: x = 1 - p, so y is 0 or 1 and mean(y) is the keep fraction
    p = 0.2
    fmt = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}[memory_format]
    if memory_format == "channels_last" and len(shape) != 4:
        pytest.skip("channels_last is 4-D")
    x = torch.full(shape, 1 - p)
    xv = x.clone(memory_format=fmt).requires_grad_()
    layer = cls(p, seed=seed)
    y = layer(xv)
    assert y.is_contiguous(memory_format=fmt)
    draws = math.prod(shape) if cls is dt.Dropout else shape[0] * shape[1]  # independent draws
    keep = 1 - p
    assert abs(float(y.detach().mean()) - keep) <= bound(p, draws) * 1.0 + 1e-6
    y.backward(x)
    assert xv.grad.is_contiguous(memory_format=fmt)
    assert abs(float(xv.grad.mean()) - keep) <= bound(p, draws) + 1e-6


@pytest.mark.parametrize("cls", [dt.Dropout, dt.Dropout2d, dt.AlphaDropout])
@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_discontiguous_input_keeps_values_and_layout(cls, memory_format):
    # PyTorch's _test_dropout_discontiguous: p ~ 0 keeps every element; layout follows the input
    fmt = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}[memory_format]
    for p in (0.0, 1e-10):
        inp = torch.ones(2, 3, 3, 3)
        disc = torch.empty(2, 3, 3, 6).to(memory_format=fmt)[..., ::2]
        disc.copy_(inp)
        out = cls(p, seed=0)(disc)
        if p != 0:
            assert out.is_contiguous(memory_format=fmt)
        assert torch.equal(out, disc)


def test_permuted_and_sliced_inputs_keep_stride_order_and_mean(seed):
    # PyTorch's _test_dropout_stride_mean_preserve, on a subset of permutations
    inp = torch.ones(2, 3, 4, 5)
    for perm in [(0, 1, 2, 3), (3, 2, 1, 0), (0, 2, 3, 1), (1, 3, 0, 2)]:
        inv = [perm.index(i) for i in range(4)]
        for shift in [(0, 0, 0, 0), (1, 1, 0, 0)]:
            for p in (1e-10, 0.3, 0.5):
                x = inp.permute(perm).contiguous().permute(inv)[shift[0]:, shift[1]:]
                out = dt.Dropout(p, seed=seed)(x)
                assert out.permute(perm).is_contiguous()
                if p == 1e-10:
                    assert torch.equal(out, x)
                else:
                    assert not torch.equal(out, x)
                    assert torch.equal((out != 0).to(x.dtype) * x * (1 / (1 - p)), out)


@pytest.mark.parametrize("cls,batched", [(dt.Dropout1d, (1, 5, 20)), (dt.Dropout2d, (1, 5, 4, 4)),
                                         (dt.Dropout3d, (1, 5, 2, 3, 3)), (dt.DropBlock2d, (1, 5, 4, 4))])
def test_unbatched_channel_input_is_refused_with_the_fix(cls, batched, seed):
    # every unbatched rank is also a batched rank of a neighbouring layout: refused, never guessed
    x = torch.randn(batched, generator=torch.Generator().manual_seed(seed))
    cls(0.5, seed=seed)(x)
    with pytest.raises(ValueError, match=rf"{cls.__name__}: `x` must be a {x.ndim}-D array .*x\[None\]"):
        cls(0.5, seed=seed)(x.squeeze(0))


@pytest.mark.parametrize("cls,shape,draws", [
    (dt.Dropout, (200, 500), 200 * 500), (dt.Dropout1d, (400, 250, 3), 400 * 250),
    (dt.Dropout2d, (400, 250, 2, 2), 400 * 250), (dt.Dropout3d, (400, 250, 1, 2, 2), 400 * 250),
    (dt.DropPath, (20000, 4), 20000), (dt.LockedDropout, (400, 7, 250), 400 * 250),
])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drop_rate_within_5_sigma(cls, shape, draws, p, seed):
    y = cls(p, seed=seed)(torch.ones(shape))
    rate = float((y == 0).double().mean())  # each draw covers equally many elements
    assert abs(rate - p) <= bound(p, draws)


@pytest.mark.parametrize("cls,shape", TORCH_LIKE + [(dt.DropPath, (4, 6)), (dt.LockedDropout, (3, 4, 5))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_p1_gives_zeros_and_finite_zero_gradients(cls, shape, dtype):
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(1)).requires_grad_()
    y = cls(1.0, seed=0)(x)
    assert y.dtype == dtype and bool((y == 0).all())
    y.sum().backward()
    assert bool(torch.isfinite(x.grad).all()) and bool((x.grad == 0).all())


# -- exact invariants ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_outputs_are_zero_or_scaled_input_and_same_mask_every_dtype(dtype, seed):
    x = torch.randn(64, 33, generator=torch.Generator().manual_seed(seed)).to(dtype)
    y = dt.Dropout(0.3, seed=seed)(x)
    scaled = x * kernels.keep_scale(0.3)
    assert y.dtype == dtype and bool(((y == 0) | (y == scaled)).all())
    expected_keep = torch.from_numpy(_core.make_stream("t", seed, None).next().keep_mask((64, 33), 0.3))
    assert torch.equal((y != 0) | (x == 0), expected_keep | (x == 0))


def test_same_seed_same_masks_different_seeds_differ_and_generators_reproduce(seed):
    x = torch.ones(1000)
    a, b, c = dt.Dropout(0.5, seed=seed), dt.Dropout(0.5, seed=seed), dt.Dropout(0.5, seed=seed + 1)
    ya, yb, yc = a(x), b(x), c(x)
    assert torch.equal(ya, yb) and not torch.equal(ya, yc)
    assert not torch.equal(a(x), ya)  # the counter moves on
    a.counter = 0
    assert torch.equal(a(x), ya)  # and setting it replays
    g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    assert torch.equal(dt.Dropout(0.5, generator=g1)(x), dt.Dropout(0.5, generator=g2)(x))


def test_rng_state_carries_key_and_counter_beside_the_state_dict(seed):
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), dt.Dropout(0.5, seed=seed))
    x = torch.ones(3, 4)
    net(x)
    state, rng = net.state_dict(), dt.get_rng_state(net)
    assert list(state) == ["0.weight", "0.bias"]  # the keys of the same model with torch.nn.Dropout
    twin = torch.nn.Sequential(torch.nn.Linear(4, 4), dt.Dropout(0.5, seed=seed + 7))
    twin.load_state_dict(state)
    dt.set_rng_state(twin, rng)
    assert torch.equal(twin(x), net(x))
    # a checkpoint of the earlier format (the stream as `_extra_state`) still loads strictly
    old = {**state, "1._extra_state": dt.get_rng_state(net)["modules"]["1"]}
    twin.load_state_dict(old)
    assert torch.equal(twin(x), net(x))


def test_torch_philox_matches_the_reference_bits(seed):
    key = tuple(int(k) for k in np.random.default_rng(seed).integers(0, 2**32, 2))
    for counter in (0, 5, 2**40 + 3):
        got = _core.philox_words(1001, key, counter).numpy()
        assert np.array_equal(got, _reference.words(1001, key, counter).astype(np.int64))
        # the device path's 32-bit thresholds cut the same words as the kernels, edges included
        for p in (0.0, 2.0**-32, 0.1, 0.3, 0.4, 1 - 2.0**-32, 1.0):
            assert np.array_equal((got >= kernels.threshold(p)), kernels.keep_mask(1001, p, key, counter))


def test_classic_dropout_scales_at_inference(seed):
    x = torch.ones(10_000)
    layer = dt.Dropout(0.25, inverted=False, seed=seed)
    y = layer(x)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(layer.eval()(x), x * (1 - 0.25))
    assert repr(layer) == "droplab.Dropout(p=0.25, inverted=False)"


def test_extra_repr_is_readable():
    # droplab's modules name themselves "droplab.<Class>": print(model) tells them from torch.nn's
    assert repr(dt.Dropout(0.5, axes=(2, 3))) == "droplab.Dropout(p=0.5, axes=(2, 3))"
    assert repr(dt.Dropout2d(0.2)) == "droplab.Dropout2d(p=0.2)"
    assert repr(dt.DropPath(0.1, mode="batch")) == "droplab.DropPath(p=0.1, mode='batch')"
    assert repr(dt.DropBlock2d(0.1, 5)) == "droplab.DropBlock2d(p=0.1, block_size=5)"
    assert repr(dt.LockedDropout(0.3, batch_first=False)) == "droplab.LockedDropout(p=0.3, batch_first=False)"
    assert "p=0.5" in repr(dt.DropConnectLinear(3, 2, 0.5))


# -- memory: no mask saved ------------------------------------------------------------------
def _packed(fn):
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        y = fn()
    return y, packed


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_fast_path_saves_no_tensor_for_backward(dtype, seed):
    x = torch.randn(256, 128, dtype=dtype).requires_grad_()
    y, packed = _packed(lambda: dt.Dropout(0.5, seed=seed)(x))
    assert packed == [] and type(y.grad_fn).__name__ == "NoiseFunctionBackward"
    _, theirs = _packed(lambda: torch.nn.Dropout(0.5)(x))
    assert sum(t.numel() for t in theirs) >= x.numel()  # PyTorch keeps a mask per element
    # broadcast masks (channel dropout) save nothing either: backward regenerates them
    _, packed2 = _packed(lambda: dt.Dropout2d(0.5, seed=seed)(x.view(16, 16, 8, 16)))
    assert packed2 == []
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad, (y != 0).to(dtype) * kernels.keep_scale(0.5))


def test_large_outputs_recycle_memory_but_never_share_it(seed):
    """Outputs of 32 MiB and more come from the kernels' pool: a live output (or gradient)
    never shares memory with another, and a dead one's buffer is reused."""
    from droplab.kernels import _pool

    if kernels.backend() != "numba":
        pytest.skip("the pool serves the compiled kernels")
    n = _pool.MIN_BYTES // 4
    x = (torch.rand(n) + 0.5).requires_grad_()  # no exact zeros (randn has some in 8M draws): y2 != 0 is the mask
    d = dt.Dropout(0.5, seed=seed)
    y1, y2 = d(x), d(x)
    assert y1.data_ptr() != y2.data_ptr() and not torch.equal(y1, y2)
    y2.backward(torch.ones(n))
    ptrs = {y1.data_ptr(), y2.data_ptr(), x.grad.data_ptr()}
    assert len(ptrs) == 3
    assert torch.equal(x.grad, (y2 != 0).float() * 2.0)
    ptr = y1.data_ptr()
    del y1
    assert _pool.free_bytes() >= 4 * n
    y3 = d(x)
    assert y3.data_ptr() == ptr  # the freed buffer came back
    assert torch.equal(x.grad, (y2 != 0).float() * 2.0)  # nothing live was overwritten


# -- parity with the NumPy engine --------------------------------------------------------------
PARITY = [  # (torch module factory, NumPy layer factory, shape)
    (lambda s: dt.Dropout(0.3, seed=s), lambda s: nn.Dropout(0.3, seed=s), (32, 70)),
    (lambda s: dt.Dropout(0.3, inverted=False, seed=s), lambda s: nn.Dropout(0.3, inverted=False, seed=s), (32, 70)),
    (lambda s: dt.Dropout(0.4, axes=(0, 2), seed=s), lambda s: nn.Dropout(0.4, axes=(0, 2), seed=s), (8, 9, 10)),
    (lambda s: dt.Dropout1d(0.3, seed=s), lambda s: nn.Dropout(0.3, axes=2, seed=s), (8, 16, 12)),
    (lambda s: dt.Dropout2d(0.3, seed=s), lambda s: nn.Dropout(0.3, axes=(2, 3), seed=s), (8, 16, 5, 6)),
    (lambda s: dt.Dropout3d(0.3, seed=s), lambda s: nn.Dropout(0.3, axes=(2, 3, 4), seed=s), (4, 6, 3, 4, 5)),
    (lambda s: dt.LockedDropout(0.5, seed=s), lambda s: nn.Dropout(0.5, axes=1, seed=s), (8, 11, 16)),
    (lambda s: dt.DropPath(0.5, seed=s), lambda s: nn.Dropout(0.5, axes=(1, 2), seed=s), (64, 3, 5)),
]


@pytest.mark.parametrize("make_torch,make_numpy,shape", PARITY)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_engine_and_torch_give_the_same_outputs_and_gradients(make_torch, make_numpy, shape, dtype, rng,
                                                                    seed):
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    ours, theirs = make_torch(seed), make_numpy(seed)
    for _ in range(2):  # two calls: the counters advance alike
        xt = torch.from_numpy(x.copy()).requires_grad_()
        yt = ours(xt)
        yt.backward(torch.from_numpy(dy))
        yn = theirs.forward(x)
        assert np.array_equal(yt.detach().numpy(), yn)
        assert np.array_equal(xt.grad.numpy(), theirs.backward(dy))
    ours.eval(), theirs.eval()
    assert np.array_equal(ours(torch.from_numpy(x)).numpy(), theirs.forward(x))


def test_training_run_matches_the_numpy_engine_step_for_step():
    from droplab import data
    from droplab.lab.experiment import RunConfig, train_run
    from droplab.lab.torch_runner import train_run as torch_run

    ds = data.load("spiral")
    cfg = RunConfig(hidden=(16,), epochs=2, batch_size=100, lr=0.01)
    rec_t, model = torch_run(ds, cfg, p=0.3, seed=0)
    rec_n, _ = train_run(ds, cfg, p=0.3, seed=0)
    assert rec_t.keys() >= {"p", "seed", "metrics", "history"} and rec_t["backend"] == "torch"
    assert rec_t["metrics"].keys() == rec_n["metrics"].keys()
    # same initial weights, masks and batches: only float rounding differs
    np.testing.assert_allclose(rec_t["history"]["loss"], rec_n["history"]["loss"], rtol=1e-4)
    assert model.predict(ds.X_val).shape == (len(ds.X_val), ds.classes)


# -- gradients -------------------------------------------------------------------------------------
GRAD_CASES = [
    lambda x: F.dropout(x, 0.4, seed=3, counter=2),
    lambda x: F.dropout(x, 0.4, axes=1, seed=3),
    lambda x: F.dropout2d(x.reshape(2, 3, 2, 2), 0.5, seed=3),
    lambda x: F.alpha_dropout(x, 0.3, seed=3),
    lambda x: F.gaussian_dropout(x, 0.3, seed=3),
    lambda x: F.drop_path(x, 0.5, seed=3),
    lambda x: F.drop_block2d(x.reshape(1, 2, 3, 4), 0.3, 2, seed=3),
    lambda x: F.locked_dropout(x.reshape(2, 3, 4), 0.5, seed=3),
]


@pytest.mark.parametrize("fn", GRAD_CASES)
def test_float64_gradcheck_with_the_mask_frozen(fn, rng):
    x = torch.from_numpy(rng.standard_normal((6, 4))).requires_grad_()
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_dropconnect_and_concrete_gradcheck(rng, seed):
    layer = dt.DropConnectLinear(4, 3, 0.5, seed=seed, dtype=torch.float64)
    x = torch.from_numpy(rng.standard_normal((5, 4))).requires_grad_()

    def f(x, w):
        layer.counter = 0
        layer.weight.data = w.detach()
        return layer(x)

    assert torch.autograd.gradcheck(lambda x: f(x, layer.weight.detach()), (x,), eps=1e-6, atol=1e-8, rtol=1e-6)
    layer.counter = 0
    y = layer(x)
    # the mask is drawn at the NumPy engine's (in, out) and transposed onto Linear's (out, in)
    mask = torch.from_numpy(layer.rng.at(0).keep_mask((4, 3), 0.5)).double().T * kernels.keep_scale(0.5)
    assert torch.allclose(y, x @ (layer.weight * mask).T + layer.bias)
    assert torch.equal(layer.eval()(x), torch.nn.functional.linear(x, layer.weight, layer.bias))

    cd = dt.ConcreteDropout(torch.nn.Linear(4, 2).double(), p=0.3, seed=seed)
    xc = torch.from_numpy(rng.standard_normal((5, 4)))

    def g(logit):
        cd.counter = 0
        cd.p_logit.data = logit.detach().float()
        return cd(xc).sum()
    out = g(cd.p_logit.detach())
    out.backward()
    assert cd.p_logit.grad is not None and math.isfinite(float(cd.p_logit.grad))
    reg = cd.regularization_loss()
    assert reg.shape == () and float(dt.regularization_loss(torch.nn.Sequential(cd)).detach()) == float(reg.detach())
    assert torch.equal(cd.eval()(xc), cd.layer(xc))


# -- the other variants' statistics --------------------------------------------------------------
def test_alpha_dropout_keeps_selu_mean_and_variance(seed):
    n = 400_000
    x = torch.nn.functional.selu(torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)))
    y = dt.AlphaDropout(0.2, seed=seed)(x)
    # mean: sd of the sample mean of a unit-variance variable is 1/sqrt(n); variance: sd of the
    # sample variance is about sqrt((kurtosis - 1)/n) <= sqrt(4/n) for these bounded-tail draws
    assert abs(float(y.mean())) <= Z / math.sqrt(n) + 1e-3
    assert abs(float(y.var()) - 1) <= Z * math.sqrt(4 / n) + 2e-3
    _, _, dropped = family.alpha_coefficients(0.2)
    assert bool(((y - dropped).abs() < 1e-12) .sum() > 0)


def test_gaussian_dropout_mean_and_variance(seed):
    n, p = 400_000, 0.3
    y = dt.GaussianDropout(p, seed=seed)(torch.ones(n, dtype=torch.float64))
    var = p / (1 - p)
    assert abs(float(y.mean()) - 1) <= Z * math.sqrt(var / n)
    assert abs(float(y.var()) - var) <= Z * var * math.sqrt(2 / n)  # sd of a normal's sample variance


def test_dropblock_drop_fraction_matches_its_expectation(seed):
    n, c, h, w, b, p = 64, 16, 12, 12, 3, 0.15
    layer = dt.DropBlock2d(p, b, seed=seed)
    y = layer(torch.ones(n, c, h, w))
    dropped = float((y == 0).double().mean())
    # the expectation of the 32-bit seed rate actually drawn; each of the n*c maps is one
    # independent draw of its dropped fraction (variance <= p(1-p)), so the bound uses n*c
    gamma = kernels.effective_p(family.dropblock_gamma(p, h, w, b))
    rows = np.minimum(np.minimum(np.arange(h) + 1, b), np.minimum(h - np.arange(h), b))
    cover = np.outer(rows, rows)
    expected = 1 - np.mean((1 - gamma) ** cover)
    assert abs(expected - p) < 2e-3  # gamma solves for p
    assert abs(dropped - expected) <= bound(p, n * c)
    kept = (y != 0)
    assert torch.allclose(y[kept], torch.full_like(y[kept], y.numel() / float(kept.sum())))


# -- torch.compile -------------------------------------------------------------------------------
def test_works_under_torch_compile(seed):
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), dt.Dropout(0.5, seed=seed), torch.nn.Linear(16, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(8, 16), dt.Dropout(0.5, seed=seed), torch.nn.Linear(16, 2))
    twin.load_state_dict(net.state_dict())
    compiled = torch.compile(twin, backend="eager")
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(seed))
    for _ in range(2):
        assert torch.equal(compiled(x), net(x))


# -- MC dropout, patch, schedules ----------------------------------------------------------------
def _bn_net():
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                               torch.nn.Dropout(0.3), dt.Dropout(0.2, seed=1), torch.nn.Linear(16, 3))


def test_enable_mc_dropout_switches_only_dropout_and_restores_on_error():
    net = _bn_net().eval()
    net[1].train()  # an unusual prior mode must come back too
    with pytest.raises(RuntimeError, match="boom"):
        with dt.enable_mc_dropout(net) as mc:
            assert mc.count == 2
            assert [m.training for m in net] == [False, False, False, True, True, False]
            raise RuntimeError("boom")
    assert [m.training for m in net] == [False, True, False, False, False, False]
    handle = dt.enable_mc_dropout(net)
    assert net[3].training and not net[1].training
    handle.restore()
    assert net[1].training and not net[3].training
    with pytest.raises(TypeError, match=r"enable_mc_dropout: `model` must be a torch.nn.Module"):
        dt.enable_mc_dropout("net")


def test_mc_predict_batches_passes_and_summarises(seed):
    torch.manual_seed(seed)
    net = _bn_net().eval()
    calls = []
    net[0].register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(7, 4)
    pred = dt.mc_predict(net, x, samples=30)
    assert len(calls) == 1  # all 30 passes in one forward
    assert pred.samples.shape == (30, 7, 3) and pred.mean.shape == (7, 3) and pred.std.shape == (7, 3)
    assert pred.mean.dtype == torch.float64 and torch.allclose(pred.mean.sum(1), torch.ones(7, dtype=torch.float64))
    assert bool((pred.std > 0).any())
    assert bool((pred.entropy <= math.log(3) + 1e-6).all()) and bool((pred.mutual_information >= 0).all())
    assert bool((pred.mutual_information <= pred.entropy + 1e-6).all())
    assert not net[3].training and not net[1].training  # modes restored
    calls.clear()
    dt.mc_predict(net, x, samples=30, batch_size=2)
    assert len(calls) == 4  # 2 inputs (times 30 passes) per forward, as nn.mc_predict
    probs = dt.mc_predict(net, x, samples=3, output="probs")  # outputs taken as they are
    assert torch.allclose(probs.mean, probs.samples.mean(0))
    for bad, err, msg in [({"samples": 0}, ValueError, r"mc_predict: `samples` must be a positive integer"),
                          ({"output": "prob"}, ValueError, r"mc_predict: `output` must be one of 'logits'")]:
        with pytest.raises(err, match=msg):
            dt.mc_predict(net, x, **bad)
    with pytest.raises(ValueError, match=r"mc_predict: `model` must be a model with at least one dropout module"):
        dt.mc_predict(torch.nn.Linear(4, 3), x)


def test_mc_predict_falls_back_to_one_pass_per_forward_for_batch_shared_masks():
    net = torch.nn.Sequential(dt.DropConnectLinear(4, 3, 0.5, seed=0))
    calls = []
    net[0].register_forward_hook(lambda *a: calls.append(1))
    dt.mc_predict(net, torch.randn(5, 4), samples=6)
    assert len(calls) == 6


def test_patch_replaces_torch_dropout_keeping_p_and_mode(seed):
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 8),
                              torch.nn.Sequential(torch.nn.Dropout(0.1)), torch.nn.Linear(8, 2)).eval()
    out = dt.patch(net, dt.Dropout, seed=seed)
    assert out is net
    assert isinstance(net[1], dt.Dropout) and net[1].p == 0.3 and not net[1].training
    assert isinstance(net[3][0], dt.Dropout) and net[3][0].p == 0.1
    assert net[1].rng.state() != net[3][0].rng.state()
    dt.patch(torch.nn.Sequential(torch.nn.Dropout(0.2)), dt.LockedDropout, p=0.4)
    with pytest.raises(ValueError, match=r"patch: `model` must be a model containing torch.nn dropout modules"):
        dt.patch(net, dt.Dropout)
    with pytest.raises(TypeError, match=r"patch: `variant` must be a module class"):
        dt.patch(net, 3)


def test_rate_schedules():
    assert [dt.LinearRamp(0.0, 0.4, 4)(s) for s in (0, 2, 4, 9)] == [0.0, 0.2, 0.4, 0.4]
    assert [dt.EarlyDropout(0.3, 2)(s) for s in range(4)] == [0.3, 0.3, 0.0, 0.0]
    assert dt.Constant(0.2)(7) == 0.2
    net = torch.nn.Sequential(torch.nn.Dropout(0.5), dt.Dropout2d(0.5), dt.ConcreteDropout())
    sched = dt.RateScheduler(net, dt.EarlyDropout(0.3, 1))
    assert net[0].p == 0.3 and net[1].p == 0.3
    assert sched.step() == 0.0 and net[0].p == 0.0 and net[1].p == 0.0
    with pytest.raises(ValueError, match=r"LinearRamp: `steps` must be a positive integer; got steps=0"):
        dt.LinearRamp(0, 1, 0)
    with pytest.raises(ValueError, match=r"RateScheduler: `p` must be a probability in \[0, 1\]; got p=2"):
        dt.RateScheduler(net, lambda s: 2)
    with pytest.raises(TypeError, match=r"RateScheduler: `schedule` must be a callable"):
        dt.RateScheduler(net, 0.3)
    with pytest.raises(ValueError, match=r"RateScheduler: `model` must be a model with dropout modules"):
        dt.RateScheduler(torch.nn.Linear(2, 2), dt.Constant(0.1))


# -- the lab -------------------------------------------------------------------------------------
def test_compare_backend_torch_writes_results(tmp_path):
    from droplab.cli import main

    out = tmp_path / "t"
    args = ["compare", "--dataset", "spiral", "--hidden", "16", "--epochs", "2", "--batch-size", "0",
            "--seeds", "1", "--lr", "0.05", "--quiet", "--backend", "torch", "--out", str(out)]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["backend"] == "torch" and len(res["runs"]) == 2
    for run in res["runs"]:
        assert run["backend"] == "torch" and 0 <= run["metrics"]["val_accuracy"] <= 1
        assert len(run["history"]["val_loss"]) == 2
    assert (out / "learning_curves.png").exists() and (out / "decision_boundary.png").exists()


@pytest.mark.slow
def test_compare_backend_torch_lands_within_seed_noise_of_numpy(tmp_path):
    # the default experiment (MNIST-1D, 40-256-256-10, p = 0.3) cut to 15 epochs and 2 seeds per
    # backend so CI stays short; the full default was compared by hand (see the torch issue's note)
    from droplab.cli import main

    means = {}
    for backend in ("numpy", "torch"):
        out = tmp_path / backend
        assert main(["compare", "--quiet", "--backend", backend, "--epochs", "15", "--seeds", "2",
                     "--out", str(out)]) == 0
        res = json.loads((out / "results.json").read_text())
        means[backend] = {r["arm"]: r["val_accuracy"] for r in res["summary"]}
    for arm, stats in means["numpy"].items():
        other = means["torch"][arm]
        noise = math.sqrt(stats["std"] ** 2 / stats["n"] + other["std"] ** 2 / other["n"])
        assert abs(stats["mean"] - other["mean"]) <= 3 * noise + 0.005
