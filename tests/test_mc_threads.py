"""nn.mc_predict runs its input chunks on one Python thread per usable core (nn/mc.py,
``_in_threads``). Exact invariants only:

* the same bits whatever the number of threads (1, 2, 3 or 5 for 2+ chunks), and the same
  bits as the in-order loop over the chunks under one BLAS thread;
* the layers' noise streams are left where the in-order loop leaves them (seed=None), so the
  next call draws the same masks either way;
* a layer that draws a number of masks depending on its input sends the chunks back to the
  in-order loop, with the loop's bits;
* an error raised in any chunk, on any thread, reaches the caller, with every mode restored.
"""

import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from droplab import kernels, nn
from droplab.nn import mc as mc_module

needs_numba = pytest.mark.skipif(kernels.backend() != "numba",
                                 reason="the threads run only with the compiled kernels")


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
    """Each chunk sleeps 2 ms first (releasing the GIL), so every thread takes chunks and the
    chunks interleave across threads; returns the threads that ran the chunks, one per chunk."""
    ran = []
    real = mc_module._chunk

    def slow(*args):
        ran.append(threading.get_ident())
        time.sleep(0.002)
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
        # 8 chunks, each run once (no fall-back to the loop): the first on the caller, 7 spread
        assert len(spread) == 8 and len(set(spread)) == min(cores, 7)
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
    def forward(self, x):
        if np.asarray(x).shape[0] and np.any(np.asarray(x)[:, 0] > 1e6):
            raise FloatingPointError("boom in a chunk")
        return super().forward(x)


@needs_numba
@pytest.mark.parametrize("row", [0, 17, 39])
def test_an_error_in_any_chunk_reaches_the_caller(monkeypatch, seed, rng, row):
    monkeypatch.setattr(mc_module, "_thread_count", lambda: 3)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    X[row, 0] = 1e7
    model = _with_loss(nn.Sequential(_Boom(0.3), nn.Dense(6, 3), seed=seed))
    modes = [m.training for m in model.modules()]
    with pytest.raises(FloatingPointError, match="boom in a chunk"):
        nn.mc_predict(model, X, samples=4, batch_size=3, seed=2)
    assert [m.training for m in model.modules()] == modes


@needs_numba
def test_the_thread_count_follows_the_kernels_thread_count(monkeypatch):
    import numba

    from droplab import _validate

    monkeypatch.setattr(_validate, "usable_cores", lambda: 8)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)  # as in the lab's workers: one core's worth of work each
        assert mc_module._thread_count() == 1
    finally:
        numba.set_num_threads(old)
    assert mc_module._thread_count() == min(8, old)
    monkeypatch.setattr(_validate, "usable_cores", lambda: 1)
    assert mc_module._thread_count() == 1
