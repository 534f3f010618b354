"""Convolution and pooling on ``(N, C, H, W)``: ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``.

``Conv2d`` is im2col plus one matrix product. Inside it works channels-last: the padded
input's sliding windows (a strided view) are copied once into a ``(N*Ho*Wo, kh*kw*C)``
matrix and multiplied by the ``(kh*kw*C, out)`` weight matrix. Backward is the transpose:
one product for the weight gradient, one batched product giving a contiguous
``(N*Ho*Wo, C)`` block per kernel offset, and col2im, which adds each block into the input
gradient with one strided slice addition per offset (``kh*kw`` of them, instead of a slow
``np.add.at``). The pools use the same per-offset views and never copy the windows.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from droplab import _rng, _validate
from droplab.nn.module import Module, Parameter, _as_float

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d"]

_INITS = ("he", "glorot", "lecun", "torch")


def _pair(where: str, name: str, value: Any, *, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= ``minimum`` (1: positive, 0: non-negative)."""
    allowed = "a positive integer or a pair of them" if minimum else "a non-negative integer or a pair of them"
    items = (value, value) if isinstance(value, numbers.Integral) else value
    if (not isinstance(items, (tuple, list)) or len(items) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items)
            or isinstance(value, bool)):
        raise TypeError(_validate.message(where, name, allowed, value))
    if min(items) < minimum:
        raise ValueError(_validate.message(where, name, allowed, value))
    return int(items[0]), int(items[1])


def _check_input(where: str, x: np.ndarray, channels: int | None) -> None:
    """A 4-D ``(N, C, H, W)`` input (with ``channels`` channels when given)."""
    c = "C" if channels is None else str(channels)
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        raise ValueError(f"{where}: input must have shape (N, {c}, H, W); got shape {x.shape}.")


def _out_size(where: str, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
              shape: tuple[int, ...]) -> tuple[int, int]:
    """Output height and width; an input smaller than the kernel is an error, not an empty output."""
    if size[0] < kernel[0] or size[1] < kernel[1]:
        raise ValueError(
            f"{where}: input must be at least the kernel size {kernel} in H and W (after any padding); "
            f"got shape {shape}."
        )
    return (size[0] - kernel[0]) // stride[0] + 1, (size[1] - kernel[1]) // stride[1] + 1


def _offset(a: np.ndarray, i: int, j: int, stride: tuple[int, int], out: tuple[int, int],
            axes: tuple[int, int] = (2, 3)) -> np.ndarray:
    """The view of ``a`` read by kernel offset ``(i, j)`` of every window: ``a[.., i + s*h, j + s*w, ..]``."""
    index = [slice(None)] * a.ndim
    index[axes[0]] = slice(i, i + stride[0] * (out[0] - 1) + 1, stride[0])
    index[axes[1]] = slice(j, j + stride[1] * (out[1] - 1) + 1, stride[1])
    return a[tuple(index)]


