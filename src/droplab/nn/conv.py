"""Convolution and pooling: ``Conv1d`` / ``Conv2d``, ``MaxPool1d`` / ``MaxPool2d``,
``AvgPool1d`` / ``AvgPool2d`` and ``GlobalAvgPool1d``.

One mechanism serves both ranks: im2col plus one matrix product. Inside it works
channels-last: the padded input's sliding windows (a strided view, ``(N, *out, *kernel, C)``)
are copied once into a ``(N*out, kernel*C)`` matrix and multiplied by the ``(kernel*C, O)``
weight matrix. Backward is the transpose: one product for the weight gradient, one batched
product giving a contiguous ``(N*out, C)`` block per kernel offset, and col2im, which adds
each block into the input gradient with one strided slice addition per offset (``kernel``
of them, instead of a slow ``np.add.at``). A 1-D layer is the same code with one spatial
axis. The pools use the same per-offset views and never copy the windows.
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import Any

from droplab.errors import InvalidTypeError, InvalidValueError
import numpy as np
from numpy.lib.stride_tricks import as_strided

from droplab import _rng, _validate
from droplab.nn.module import Module, Parameter, _as_float

__all__ = ["Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "GlobalAvgPool1d"]

_INITS = ("he", "glorot", "lecun", "torch")
#: names of the spatial axes, by rank, for messages
_AXES = {1: "L", 2: "H, W"}


def _ints(where: str, name: str, value: Any, nd: int, *, minimum: int = 1) -> tuple[int, ...]:
    """An int, or ``nd`` ints (a pair for 2-D; a 1-tuple for 1-D), each >= ``minimum``."""
    kind = "a positive integer" if minimum else "a non-negative integer"
    allowed = kind + (" or a pair of them" if nd == 2 else "")
    items = (value,) * nd if isinstance(value, numbers.Integral) else value
    if (not isinstance(items, (tuple, list)) or len(items) != nd
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items)
            or isinstance(value, bool)):
        raise InvalidTypeError(_validate.message(where, name, allowed, value))
    if min(items) < minimum:
        raise InvalidValueError(_validate.message(where, name, allowed, value))
    return tuple(int(v) for v in items)


def _check_input(where: str, x: np.ndarray, channels: int | None, nd: int = 2) -> None:
    """An ``(N, C, *spatial)`` input with ``nd`` spatial axes (and ``channels`` channels when given)."""
    c = "C" if channels is None else str(channels)
    if x.ndim != nd + 2 or (channels is not None and x.shape[1] != channels):
        raise InvalidValueError(f"{where}: input must have shape (N, {c}, {_AXES[nd]}); got shape {x.shape}.")


def _out_size(where: str, size: tuple[int, ...], extent: tuple[int, ...], stride: tuple[int, ...],
              shape: tuple[int, ...], what: str = "kernel size") -> tuple[int, ...]:
    """Output length per spatial axis; an input smaller than the kernel's extent is an error, not
    an empty output."""
    if any(s < e for s, e in zip(size, extent)):
        kernel = extent if len(extent) > 1 else extent[0]
        raise InvalidValueError(
            f"{where}: input must be at least the {what} {kernel} in {_AXES[len(extent)].replace(', ', ' and ')} "
            f"(after any padding); got shape {shape}."
        )
    return tuple((s - e) // st + 1 for s, e, st in zip(size, extent, stride))


def _offset(a: np.ndarray, start: tuple[int, ...], stride: tuple[int, ...], out: tuple[int, ...],
            axes: tuple[int, ...]) -> np.ndarray:
    """The view of ``a`` read by one kernel offset of every window: ``a[.., start + stride*o, ..]``
    along each of ``axes``."""
    index = [slice(None)] * a.ndim
    for ax, b, s, o in zip(axes, start, stride, out):
        index[ax] = slice(b, b + s * (o - 1) + 1, s)
    return a[tuple(index)]


def _im2col(xp: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
            out: tuple[int, ...]) -> np.ndarray:
    """The ``(N*prod(out), prod(kernel)*C)`` window matrix of a channels-last ``(N, *spatial, C)``
    array, rows in (n, *out) order, columns in (*kernel, c) order: one strided view, one copy."""
    n, c = xp.shape[0], xp.shape[-1]
    s = xp.strides
    nd = len(kernel)
    win = as_strided(xp, (n, *out, *kernel, c),
                      (s[0], *(s[1 + a] * stride[a] for a in range(nd)), *(s[1 + a] * dilation[a] for a in range(nd)),
                       s[-1]), writeable=False)
    # explicit sizes, not -1: a 0-row batch has none to infer
    return np.ascontiguousarray(win).reshape(n * math.prod(out), math.prod(kernel) * c)


class _ConvNd(Module):
    """The convolution of ``Conv1d`` and ``Conv2d``: checks, initialisation, forward, backward.

    A subclass sets ``_nd`` (its number of spatial axes) and ``_config`` (its constructor's
    arguments); everything else is here.
    """

    _nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding, dilation, bias: bool,
                 l2: float, init: str, seed: _rng.Seed, dtype) -> None:
        super().__init__()
        where, nd = type(self).__name__, self._nd
        self.in_channels = _validate.positive_int(where, "in_channels", in_channels)
        self.out_channels = _validate.positive_int(where, "out_channels", out_channels)
        self.kernel_size = _ints(where, "kernel_size", kernel_size, nd)
        self.stride = _ints(where, "stride", stride, nd)
        self.padding = _ints(where, "padding", padding, nd, minimum=0)
        self.dilation = _ints(where, "dilation", dilation, nd)
        if not isinstance(bias, (bool, np.bool_)):
            raise InvalidTypeError(_validate.message(where, "bias", "True or False", bias))
        self.use_bias = bool(bias)
        self.l2 = _validate.nonnegative_float(where, "l2", l2)
        self.init = _validate.one_of(where, "init", init, _INITS)
        self.dtype = _validate.float_dtype(where, dtype)
        _validate.parameter_budget(where, "out_channels * in_channels * kernel_size",
                                   self.out_channels * self.in_channels * math.prod(self.kernel_size))
        self.weight = Parameter(np.zeros((self.out_channels, self.in_channels, *self.kernel_size), self.dtype),
                                "weight")
        self.bias = Parameter(np.zeros(self.out_channels, self.dtype), "bias")
        self._cols: np.ndarray | None = None
        self._xshape: tuple[int, ...] = ()
        self._out: tuple[int, ...] = ()
        self._reseed(_rng.seed_sequence(seed, where))
        self._explicit_seed = seed is not None

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        g = _rng.generator(ss)
        shape = self.weight.value.shape
        area = math.prod(self.kernel_size)
        fan_in, fan_out = self.in_channels * area, self.out_channels * area
        b = np.zeros(self.out_channels)
        if self.init == "he":
            w = g.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif self.init == "lecun":
            w = g.standard_normal(shape) * np.sqrt(1.0 / fan_in)
        elif self.init == "glorot":
            w = g.uniform(-1, 1, shape) * np.sqrt(6.0 / (fan_in + fan_out))
        else:
            bound = 1.0 / np.sqrt(fan_in)
            w = g.uniform(-bound, bound, shape)
            b = g.uniform(-bound, bound, self.out_channels)  # drawn with or without a bias: same weights
        self.weight.value[...] = w
        self.bias.value[...] = b if self.use_bias else 0

    def _parameters(self) -> list[Parameter]:
        return [self.weight, self.bias] if self.use_bias else [self.weight]

    def _matrix(self) -> np.ndarray:
        """The weight as ``(prod(kernel)*C, out)``, rows in the (*kernel, c) order of the columns."""
        nd = self._nd
        return self.weight.value.transpose(*range(2, nd + 2), 1, 0).reshape(-1, self.out_channels)

    def forward(self, x: np.ndarray) -> np.ndarray:
        where, nd = type(self).__name__, self._nd
        x = np.asarray(x, dtype=self.dtype)
        _check_input(where, x, self.in_channels, nd)
        n, c, size = x.shape[0], x.shape[1], x.shape[2:]
        padded = tuple(s + 2 * p for s, p in zip(size, self.padding))
        extent = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))
        out = _out_size(where, padded, extent, self.stride, x.shape,
                        "kernel size" if max(self.dilation) == 1 else "dilated kernel size")
        # channels-last inside: every copy below then moves runs of C contiguous numbers,
        # which is several times faster than the kernel-innermost order of NCHW windows
        xc = x.transpose(0, *range(2, nd + 2), 1)
        if any(self.padding):
            xp = np.zeros((n, *padded, c), self.dtype)
            xp[(slice(None), *(slice(p, p + s) for p, s in zip(self.padding, size)))] = xc
        else:
            xp = xc  # a view: the window copy below is the only one
        cols = _im2col(xp, self.kernel_size, self.stride, self.dilation, out)
        y = cols @ self._matrix()
        if self.use_bias:
            y += self.bias.value
        self._cols, self._xshape, self._out = cols, xp.shape, out
        return np.ascontiguousarray(y.reshape(n, *out, self.out_channels).transpose(0, nd + 1, *range(1, nd + 1)))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._backward(dy, True)

    def _backward(self, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        """``backward``; with ``need_dx=False`` (a first layer inside ``fit``) the input
        gradient, a third of the work, is skipped and None returned."""
        if self._cols is None:
            raise self._no_forward()
        nd = self._nd
        dy = np.asarray(dy, dtype=self.dtype)
        n, c = self._xshape[0], self._xshape[-1]
        out, kernel, o = self._out, self.kernel_size, self.out_channels
        rows = n * math.prod(out)
        dy2 = dy.transpose(0, *range(2, nd + 2), 1).reshape(rows, o)
        dw = dy2.T @ self._cols  # (out, prod(kernel)*C)
        self.weight.grad += dw.reshape(o, *kernel, c).transpose(0, nd + 1, *range(1, nd + 1))
        if self.use_bias:  # a product with ones: BLAS, several times faster than sum(axis=0) on tall dy2
            self.bias.grad += np.ones(rows, self.dtype) @ dy2
        if self.l2 and not self._tape_calls:  # once per pass for a reused layer (see Module)
            self.weight.grad += (2 * self.l2) * self.weight.value
        if not need_dx:
            return None
        # one (rows, C) block per kernel offset, each contiguous, so col2im adds whole blocks
        parts = np.matmul(dy2, self.weight.value.transpose(*range(2, nd + 2), 0, 1))  # (*kernel, rows, C)
        dx = np.zeros(self._xshape, self.dtype)
        axes = tuple(range(1, nd + 1))
        for idx in itertools.product(*map(range, kernel)):
            start = tuple(i * d for i, d in zip(idx, self.dilation))
            _offset(dx, start, self.stride, out, axes)[...] += parts[idx].reshape(n, *out, c)
        inner = dx[(slice(None), *(slice(p, p + s - 2 * p) for p, s in zip(self.padding, self._xshape[1:-1])))]
        return np.ascontiguousarray(inner.transpose(0, nd + 1, *range(1, nd + 1)))

    def _penalty(self) -> float:
        if not self.l2:
            return 0.0
        w = self.weight.value
        return self.l2 * float((w * w).sum())


class Conv1d(_ConvNd):
    """1-D convolution (cross-correlation, as in PyTorch) on ``(N, C, L)``, im2col + matmul.

    ``y[n, o, l] = b[o] + sum_{c,i} W[o, c, i] * x_pad[n, c, s*l + d*i]``, with the input
    zero-padded by ``padding`` on each side, stride ``s`` and dilation ``d``. The same in
    training and eval. It is :class:`Conv2d`'s code with one spatial axis.

    Args:
        in_channels (int): ``C`` of the input.
        out_channels (int): channels of the output.
        kernel_size (int): taps ``k`` of the kernel.
        stride (int): step between windows. Default 1.
        padding (int): zeros added on each side of L. Default 0.
        dilation (int): spacing between taps (1: adjacent). Default 1.
        bias (bool): add a learned bias per output channel. Default True.
        l2 (float): penalty ``l2 * sum W**2`` (not on the bias) in ``regularization_loss()``;
            ``backward`` adds ``2 * l2 * W`` into ``W.grad``. Default 0.
        init (str): as for ``Dense``, with fan-in ``C*k`` and fan-out ``out*k``: ``"he"``
            (default), ``"glorot"``, ``"lecun"`` or ``"torch"`` (PyTorch's uniform
            ``±1/sqrt(C*k)``, bias included).
        seed (int | np.random.Generator | None): seed of the initial weights. Default None.
        dtype: float32 (default) or float64. Integer and bool input is computed in ``dtype``.

    Shape:
        input ``(N, in_channels, L)``, output ``(N, out_channels, Lo)`` with
        ``Lo = (L + 2*padding - dilation*(k - 1) - 1) // stride + 1``. Weight
        ``(out_channels, in_channels, k)``, bias ``(out_channels,)`` (absent with ``bias=False``).

    Raises:
        ValueError / TypeError: for a non-positive size, stride or dilation, a negative padding
            or penalty, a non-bool ``bias``, an unknown ``init``, a dtype other than
            float32/float64, or an input that is not ``(N, in_channels, L)`` or is shorter than
            the dilated kernel.

    Example:
        >>> import numpy as np
        >>> x = np.zeros((8, 1, 40), np.float32)  # MNIST-1D's CNN: 40 -> 19 -> 10 -> 5
        >>> for conv in (Conv1d(1, 25, 5, stride=2, padding=1), Conv1d(25, 25, 3, stride=2, padding=1),
        ...              Conv1d(25, 25, 3, stride=2, padding=1)):
        ...     x = conv.forward(x)
        ...     print(x.shape)
        (8, 25, 19)
        (8, 25, 10)
        (8, 25, 5)
        >>> [p.value.shape for p in Conv1d(2, 3, 4, bias=False, seed=0).parameters()]
        [(3, 2, 4)]
        >>> Conv1d(2, 3, 3, dilation=2, seed=0).forward(np.zeros((1, 2, 9))).shape
        (1, 3, 5)

    Reference:
        LeCun et al., "Gradient-Based Learning Applied to Document Recognition", Proc. IEEE 1998;
        Greydanus, "Scaling down Deep Learning" (MNIST-1D), arXiv:2011.14439, 2020.
    """

    _nd = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = True, l2: float = 0.0, init: str = "he",
                 seed: _rng.Seed = None, dtype=np.float32) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias, l2, init, seed,
                         dtype)
        self._config = dict(in_channels=self.in_channels, out_channels=self.out_channels,
                            kernel_size=self.kernel_size[0], stride=self.stride[0], padding=self.padding[0],
                            dilation=self.dilation[0], bias=self.use_bias, l2=self.l2, init=self.init,
                            dtype=self.dtype.name)


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation, as in PyTorch) on ``(N, C, H, W)``, im2col + matmul.

    ``y[n, o] = b[o] + sum_{c,i,j} W[o, c, i, j] * x_pad[n, c, s*h + i, s*w + j]``, with the
    input zero-padded by ``padding`` on each side.

    Args:
        in_channels (int): ``C`` of the input.
        out_channels (int): channels of the output.
        kernel_size (int | tuple[int, int]): ``(kh, kw)``; an int means square.
        stride (int | tuple[int, int]): step between windows. Default 1.
        padding (int | tuple[int, int]): zeros added on each side of H and W. Default 0.
        l2 (float): penalty ``l2 * sum W**2`` (not on the bias) in ``regularization_loss()``;
            ``backward`` adds ``2 * l2 * W`` into ``W.grad``. Default 0.
        init (str): as for ``Dense``, with fan-in ``C*kh*kw`` and fan-out ``out*kh*kw``:
            ``"he"`` (default), ``"glorot"``, ``"lecun"`` or ``"torch"``.
        seed (int | np.random.Generator | None): seed of the initial weights. Default None.
        dtype: float32 (default) or float64.

    Shape:
        input ``(N, in_channels, H, W)``, output ``(N, out_channels, Ho, Wo)`` with
        ``Ho = (H + 2*ph - kh) // sh + 1`` (and the same for W). Weight
        ``(out_channels, in_channels, kh, kw)``, bias ``(out_channels,)``.

    Raises:
        ValueError / TypeError: for a non-positive size or stride, a negative padding or
            penalty, an unknown ``init``, a dtype other than float32/float64, or an input that
            is not ``(N, in_channels, H, W)`` or is smaller than the kernel.

    Example:
        >>> import numpy as np
        >>> conv = Conv2d(1, 4, 3, padding=1, seed=0)
        >>> conv.forward(np.zeros((2, 1, 8, 8), np.float32)).shape
        (2, 4, 8, 8)
        >>> Conv2d(3, 8, (3, 5), stride=2, seed=0).forward(np.zeros((1, 3, 9, 9), np.float32)).shape
        (1, 8, 4, 3)
        >>> [p.value.shape for p in conv.parameters()]
        [(4, 1, 3, 3), (4,)]
    """

    _nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *, stride=1, padding=0,
                 l2: float = 0.0, init: str = "he", seed: _rng.Seed = None, dtype=np.float32) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, 1, True, l2, init, seed, dtype)
        self._config = dict(in_channels=self.in_channels, out_channels=self.out_channels,
                            kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            l2=self.l2, init=self.init, dtype=self.dtype.name)


