"""Fused ``Dense -> ReLU [-> Dropout]`` blocks that ``Sequential`` runs in place of the layers.

Layer by layer, the three make about ten passes over the hidden activations per step: ``x @
W``, ``+ b``, ``max(., 0)``, the mask, and in backward the mask again, ``where(y > 0)``, the
bias gradient's column sums and ``dy @ W.T``. Fused, forward is the matrix product and ONE
pass that adds the bias, applies ReLU and multiplies by the dropout mask (the Philox blocks,
chunks and 16-bit compare of :mod:`droplab.kernels._numba`, so the very bits of
``kernels.apply``); backward is the matrix products and one pass that gates and scales the
gradient and sums the bias gradient's columns. No mask is stored: the block keeps the
activation after dropout (which the next Dense keeps as its input anyway), and a unit passes
gradient exactly where that activation is positive (ReLU positive AND kept; the scale is
positive).

Forward is bit-identical to the layer-by-layer computation; backward equals it value for
value (``==``: a dropped unit's gradient is +0 where the layers give ``dy * 0``), and the
bias gradient bit for bit (columns summed row by row, as NumPy's ``sum(axis=0)``). The
dropout layer's counter and state move exactly as if it had run. Fusion applies only to the
exact classes ``Dense``, ``ReLU`` and ``Dropout`` (element-wise, ``axes=None``) with no
instance-level ``forward``/``backward`` override, and only when the numba kernels are in use;
everything else runs layer by layer. Measured with ``droplab bench`` (section ``spiral``):
the textbook spiral epoch went from about 30 ms to about 10 ms on the 2-core machine.
"""

from __future__ import annotations

import numpy as np

from droplab import kernels

__all__ = ["plan", "Block"]

_kernels = None  # the compiled (bias_relu, gate, bias_relu_mask), once built


def _compile():
    """The kernels of :mod:`droplab.nn._fused_kernels` (numba is imported on first use)."""
    global _kernels
    if _kernels is None:
        from droplab.nn import _fused_kernels as k

        _kernels = (k.bias_relu, k.gate, k.bias_relu_mask)
    return _kernels


class Block:
    """``Dense -> ReLU`` and, optionally, an element-wise ``Dropout`` after it, run as one step.

    The layers keep their own objects, parameters and counters; the block only computes for
    them and leaves each layer's state as its own forward would have (the ReLU's output is the
    activation after dropout: the gradient it gates is the same once dropout's mask is applied).
    """

    __slots__ = ("dense", "relu", "drop", "_x", "_y", "_scale")

    def __init__(self, dense, relu, drop=None) -> None:
        self.dense, self.relu, self.drop = dense, relu, drop
        self._x = self._y = None
        self._scale = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        bias_relu, _, bias_relu_mask = _compile()
        d = self.dense
        x = d._check_input(x)
        w = d.weight.value
        scale = 1.0
        q = self.drop
        if q is not None and q.training and q.p != 0:
            # x @ W, then bias, ReLU and the mask in one pass
            # into a new array (every element of the mask at its flat index, as kernels.apply).
            shape = (x.shape[0], w.shape[1])
            pre = x @ w
            counter = q.counter
            q.counter += 1
            q._state = ("train", counter, shape, shape)
            scale = q.scale
            t = kernels.threshold(q.p)
            if 0 < t < kernels.RESOLUTION and pre.size:
                dt = pre.dtype.type
                h = bias_relu_mask(pre, d.bias.value, np.empty(shape, pre.dtype), t, dt(scale), dt(0) * dt(scale),
                                   q._key, counter)
            else:  # every unit kept or every one dropped: no mask to draw
                bias_relu(pre, d.bias.value, pre.dtype.type(0))
                h = kernels.apply(pre, q.p, q._key, counter, scale)
        else:
            h = x @ w
            dt = h.dtype.type
            bias_relu(h, d.bias.value, dt(0))
            if q is not None:
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
        _, gate, _ = _compile()
        d, y = self.dense, self._y
        dy = np.asarray(dy)
        if dy.shape != y.shape:
            raise ValueError(f"{type(self.relu).__name__}: backward got dy of shape {dy.shape}; "
                             f"the forward output had shape {y.shape}.")
        dy = np.ascontiguousarray(dy, dtype=y.dtype)
        g = np.empty_like(y)
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
