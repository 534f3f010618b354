"""Fused ``Dense -> ReLU [-> Dropout]`` blocks that ``Sequential`` runs in place of the layers.

Separately, the three layers make about ten passes over the hidden activations per step:
``x @ W``, ``+ b``, ``max(., 0)``, the mask, and in backward the mask again, ``where(y > 0)``,
the bias gradient's column sums and ``dy @ W.T``, each into a freshly allocated array. Fused,
forward is the matrix product followed by one pass (bias and ReLU) and the in-place mask,
and backward is one pass that gates the gradient, scales it and sums the bias gradient's
columns, into a buffer the block reuses. No mask is stored: the block keeps the activation
after dropout (which the next Dense keeps as its input anyway), and a unit passes gradient
exactly where that activation is positive (ReLU positive AND kept, the scale being positive).

The result equals the layer-by-layer computation value for value (``==``; the sign of a
zero and a NaN's path through a dropped unit may differ), the bias gradient bit for bit
(its columns are summed row by row, as NumPy's ``sum(axis=0)`` does). The dropout layer's
counter and state move exactly as if it had run. Fusion applies only to the exact classes
``Dense``, ``ReLU`` and ``Dropout`` (element-wise, ``axes=None``) with no instance-level
``forward`` override, and only when the numba kernels are in use; everything else runs layer
by layer.
"""

from __future__ import annotations

import numpy as np

from droplab import kernels

__all__ = ["plan", "Block"]

_kernels = None  # the compiled (bias_relu, gate), once built


def _compile():
    """Compile (or load from numba's cache) the two fused passes; numba is imported here.

    Both run on the calling thread: they are memory-bound single passes, and on the shared
    2-core machine a parallel launch measured 5-30x slower than the serial loop whenever the
    other core was busy (the launch waits for its slowest thread).
    """
    global _kernels
    if _kernels is not None:
        return _kernels
    from numba import njit

    @njit(cache=True)
    def bias_relu(h, b, zero):
        for i in range(h.shape[0]):
            row = h[i]
            for j in range(h.shape[1]):
                v = row[j] + b[j]
                # a NaN fails both tests and propagates, as np.maximum does
                row[j] = v if v > 0 else (zero if v <= 0 else v)

    @njit(cache=True)
    def gate(y, dy, s, zero, out, colsum):
        # Row by row, so each column of colsum is summed in NumPy's sum(axis=0) order.
        colsum[:] = zero
        for i in range(y.shape[0]):
            yr = y[i]
            dr = dy[i]
            orow = out[i]
            for j in range(y.shape[1]):
                v = dr[j] * s if yr[j] > 0 else zero
                orow[j] = v
                colsum[j] += v

    _kernels = (bias_relu, gate)
    return _kernels


class Block:
    """``Dense -> ReLU`` and, optionally, an element-wise ``Dropout`` after it, run as one step.

    The layers keep their own objects, parameters and counters; the block only computes for
    them and leaves each layer's state as its own forward would have (the ReLU's output is the
    activation after dropout: the gradient it gates is the same once dropout's mask is applied).
    """

    __slots__ = ("dense", "relu", "drop", "_x", "_y", "_scale", "_buf")

    def __init__(self, dense, relu, drop=None) -> None:
        self.dense, self.relu, self.drop = dense, relu, drop
        self._x = self._y = None
        self._scale = None
        self._buf = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        bias_relu, _ = _compile()
        d = self.dense
        x = d._check_input(x)
        h = x @ d.weight.value
        dt = h.dtype.type
        bias_relu(h, d.bias.value, dt(0))
        scale = 1.0
        q = self.drop
        if q is not None:
            if q.training and q.p != 0:
                counter = q.counter
                q.counter += 1
                q._state = ("train", counter, h.shape, h.shape)
                scale = q.scale
                kernels.apply(h, q.p, q._key, counter, scale, out=h)
            else:
                scale = q._eval_factor() if not q.training else 1.0
                q._state = ("eval", scale)
                if scale != 1.0:
                    h *= dt(scale)
        d._x, self._x = x, x
        self.relu._x = self.relu._y = h
        self._y, self._scale = h, scale
        return h

    def backward(self, dy: np.ndarray, need_dx: bool = True):
        if self._y is None:
            raise self.dense._no_forward()
        _, gate = _compile()
        d, y = self.dense, self._y
        dy = np.asarray(dy)
        if dy.shape != y.shape:
            raise ValueError(f"{type(self.relu).__name__}: backward got dy of shape {dy.shape}; "
                             f"the forward output had shape {y.shape}.")
        dy = np.ascontiguousarray(dy, dtype=y.dtype)
        g = self._buf
        if g is None or g.shape != y.shape or g.dtype != y.dtype:
            g = self._buf = np.empty_like(y)
        colsum = np.empty(y.shape[1], y.dtype)
        dt = y.dtype.type
        gate(y, dy, dt(self._scale), dt(0), g, colsum)
        d._accumulate(g, colsum)
        return g @ d.weight.value.T if need_dx else None

    _backward = backward


def plan(layers) -> list:
    """The steps of a Sequential: fused Blocks where the pattern allows, else the layers."""
    from droplab.nn.activations import ReLU
    from droplab.nn.dropout import Dropout
    from droplab.nn.layers import Dense

    if kernels.backend() != "numba":
        return list(layers)

    def plain(m, cls):
        return type(m) is cls and "forward" not in vars(m) and "backward" not in vars(m)

    steps, i, n = [], 0, len(layers)
    while i < n:
        if i + 1 < n and plain(layers[i], Dense) and plain(layers[i + 1], ReLU):
            drop = None
            if i + 2 < n and plain(layers[i + 2], Dropout) and layers[i + 2].axes is None:
                drop = layers[i + 2]
            steps.append(Block(layers[i], layers[i + 1], drop))
            i += 3 if drop is not None else 2
        else:
            steps.append(layers[i])
            i += 1
    return steps