class _PoolNd(Module):
    """Shared window logic of the pools (no padding; stride defaults to the kernel size).

    A subclass sets ``_nd``, the number of spatial axes.
    """

    _nd = 2

    def __init__(self, kernel_size, stride=None) -> None:
        super().__init__()
        where, nd = type(self).__name__, self._nd
        self.kernel_size = _ints(where, "kernel_size", kernel_size, nd)
        self.stride = self.kernel_size if stride is None else _ints(where, "stride", stride, nd)
        self._config = (dict(kernel_size=self.kernel_size, stride=self.stride) if nd > 1 else
                        dict(kernel_size=self.kernel_size[0], stride=None if stride is None else self.stride[0]))
        self._xshape: tuple[int, ...] | None = None
        self._out: tuple[int, ...] = ()

    def _offsets(self, x: np.ndarray):
        """Checks ``x`` and yields ``(k, view)`` for each kernel offset, ``k`` in row-major order.

        Working one offset at a time on strided views (``prod(kernel)`` whole-array
        operations) avoids copying every window, which is several times slower for small kernels.
        """
        where = type(self).__name__
        _check_input(where, x, None, self._nd)
        self._out = _out_size(where, x.shape[2:], self.kernel_size, self.stride, x.shape)
        self._xshape = x.shape
        return self._views(x)

    def _views(self, a: np.ndarray):
        axes = tuple(range(2, self._nd + 2))
        for k, start in enumerate(itertools.product(*map(range, self.kernel_size))):
            yield k, _offset(a, start, self.stride, self._out, axes)