class Conv2d(Module):
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

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *, stride=1, padding=0,
                 l2: float = 0.0, init: str = "he", seed: _rng.Seed = None, dtype=np.float32) -> None:
        super().__init__()
        where = "Conv2d"
        self.in_channels = _validate.positive_int(where, "in_channels", in_channels)
        self.out_channels = _validate.positive_int(where, "out_channels", out_channels)
        self.kernel_size = _pair(where, "kernel_size", kernel_size)
        self.stride = _pair(where, "stride", stride)
        self.padding = _pair(where, "padding", padding, minimum=0)
        self.l2 = _validate.nonnegative_float(where, "l2", l2)
        self.init = _validate.one_of(where, "init", init, _INITS)
        self.dtype = _validate.float_dtype(where, dtype)
        self._config = dict(in_channels=self.in_channels, out_channels=self.out_channels,
                            kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            l2=self.l2, init=self.init, dtype=self.dtype.name)
        kh, kw = self.kernel_size
        self.weight = Parameter(np.zeros((self.out_channels, self.in_channels, kh, kw), self.dtype), "weight")
        self.bias = Parameter(np.zeros(self.out_channels, self.dtype), "bias")
        self._cols: np.ndarray | None = None
        self._xshape: tuple[int, ...] = ()
        self._out: tuple[int, int] = (0, 0)
        self._reseed(_rng.seed_sequence(seed, where))
        self._explicit_seed = seed is not None

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        g = _rng.generator(ss)
        shape = self.weight.value.shape
        area = shape[2] * shape[3]
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
            b = g.uniform(-bound, bound, self.out_channels)
        self.weight.value[...] = w
        self.bias.value[...] = b

    def _parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]

    def _matrix(self) -> np.ndarray:
        """The weight as ``(kh*kw*C, out)``, rows in the (i, j, c) order of the columns."""
        return self.weight.value.transpose(2, 3, 1, 0).reshape(-1, self.out_channels)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        _check_input("Conv2d", x, self.in_channels)
        n, c, h, w = x.shape
        ph, pw = self.padding
        kh, kw = self.kernel_size
        ho, wo = _out_size("Conv2d", (h + 2 * ph, w + 2 * pw), self.kernel_size, self.stride, x.shape)
        # channels-last inside: every copy below then moves runs of C contiguous numbers,
        # which is several times faster than the (kh, kw)-innermost order of NCHW windows
        xn = np.zeros((n, h + 2 * ph, w + 2 * pw, c), self.dtype)
        xn[:, ph:ph + h, pw:pw + w, :] = x.transpose(0, 2, 3, 1)
        win = sliding_window_view(xn, self.kernel_size, axis=(1, 2))[:, ::self.stride[0], ::self.stride[1]]
        # explicit sizes, not -1: a 0-row batch has none to infer
        cols = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(n * ho * wo, kh * kw * c)
        y = cols @ self._matrix()
        y += self.bias.value
        self._cols, self._xshape, self._out = cols, xn.shape, (ho, wo)
        return np.ascontiguousarray(y.reshape(n, ho, wo, self.out_channels).transpose(0, 3, 1, 2))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._cols is None:
            raise self._no_forward()
        dy = np.asarray(dy, dtype=self.dtype)
        n, hp, wp, c = self._xshape
        ho, wo = self._out
        kh, kw = self.kernel_size
        o = self.out_channels
        dy2 = dy.transpose(0, 2, 3, 1).reshape(n * ho * wo, o)
        dw = dy2.T @ self._cols  # (out, kh*kw*C)
        self.weight.grad += dw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2)
        self.bias.grad += dy2.sum(axis=0)
        if self.l2 and not self._tape_calls:  # once per pass for a reused layer (see Module)
            self.weight.grad += (2 * self.l2) * self.weight.value
        # one (N*Ho*Wo, C) block per kernel offset, each contiguous, so col2im adds whole blocks
        parts = np.matmul(dy2, self.weight.value.transpose(2, 3, 0, 1))  # (kh, kw, N*Ho*Wo, C)
        dx = np.zeros(self._xshape, self.dtype)
        for i in range(kh):
            for j in range(kw):
                _offset(dx, i, j, self.stride, (ho, wo), axes=(1, 2))[...] += parts[i, j].reshape(n, ho, wo, c)
        ph, pw = self.padding
        return np.ascontiguousarray(dx[:, ph:hp - ph, pw:wp - pw, :].transpose(0, 3, 1, 2))

    def _penalty(self) -> float:
        if not self.l2:
            return 0.0
        w = self.weight.value
        return self.l2 * float((w * w).sum())


class _Pool2d(Module):
    """Shared window logic of the 2-D pools (no padding; stride defaults to the kernel size)."""

    def __init__(self, kernel_size, stride=None) -> None:
        super().__init__()
        where = type(self).__name__
        self.kernel_size = _pair(where, "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _pair(where, "stride", stride)
        self._config = dict(kernel_size=self.kernel_size, stride=self.stride)
        self._xshape: tuple[int, ...] | None = None
        self._out: tuple[int, int] = (0, 0)

    def _offsets(self, x: np.ndarray):
        """Checks ``x`` and yields ``(k, view)`` for each kernel offset, ``k`` in row-major order.

        Working one offset at a time on strided views (``kh*kw`` whole-array operations)
        avoids copying every window, which is several times slower for small kernels.
        """
        where = type(self).__name__
        _check_input(where, x, None)
        self._out = _out_size(where, x.shape[2:], self.kernel_size, self.stride, x.shape)
        self._xshape = x.shape
        return self._views(x)

    def _views(self, a: np.ndarray):
        kh, kw = self.kernel_size
        for i in range(kh):
            for j in range(kw):
                yield i * kw + j, _offset(a, i, j, self.stride, self._out)


class MaxPool2d(_Pool2d):
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

    def __init__(self, kernel_size, stride=None) -> None:
        super().__init__(kernel_size, stride)
        self._arg: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float("MaxPool2d", x)
        views = self._offsets(x)
        _, first = next(views)
        y = first.copy()
        k_max = self.kernel_size[0] * self.kernel_size[1]
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


class AvgPool2d(_Pool2d):
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

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float("AvgPool2d", x)
        views = self._offsets(x)
        _, first = next(views)
        y = first.copy()
        for _, view in views:
            y += view
        y *= 1.0 / (self.kernel_size[0] * self.kernel_size[1])
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._xshape is None:
            raise self._no_forward()
        dy = np.asarray(dy)
        dx = np.zeros(self._xshape, dtype=np.result_type(dy.dtype, np.float32))
        part = dy * (1.0 / (self.kernel_size[0] * self.kernel_size[1]))  # keeps float32
        for _, view in self._views(dx):
            view += part
        return dx
