"""Property tests (hypothesis) for every layer of ``droplab.nn``: random shapes, float32 and
float64, ``p`` anywhere in [0, 1] including both ends.

For each layer: forward keeps the dtype and gives the documented shape, finite input gives
finite output and finite gradients, and every inverted member of the dropout family is the
exact identity in eval mode (and at p = 0). ``LAYERS`` must list every public Module of
``droplab.nn`` (``test_every_layer_is_covered``); a new layer is added here with its input rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from droplab import nn
from droplab.nn import io


@dataclass(frozen=True)
class Case:
    rank: int  # input rank: 2 (N, F), 3 (N, T, F), 4 (N, C, H, W), 5 (N, C, D, H, W)
    build: Callable  # (p, dtype, shape) -> layer
    out: Callable = lambda s: s  # input shape -> output shape
    identity: bool = False  # inverted dropout family: eval (and p = 0) is the identity
    p_range: tuple[float, float] = (0.0, 1.0)  # the p the layer accepts (others must raise)


_BELOW_1 = math.nextafter(1.0, 0.0)


def _seq(*layers, seed=0):
    return nn.Sequential(*layers, seed=seed)


LAYERS: dict[str, Case] = {
    "Dense": Case(2, lambda p, dt, s: nn.Dense(s[1], 3, seed=0, dtype=dt), lambda s: (s[0], 3)),
    "Flatten": Case(4, lambda p, dt, s: nn.Flatten(), lambda s: (s[0], math.prod(s[1:]))),
    "ReLU": Case(3, lambda p, dt, s: nn.ReLU()),
    "LeakyReLU": Case(2, lambda p, dt, s: nn.LeakyReLU(0.1)),
    "Tanh": Case(2, lambda p, dt, s: nn.Tanh()),
    "Sigmoid": Case(4, lambda p, dt, s: nn.Sigmoid()),
    "SELU": Case(2, lambda p, dt, s: nn.SELU()),
    "Softmax": Case(2, lambda p, dt, s: nn.Softmax()),
    "Dropout": Case(3, lambda p, dt, s: nn.Dropout(p, seed=0), identity=True),
    "Dropout1d": Case(3, lambda p, dt, s: nn.Dropout1d(p, seed=0), identity=True),
    "Dropout2d": Case(4, lambda p, dt, s: nn.Dropout2d(p, seed=0), identity=True),
    "Dropout3d": Case(5, lambda p, dt, s: nn.Dropout3d(p, seed=0), identity=True),
    "GaussianDropout": Case(2, lambda p, dt, s: nn.GaussianDropout(p, seed=0), identity=True, p_range=(0.0, _BELOW_1)),
    "AlphaDropout": Case(2, lambda p, dt, s: nn.AlphaDropout(p, seed=0), identity=True),  # p = 1: zeros
    "DropPath": Case(4, lambda p, dt, s: nn.DropPath(p, seed=0), identity=True),
    "LockedDropout": Case(3, lambda p, dt, s: nn.LockedDropout(p, seed=0), identity=True),
    "DropBlock2d": Case(4, lambda p, dt, s: nn.DropBlock2d(p, min(3, s[2], s[3]), seed=0), identity=True),
    "DropConnect": Case(2, lambda p, dt, s: nn.DropConnect(s[1], 4, p, seed=0, dtype=dt), lambda s: (s[0], 4)),
    "ConcreteDropout": Case(2, lambda p, dt, s: nn.ConcreteDropout(nn.Dense(s[1], 4, dtype=dt), init_p=p, seed=0),
                            lambda s: (s[0], 4), p_range=(1e-6, 1 - 1e-6)),  # a learned p: a finite logit
    "BatchNorm1d": Case(2, lambda p, dt, s: nn.BatchNorm1d(s[1], dtype=dt)),
    "BatchNorm2d": Case(4, lambda p, dt, s: nn.BatchNorm2d(s[1], dtype=dt)),
    "Conv2d": Case(4, lambda p, dt, s: nn.Conv2d(s[1], 2, 3, padding=1, seed=0, dtype=dt),
                   lambda s: (s[0], 2, s[2], s[3])),
    "MaxPool2d": Case(4, lambda p, dt, s: nn.MaxPool2d(2), lambda s: (s[0], s[1], s[2] // 2, s[3] // 2)),
    "AvgPool2d": Case(4, lambda p, dt, s: nn.AvgPool2d(2), lambda s: (s[0], s[1], s[2] // 2, s[3] // 2)),
    "Residual": Case(2, lambda p, dt, s: nn.Residual(_seq(nn.Dense(s[1], s[1], dtype=dt), nn.Tanh(),
                                                          nn.Dropout(p)))),
    "Sequential": Case(2, lambda p, dt, s: _seq(nn.Dense(s[1], 5, dtype=dt), nn.ReLU(), nn.Dropout(p),
                                                nn.Dense(5, 2, dtype=dt)), lambda s: (s[0], 2)),
    "RNN": Case(3, lambda p, dt, s: nn.RNN(s[2], 4, seed=0, dtype=dt), lambda s: (s[0], 4)),
    "GRU": Case(3, lambda p, dt, s: nn.GRU(s[2], 4, seed=0, dtype=dt), lambda s: (s[0], 4)),
    "Conv1d": Case(3, lambda p, dt, s: nn.Conv1d(s[1], 2, 3, padding=1, seed=0, dtype=dt), lambda s: (s[0], 2, s[2])),
    "MaxPool1d": Case(3, lambda p, dt, s: nn.MaxPool1d(2), lambda s: (s[0], s[1], s[2] // 2)),
    "AvgPool1d": Case(3, lambda p, dt, s: nn.AvgPool1d(2), lambda s: (s[0], s[1], s[2] // 2)),
    "GlobalAvgPool1d": Case(3, lambda p, dt, s: nn.GlobalAvgPool1d(), lambda s: (s[0], s[1])),
}


def test_every_layer_is_covered():
    missing = sorted(set(io.layer_types()) - set(LAYERS))
    assert not missing, f"add these droplab.nn layers to LAYERS in tests/test_properties.py: {missing}"


def _shapes(rank: int):
    # N >= 2 (BatchNorm needs two values per feature); H, W >= 2 (pools of 2)
    dims = [st.integers(2, 5)] + [st.integers(2, 6)] * (rank - 1)
    return st.tuples(*dims)


_P = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))


@st.composite
def _draw(draw, name):
    case = LAYERS[name]
    shape = draw(_shapes(case.rank))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    p = draw(_P)
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    return shape, np.dtype(dtype), p, scale, seed


def _layer(name, p, dtype, shape):
    case = LAYERS[name]
    lo, hi = case.p_range
    if p in (0.0, 1.0) and not lo <= p <= hi:  # an end the layer excludes must be refused
        with pytest.raises(ValueError, match=r"`(init_)?p` must be"):
            case.build(p, dtype, shape)
    p = min(max(p, lo), hi)
    return case.build(p, dtype, shape), p


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_properties(name):
    case = LAYERS[name]

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_draw(name))
    def check(params):
        shape, dtype, p, scale, seed = params
        layer, p = _layer(name, p, dtype, shape)
        x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
        x0 = x.copy()
        # an overflow, 0/0 or x/0 anywhere is a failure, not a warning (underflow to 0 is fine)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            y = layer.train().forward(x)
            assert y.shape == case.out(shape) and y.dtype == dtype
            assert np.isfinite(y).all()
            dx = layer.backward(np.ones_like(y))
            assert dx.shape == shape and np.isfinite(dx).all()
            assert all(np.isfinite(q.grad).all() for q in layer.parameters())
            ye = layer.eval().forward(x)
            assert ye.shape == case.out(shape) and ye.dtype == dtype and np.isfinite(ye).all()
        assert np.array_equal(x, x0)  # the caller's array is never modified
        if case.identity:
            assert np.array_equal(ye, x)
            if p == 0:
                assert np.array_equal(layer.train().forward(x), x)
            if p == 1 and name in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "DropPath", "LockedDropout"):
                assert not layer.train().forward(x).any()

    check()


@given(p=_P, dtype=st.sampled_from([np.float32, np.float64]))
@settings(max_examples=30, deadline=None)
def test_saved_layers_keep_p_and_masks(tmp_path_factory, p, dtype):
    path = tmp_path_factory.mktemp("m") / "m.npz"
    model = nn.Sequential(nn.Dense(3, 4, dtype=dtype), nn.Dropout(p), nn.Dense(4, 2, dtype=dtype), seed=1)
    x = np.ones((5, 3), dtype)
    model.forward(x)
    model.save(path)
    twin = nn.load(path)
    assert twin[1].p == model[1].p and twin[1].counter == model[1].counter == (1 if p > 0 else 0)
    assert np.array_equal(twin.forward(x), model.forward(x))