class _MaxPool(_PoolNd):
    """The max pool of ``MaxPool1d`` and ``MaxPool2d``."""

    def __init__(self, kernel_size, stride=None) -> None:
        super().__init__(kernel_size, stride)
        self._arg: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(type(self).__name__, x)
        views = self._offsets(x)
        _, first = next(views)
        y = first.copy()
        k_max = math.prod(self.kernel_size)
        arg = np.zeros(y.shape, np.uint8 if k_max <= 256 else np.intp)
        for k, view in views:
            better = view > y  # strict: on a tie the earlier offset keeps the maximum
            np.copyto(y, view, where=better)
            arg[better] = k
        self._arg = arg
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._arg is None:
            raise self._no_forward()
        dy = np.asarray(dy)
        dx = np.zeros(self._xshape, dtype=np.result_type(dy.dtype, np.float32))
        for k, view in self._views(dx):
            view += np.where(self._arg == k, dy, 0)
        return dx


class _AvgPool(_PoolNd):
    """The mean pool of ``AvgPool1d`` and ``AvgPool2d``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(type(self).__name__, x)
        views = self._offsets(x)
        _, first = next(views)
        y = first.copy()
        for _, view in views:
            y += view
        y *= 1.0 / math.prod(self.kernel_size)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._xshape is None:
            raise self._no_forward()
        dy = np.asarray(dy)
        dx = np.zeros(self._xshape, dtype=np.result_type(dy.dtype, np.float32))
        part = dy * (1.0 / math.prod(self.kernel_size))  # keeps float32
        for _, view in self._views(dx):
            view += part
        return dx


class MaxPool1d(_MaxPool):
    """Max over each window of ``k`` steps of ``(N, C, L)``; no padding.

    Backward routes each output's gradient to the position of its window's maximum (the
    first one when several are equal), adding where windows overlap. The same in training
    and eval.

    Args:
        kernel_size (int): window ``k``.
        stride (int | None): step between windows; None (default) means ``kernel_size``
            (non-overlapping windows), as in PyTorch.

    Shape:
        input ``(N, C, L)``, output ``(N, C, (L - k) // stride + 1)``.

    Raises:
        ValueError / TypeError: for a non-positive kernel size or stride, or an input that is
            not 3-D or is shorter than the window.

    Example:
        >>> import numpy as np
        >>> pool = MaxPool1d(2)
        >>> pool.forward(np.array([[[1.0, 3.0, 2.0, 0.0, 5.0]]])).tolist()
        [[[3.0, 2.0]]]
        >>> pool.backward(np.ones((1, 1, 2))).tolist()
        [[[0.0, 1.0, 1.0, 0.0, 0.0]]]

    Reference:
        Zhou & Chellappa, "Computation of optical flow using a neural network", ICNN 1988.
    """

    _nd = 1


class MaxPool2d(_MaxPool):
    """Max over each ``kh x kw`` window of ``(N, C, H, W)``; no padding.

    Backward routes each output's gradient to the position of its window's maximum (the
    first one, in row-major window order, when several are equal), adding where windows
    overlap.

    Args:
        kernel_size (int | tuple[int, int]): window ``(kh, kw)``.
        stride (int | tuple[int, int] | None): step between windows; None (default) means
            ``kernel_size`` (non-overlapping windows).

    Shape:
        input ``(N, C, H, W)``, output ``(N, C, (H - kh) // sh + 1, (W - kw) // sw + 1)``.

    Raises:
        ValueError / TypeError: for a non-positive kernel size or stride, or an input that is
            not 4-D or is smaller than the window.

    Example:
        >>> import numpy as np
        >>> pool = MaxPool2d(2)
        >>> pool.forward(np.arange(16.0).reshape(1, 1, 4, 4)).tolist()
        [[[[5.0, 7.0], [13.0, 15.0]]]]
        >>> float(pool.backward(np.ones((1, 1, 2, 2))).sum())
        4.0
    """

    _nd = 2


class AvgPool1d(_AvgPool):
    """Mean over each window of ``k`` steps of ``(N, C, L)``; no padding.

    Backward spreads each output's gradient evenly, ``dy / k``, over its window. The same in
    training and eval.

    Args:
        kernel_size (int): window ``k``.
        stride (int | None): step between windows; None (default) means ``kernel_size``.

    Shape:
        input ``(N, C, L)``, output ``(N, C, (L - k) // stride + 1)``.

    Raises:
        ValueError / TypeError: for a non-positive kernel size or stride, or an input that is
            not 3-D or is shorter than the window.

    Example:
        >>> import numpy as np
        >>> AvgPool1d(2).forward(np.arange(5.0).reshape(1, 1, 5)).tolist()
        [[[0.5, 2.5]]]
        >>> AvgPool1d(3, stride=1).forward(np.zeros((2, 4, 10), np.float32)).shape
        (2, 4, 8)

    Reference:
        LeCun et al., "Gradient-Based Learning Applied to Document Recognition", Proc. IEEE 1998.
    """

    _nd = 1


class AvgPool2d(_AvgPool):
    """Mean over each ``kh x kw`` window of ``(N, C, H, W)``; no padding.

    Backward spreads each output's gradient evenly, ``dy / (kh*kw)``, over its window.

    Args:
        kernel_size (int | tuple[int, int]): window ``(kh, kw)``.
        stride (int | tuple[int, int] | None): step between windows; None (default) means
            ``kernel_size``.

    Shape:
        input ``(N, C, H, W)``, output ``(N, C, (H - kh) // sh + 1, (W - kw) // sw + 1)``.

    Raises:
        ValueError / TypeError: for a non-positive kernel size or stride, or an input that is
            not 4-D or is smaller than the window.

    Example:
        >>> import numpy as np
        >>> AvgPool2d(2).forward(np.arange(16.0).reshape(1, 1, 4, 4)).tolist()
        [[[[2.5, 4.5], [10.5, 12.5]]]]
        >>> AvgPool2d(3, stride=1).forward(np.zeros((2, 3, 5, 5), np.float32)).shape
        (2, 3, 3, 3)
    """

    _nd = 2


class GlobalAvgPool1d(Module):
    """Mean over the whole length of ``(N, C, L)``: one number per channel.

    PyTorch writes this ``AdaptiveAvgPool1d(1)`` (output ``(N, C, 1)``); droplab names what it
    does, as Keras' ``GlobalAveragePooling1D`` does, and by default drops the length axis so a
    ``Dense`` head follows directly (``keepdims=True`` gives PyTorch's shape). Backward spreads
    ``dy / L`` over every position. The same in training and eval.

    Args:
        keepdims (bool): keep the length axis as size 1, ``(N, C, 1)``. Default False: ``(N, C)``.

    Shape:
        input ``(N, C, L)``, output ``(N, C)``, or ``(N, C, 1)`` with ``keepdims``.

    Raises:
        ValueError / TypeError: for a non-bool ``keepdims``, or an input that is not 3-D or has
            ``L = 0``.

    Example:
        >>> import numpy as np
        >>> x = np.arange(6.0).reshape(1, 2, 3)
        >>> GlobalAvgPool1d().forward(x).tolist()
        [[1.0, 4.0]]
        >>> GlobalAvgPool1d(keepdims=True).forward(x).shape
        (1, 2, 1)

    Reference:
        Lin, Chen & Yan, "Network In Network", ICLR 2014 (global average pooling).
    """

    def __init__(self, keepdims: bool = False) -> None:
        super().__init__()
        if not isinstance(keepdims, (bool, np.bool_)):
            raise InvalidTypeError(_validate.message("GlobalAvgPool1d", "keepdims", "True or False", keepdims))
        self.keepdims = bool(keepdims)
        self._config = dict(keepdims=self.keepdims)
        self._xshape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float("GlobalAvgPool1d", x)
        if x.ndim != 3 or x.shape[2] == 0:
            raise InvalidValueError(f"GlobalAvgPool1d: input must have shape (N, C, L) with L >= 1; got shape {x.shape}.")
        self._xshape = x.shape
        return x.mean(axis=2, keepdims=self.keepdims)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._xshape is None:
            raise self._no_forward()
        dy = np.asarray(dy)
        n, c, length = self._xshape
        part = dy.reshape(n, c, 1) * (1.0 / length)  # keeps float32
        return np.broadcast_to(part, self._xshape).astype(np.result_type(part.dtype, np.float32))
