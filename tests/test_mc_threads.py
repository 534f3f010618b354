"""nn.mc_predict runs its input chunks on one Python thread per usable core (nn/mc.py,
``_in_threads``). Exact invariants only:

* the same bits whatever the number of threads (1, 2, 3 or 5 for 2+ chunks), and the same
  bits as the in-order loop over the chunks under one BLAS thread;
* the layers' noise streams are left where the in-order loop leaves them (seed=None), so the
  next call draws the same masks either way;
* a layer that draws a number of masks depending on its input sends the chunks back to the
  in-order loop, with the loop's bits;
* an error raised in any chunk reaches the caller as the loop raises it (the first failing
  chunk's), with the loop's streams and every mode restored;
* a user's own layer (its own generator, a closure over the original) runs the loop;
* overlapping calls put BLAS's thread count back as they found it.

The test models are small, so ``THREAD_MIN_BYTES`` is set to 0 here (the chunks would
otherwise run in order), except where that floor is under test.
"""

import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from droplab import kernels, nn
from droplab.nn import mc as mc_module
from droplab.nn import train as train_module

needs_numba = pytest.mark.skipif(kernels.backend() != "numba",
                                 reason="the threads run only with the compiled kernels")


@pytest.fixture(autouse=True)
def small_chunks_on_threads(monkeypatch):
    monkeypatch.setattr(mc_module, "THREAD_MIN_BYTES", 0)


def _models(seed):
    def mlp():
        return nn.Sequential(nn.Dense(6, 24), nn.ReLU(), nn.Dropout(0.3), nn.Dense(24, 24), nn.ReLU(),
                             nn.Dropout(0.4), nn.Dense(24, 3), seed=seed)

    def gaussian():
        return nn.Sequential(nn.Dense(6, 16), nn.ReLU(), nn.GaussianDropout(0.3), nn.Dense(16, 3), seed=seed)

    def dropconnect():  # noise shared across the batch: the passes run one by one in each chunk
        return nn.Sequential(nn.Dense(6, 16), nn.ReLU(), nn.DropConnect(16, 3, 0.3), seed=seed)

    def concrete():
        return nn.Sequential(nn.Dense(6, 16), nn.ReLU(), nn.ConcreteDropout(nn.Dense(16, 3), p=0.2), seed=seed)

    return {"mlp": mlp, "gaussian": gaussian, "dropconnect": dropconnect, "concrete": concrete}


def _with_loss(model):
    model._loss = nn.SoftmaxCrossEntropy()
    return model


def _arrays(r):
    return [r.samples, r.mean, r.std, r.entropy, r.mutual_information, r.variation_ratio]


def _same(a, b):
    for x, y in zip(_arrays(a), _arrays(b)):
        assert (x is None) == (y is None)
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y)


@pytest.fixture
def spread(monkeypatch):
    """Each chunk sleeps 10 ms first (releasing the GIL), so the threads take chunks and the
    chunks interleave across threads; returns the threads that ran the chunks, one per chunk."""
    ran = []
    real = mc_module._chunk

    def slow(*args):
        ran.append(threading.get_ident())
        time.sleep(0.01)
        return real(*args)

    monkeypatch.setattr(mc_module, "_chunk", slow)
    return ran


def _counters(model):
    return [m.rng.counter for m in model.modules() if m.is_dropout]


@needs_numba
@pytest.mark.parametrize("name", ["mlp", "gaussian", "dropconnect", "concrete"])
@pytest.mark.parametrize("seeded", [True, False])
def test_same_bits_whatever_the_thread_count(monkeypatch, spread, seed, rng, name, seeded):
    X = rng.standard_normal((29, 6)).astype(np.float32)
    results, counters = [], []
    for cores in (1, 2, 3, 5):
        monkeypatch.setattr(mc_module, "_thread_count", lambda cores=cores: cores)
        model = _with_loss(_models(seed)[name]())
        spread.clear()
        r = nn.mc_predict(model, X, samples=7, batch_size=4, seed=11 if seeded else None, keep_samples=True)
        # 8 chunks, each run once (no fall-back to the loop), over more than one thread when
        # there are several (how many of them get a chunk depends on the scheduler)
        assert len(spread) == 8 and (len(set(spread)) == 1 if cores == 1 else 2 <= len(set(spread)) <= cores)
        results.append(r)
        counters.append(_counters(model))
        # the next call starts where this one left the streams
        results.append(nn.mc_predict(model, X, samples=3, batch_size=5, keep_samples=True))
    for r in results[2::2]:
        _same(results[0], r)
    for r in results[3::2]:
        _same(results[1], r)
    assert all(c == counters[0] for c in counters)


