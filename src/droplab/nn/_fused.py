"""Fused ``Dense -> ReLU [-> Dropout]`` blocks that ``Sequential`` runs in place of the layers.

Layer by layer, the three make about ten passes over the hidden activations per step: ``x @
W``, ``+ b``, ``max(., 0)``, the mask, and in backward the mask again, ``where(y > 0)``, the
bias gradient's column sums and ``dy @ W.T``. Fused, forward is the matrix product and ONE
pass that adds the bias, applies ReLU and multiplies by the dropout mask (the Philox blocks,
chunks and 32-bit compare of :mod:`droplab.kernels._numba`, so the very bits of
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
everything else runs layer by layer. With at most ``SMALL_IN`` inputs the block computes the
product itself too (``_fused_kernels.small_dense_relu_mask``: no pre-activation array), and
its backward then writes no gradient array when nobody reads it (a model's first layer in
fit). Measured with ``droplab bench`` (section ``spiral``, 2-core machine): the textbook
spiral epoch takes 8.7 ms, against 63 ms for the float64 textbook code and 28 ms for PyTorch.
"""

from __future__ import annotations

from droplab.errors import InvalidValueError
import numpy as np

from droplab import kernels

__all__ = ["plan", "Block", "SMALL_IN", "SMALL_OUT", "small", "few_out", "small_dense", "small_weight_grad",
           "few_out_weight_grad", "few_out_input_grad"]

_kernels = None  # the compiled (bias_relu, gate, bias_relu_mask), once built


def _compile():
    """The kernels of :mod:`droplab.nn._fused_kernels` (numba is imported on first use)."""
    global _kernels
    if _kernels is None:
        from droplab.nn import _fused_kernels as k

        _kernels = (k.bias_relu, k.gate, k.bias_relu_mask)
    return _kernels


#: Dense layers with at most this many inputs compute ``x @ W`` and ``x.T @ dy`` with
#: droplab's own kernels (``_fused_kernels.small_dense``): BLAS spent 1.4 ms on each for the
#: spiral's 3000x2 @ 2x512 against 0.3 ms, and the fused block then needs no pre-activation
#: array at all.
SMALL_IN = 4


def small(dense) -> bool:
    """Whether ``dense`` takes the few-inputs path (numba kernels in use, ``in <= SMALL_IN``)."""
    return dense.in_features <= SMALL_IN and kernels.backend() == "numba"


def small_dense(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x @ w + b``, the products summed in input order (the few-inputs path)."""
    from droplab.nn import _fused_kernels as k

    return k.small_dense(np.ascontiguousarray(x), w, b, np.empty((x.shape[0], w.shape[1]), w.dtype))


def small_weight_grad(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``x.T @ dy``, summed over the rows in order (the few-inputs path)."""
    from droplab.nn import _fused_kernels as k

    dw = np.empty((x.shape[1], dy.shape[1]), dy.dtype)
    k.small_weight_grad(np.ascontiguousarray(x), np.ascontiguousarray(dy), dw)
    return dw


#: Dense layers with at most this many outputs (and more inputs than ``SMALL_IN``) compute
#: ``x.T @ dy`` and ``dy @ W.T`` with droplab's kernels: at the spiral's 3000x512 @ 512x3 on
#: one thread, 0.65 and 0.45-0.55 ms against BLAS's 1.3 and 0.85 ms. The forward stays BLAS.
SMALL_OUT = 4


def few_out(dense) -> bool:
    """Whether ``dense`` takes the few-outputs path (and not the few-inputs one)."""
    return dense.out_features <= SMALL_OUT < dense.in_features and kernels.backend() == "numba"


def few_out_weight_grad(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``x.T @ dy``, summed over the rows in order (a transposed view): the few-inputs
    gradient kernel with the roles swapped, ``(dy.T @ x).T``, one pass over ``x``."""
    return small_weight_grad(dy, x).T


def few_out_input_grad(dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``dy @ w.T``: few inputs to this product, so the few-inputs kernel, with a zero bias."""
    return small_dense(dy, np.ascontiguousarray(w.T), np.zeros(w.shape[0], w.dtype))


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
        few = small(d)
        if q is not None and q.training and q.p != 0:
            # x @ W, then bias, ReLU and the mask in one pass
            # into a new array (every element of the mask at its flat index, as kernels.apply).
            shape = (x.shape[0], w.shape[1])
            draw = q.rng.next()
            q._state = ("train", draw, shape, shape)
            scale = q.scale
            t = kernels.threshold(q.p)
            dt = w.dtype.type
            if 0 < t < kernels.RESOLUTION and x.shape[0]:
                args = (t, dt(scale), dt(0) * dt(scale))
                if few:  # the product too: no pre-activation array
                    from droplab.nn._fused_kernels import small_dense_relu_mask

                    h = draw.call(small_dense_relu_mask, np.ascontiguousarray(x), w, d.bias.value,
                                  np.empty(shape, w.dtype), *args)
                else:
                    pre = x @ w  # a fresh array: the pass writes into it (each element read, then written)
                    h = draw.call(bias_relu_mask, pre, d.bias.value, pre, *args)
            else:  # every unit kept or every one dropped: no mask to draw
                pre = self._pre(x, few)
                h = draw.apply(pre, q.p, scale)
        else:
            h = self._pre(x, few)
            dt = h.dtype.type
            if q is not None:
                scale = q._eval_factor() if not q.training else 1.0
                q._state = ("eval", scale)
                if scale != 1.0:
                    h *= dt(scale)
        d._x, self._x = x, x
        self.relu._x = self.relu._y = h
        self._y, self._scale = h, scale
        return h

    def _pre(self, x, few):
        """``max(x @ W + b, 0)``, computed as Dense then ReLU compute it."""
        bias_relu, _, _ = _compile()
        d = self.dense
        if few:
            h = small_dense(x, d.weight.value, d.bias.value)
            bias_relu(h, np.zeros_like(d.bias.value), h.dtype.type(0))  # ReLU (v + 0 is v)
        else:
            h = x @ d.weight.value
            bias_relu(h, d.bias.value, h.dtype.type(0))
        return h

    def backward(self, dy: np.ndarray, need_dx: bool = True):
        if self._y is None:
            raise self.dense._no_forward()
        _, gate, _ = _compile()
        d, y = self.dense, self._y
        dy = np.asarray(dy)
        if dy.shape != y.shape:
            raise InvalidValueError(f"{type(self.relu).__name__}: backward got dy of shape {dy.shape}; "
                             f"the forward output had shape {y.shape}.")
        dy = np.ascontiguousarray(dy, dtype=y.dtype)
        colsum = np.empty(y.shape[1], y.dtype)
        dt = y.dtype.type
        if small(d):
            from droplab.nn._fused_kernels import gate_small

            g = np.empty_like(y) if need_dx else np.empty((1, y.shape[1]), y.dtype)
            dw = np.empty((d.in_features, y.shape[1]), y.dtype)
            gate_small(y, dy, dt(self._scale), dt(0), np.ascontiguousarray(self._x), g, need_dx, colsum, dw)
            d._accumulate(None, colsum, dw)
        else:
            g = np.empty_like(y)
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