@needs_numba
@pytest.mark.parametrize("name", ["mlp", "dropconnect"])
def test_same_bits_and_streams_as_the_loop_in_order(monkeypatch, seed, rng, name):
    X = rng.standard_normal((40, 6)).astype(np.float32)
    threaded = _with_loss(_models(seed)[name]())
    a = nn.mc_predict(threaded, X, samples=9, batch_size=6, keep_samples=True)
    monkeypatch.setattr(mc_module, "_streams", lambda droppers: None)  # the in-order loop
    in_order = _with_loss(_models(seed)[name]())
    with threadpool_limits(1, user_api="blas"):  # the threads' BLAS: same call, same thread count
        b = nn.mc_predict(in_order, X, samples=9, batch_size=6, keep_samples=True)
    _same(a, b)
    assert _counters(threaded) == _counters(in_order)
    assert _counters(threaded) != _counters(_with_loss(_models(seed)[name]()))  # the streams moved


class _DataDependentDropout(nn.Dropout):
    """Draws one extra mask for a batch whose first value is negative (never in the family:
    the threads must notice that a chunk moved the stream by another count)."""

    def forward(self, x):
        if self.training and np.asarray(x).reshape(-1)[0] < 0:
            self.rng.next()
        return super().forward(x)


@needs_numba
def test_a_layer_drawing_per_data_falls_back_to_the_loop(monkeypatch, seed, rng):
    X = rng.standard_normal((30, 6)).astype(np.float32)
    X[:, 0] = 1.0
    X[14, 0] = -1.0  # only the chunk holding row 14 draws an extra mask

    def model():
        return _with_loss(nn.Sequential(nn.Dense(6, 12), _DataDependentDropout(0.3), nn.Dense(12, 3), seed=seed))

    monkeypatch.setattr(mc_module, "_thread_count", lambda: 2)
    monkeypatch.setattr(mc_module, "_library_layers", lambda layers: True)  # admit the test's layer
    threaded = model()
    calls = []
    real = mc_module._chunk
    monkeypatch.setattr(mc_module, "_chunk", lambda *a: calls.append(1) or real(*a))
    a = nn.mc_predict(threaded, X, samples=5, batch_size=4, keep_samples=True)
    monkeypatch.setattr(mc_module, "_chunk", real)
    assert len(calls) > 8  # 8 chunks, and some of them twice: the threads' run was discarded
    monkeypatch.setattr(mc_module, "_streams", lambda droppers: None)
    in_order = model()
    with threadpool_limits(1, user_api="blas"):
        b = nn.mc_predict(in_order, X, samples=5, batch_size=4, keep_samples=True)
    _same(a, b)
    assert _counters(threaded) == _counters(in_order)


class _Boom(nn.Dropout):
    """Raises on a batch holding a marked row: ``ValueError`` for 1e7, ``RuntimeError`` for 2e7."""

    def forward(self, x):
        col = np.asarray(x)[:, 0]
        if np.any(col == 1e7):
            raise ValueError("boom: the first mark")
        if np.any(col == 2e7):
            raise RuntimeError("boom: the second mark")
        return super().forward(x)


@needs_numba
@pytest.mark.parametrize("rows", [(0,), (17,), (39,), (5, 33), (33, 5)])
def test_an_error_in_any_chunk_is_raised_as_the_loop_raises_it(monkeypatch, seed, rng, rows):
    monkeypatch.setattr(mc_module, "_thread_count", lambda: 3)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    for mark, row in zip((1e7, 2e7), rows):
        X[row, 0] = mark
    first = (ValueError, "first") if rows[0] < rows[-1] or len(rows) == 1 else (RuntimeError, "second")

    def model():
        return _with_loss(nn.Sequential(_Boom(0.3), nn.Dense(6, 12), nn.Dropout(0.2), nn.Dense(12, 3), seed=seed))

    threaded = model()
    monkeypatch.setattr(mc_module, "_library_layers", lambda layers: True)  # admit the test's layer
    modes = [m.training for m in threaded.modules()]
    with pytest.raises(first[0], match=first[1]):
        nn.mc_predict(threaded, X, samples=4, batch_size=3)
    assert [m.training for m in threaded.modules()] == modes
    monkeypatch.setattr(mc_module, "_streams", lambda droppers: None)  # the loop
    in_order = model()
    with pytest.raises(first[0], match=first[1]):
        nn.mc_predict(in_order, X, samples=4, batch_size=3)
    assert _counters(threaded) == _counters(in_order)  # left where the loop stopped


class _InputNoise(nn.Module):
    """A user's layer with a generator of its own (not a dropout layer): the chunks must run
    in order, or the draws land in other chunks' rows and the generator ends elsewhere."""

    def __init__(self, seed):
        super().__init__()
        self.g = np.random.default_rng(seed)

    def forward(self, x):
        return x + self.g.standard_normal(np.shape(x)).astype(np.asarray(x).dtype)


class _Closure(nn.Module):
    """A user's model calling its dropout through a closure over itself: a copy would still
    draw from the original's stream."""

    def __init__(self, seed):
        super().__init__()
        self.dense = nn.Dense(6, 12, seed=seed)
        self.drop = nn.Dropout(0.4, seed=seed)
        self.head = nn.Dense(12, 3, seed=seed + 1)
        self.block = lambda h: self.drop.forward(self.dense.forward(h))

    def children(self):
        return [self.dense, self.drop, self.head]

    def forward(self, x):
        return self.head.forward(self.block(x))


@needs_numba
@pytest.mark.parametrize("kind", ["noise", "closure"])
def test_a_users_own_layers_run_the_loop(monkeypatch, spread, seed, rng, kind):
    monkeypatch.setattr(mc_module, "_thread_count", lambda: 2)
    X = rng.standard_normal((40, 6)).astype(np.float32)

    def model():
        if kind == "noise":
            return _with_loss(nn.Sequential(nn.Dense(6, 12), _InputNoise(seed), nn.Dropout(0.3), nn.Dense(12, 3),
                                            seed=seed))
        return _with_loss(_Closure(seed))

    threaded = model()
    a = [nn.mc_predict(threaded, X, samples=5, batch_size=4, keep_samples=True) for _ in range(2)]
    assert len(set(spread)) == 1  # one thread: the loop
    monkeypatch.setattr(mc_module, "_streams", lambda droppers: None)
    in_order = model()
    b = [nn.mc_predict(in_order, X, samples=5, batch_size=4, keep_samples=True) for _ in range(2)]
    for x, y in zip(a, b):
        _same(x, y)
    assert _counters(threaded) == _counters(in_order)
    if kind == "noise":
        assert threaded[1].g.integers(2**62) == in_order[1].g.integers(2**62)


@needs_numba
def test_small_chunks_run_in_order(monkeypatch, spread, seed, rng):
    monkeypatch.undo()  # THREAD_MIN_BYTES back to its value; spread's patch re-applied below
    real = mc_module._chunk
    ran = []
    monkeypatch.setattr(mc_module, "_chunk", lambda *a: ran.append(threading.get_ident()) or real(*a))
    monkeypatch.setattr(mc_module, "_thread_count", lambda: 2)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    nn.mc_predict(_with_loss(_models(seed)["mlp"]()), X, samples=5, batch_size=4)  # 5 x 4 rows x 96 B a chunk
    assert len(ran) == 10 and len(set(ran)) == 1


def _blas_threads():
    from threadpoolctl import threadpool_info

    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


@needs_numba
def test_overlapping_calls_in_threads_give_each_its_own_bits(monkeypatch, seed, rng):
    """Two calls from two user threads at once, and a call from a worker thread after one in
    the main thread: each gives the bits it gives alone, and BLAS's thread count is put back
    (threadpoolctl hands OpenBLAS's setting to one thread at a time)."""
    monkeypatch.setattr(mc_module, "_thread_count", lambda: 2)
    X = rng.standard_normal((64, 6)).astype(np.float32)
    before = _blas_threads()
    alone = [nn.mc_predict(_with_loss(_models(seed + k)["mlp"]()), X, samples=6, batch_size=4, keep_samples=True)
             for k in range(2)]
    got: dict = {}

    def call(k):
        got[k] = nn.mc_predict(_with_loss(_models(seed + k)["mlp"]()), X, samples=6, batch_size=4,
                               keep_samples=True)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        _same(alone[k], got[k])
    later = threading.Thread(target=call, args=(0,))
    later.start()
    later.join()
    _same(alone[0], got[0])
    after = _blas_threads()
    assert {k: after[k] for k in before} == before  # (numba may load another BLAS meanwhile)


@needs_numba
def test_the_callers_floating_point_settings_hold_in_every_thread(monkeypatch, seed, rng):
    monkeypatch.setattr(mc_module, "_thread_count", lambda: 4)
    X = rng.standard_normal((60, 6)).astype(np.float32)
    X[47] = 3e38  # finite, but its products overflow float32
    model = _with_loss(_models(seed)["mlp"]())
    for _ in range(4):
        with np.errstate(over="raise"), pytest.raises(FloatingPointError):
            nn.mc_predict(model, X, samples=6, batch_size=4)


@needs_numba
def test_the_threads_leave_the_layers_state_alone(monkeypatch, seed, rng):
    """Every chunk runs on a copy: no chunk's activations stay alive on the model's layers
    (they hold only the one-row probe's, which sizes the chunks)."""
    monkeypatch.setattr(mc_module, "_thread_count", lambda: 2)
    model = _with_loss(_models(seed)["mlp"]())
    X = rng.standard_normal((40, 6)).astype(np.float32)
    nn.mc_predict(model, X, samples=5, batch_size=4, seed=3)
    held = [v.shape for m in model.modules() for v in vars(m).values()
            if isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[1] in (6, 24, 3)]
    assert held and all(shape[0] == 1 for shape in held)
