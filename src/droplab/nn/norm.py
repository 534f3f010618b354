"""Batch normalisation: ``BatchNorm1d`` on ``(N, F)`` and ``BatchNorm2d`` on ``(N, C, H, W)``.

Both are one implementation over a set of reduction axes (``(0,)`` and ``(0, 2, 3)``): a
feature's (channel's) statistics are taken over every other axis.
"""

from __future__ import annotations

import math
import numbers

from droplab.errors import InvalidTypeError, InvalidValueError
import numpy as np

from droplab import _validate
from droplab.nn.module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    """``y = gamma * (x - mean) / sqrt(var + eps) + beta`` per feature, over ``_axes``.

    Subclasses set ``_axes`` (the reduction axes), ``_layout`` (the input shape, for
    messages) and the name of their size argument; everything else is shared.
    """

    _axes: tuple[int, ...] = (0,)
    _layout: str = "(N, {})"

    def __init__(self, size_name: str, size: int, momentum: float, eps: float, dtype) -> None:
        super().__init__()
        where = type(self).__name__
        self._size_name = size_name
        self.num_features = _validate.positive_int(where, size_name, size)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
            raise InvalidTypeError(_validate.message(where, "momentum", "a number in [0, 1]", momentum))
        if not (math.isfinite(momentum) and 0.0 <= momentum <= 1.0):
            raise InvalidValueError(_validate.message(where, "momentum", "a number in [0, 1]", momentum))
        self.momentum = float(momentum)
        self.eps = _validate.positive_float(where, "eps", eps)
        self.dtype = _validate.float_dtype(where, dtype)
        self._config = {self._size_name: self.num_features, "momentum": self.momentum, "eps": self.eps,
                        "dtype": self.dtype.name}
        f = self.num_features
        self.weight = Parameter(np.ones(f, self.dtype), "weight")  # gamma
        self.bias = Parameter(np.zeros(f, self.dtype), "bias")  # beta
        # buffers: state that is saved with the model but not trained
        self.running_mean = np.zeros(f, self.dtype)
        self.running_var = np.ones(f, self.dtype)
        self.num_batches_tracked = 0
        self._xhat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None
        self._batch_stats = False

    def _parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]

    def _buffers(self) -> dict[str, np.ndarray]:
        # the live running statistics (updated in place, so model files can load into them)
        return {"running_mean": self.running_mean, "running_var": self.running_var,
                "num_batches_tracked": np.asarray(self.num_batches_tracked, np.int64)}

    def _shape(self, v: np.ndarray, ndim: int) -> np.ndarray:
        """A per-feature vector shaped to broadcast against the input (feature axis 1)."""
        return v.reshape((1, -1) + (1,) * (ndim - 2))

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        ndim = len(self._axes) + 1
        if x.ndim != ndim or x.shape[1] != self.num_features:
            expected = self._layout.format(self.num_features)
            raise InvalidValueError(f"{type(self).__name__}: input must have shape {expected}; got shape {x.shape}.")
        if self.training:
            n = x.size // self.num_features
            if n < 2:
                raise InvalidValueError(
                    f"{type(self).__name__}: training needs more than one value per feature to take batch "
                    f"statistics; got shape {x.shape}. Use a larger batch, or call eval()."
                )
            mean = x.mean(axis=self._axes)
            var = x.var(axis=self._axes)  # biased: the batch is normalised by its own variance
            m = self.momentum
            self.running_mean *= 1 - m
            self.running_mean += m * mean
            self.running_var *= 1 - m
            self.running_var += (m * n / (n - 1)) * var  # unbiased, as PyTorch keeps it
            self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = 1.0 / np.sqrt(var + self.dtype.type(self.eps))
        xhat = (x - self._shape(mean, ndim)) * self._shape(inv_std, ndim)
        self._xhat, self._inv_std, self._batch_stats = xhat, inv_std, self.training
        return xhat * self._shape(self.weight.value, ndim) + self._shape(self.bias.value, ndim)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._xhat is None:
            raise self._no_forward()
        dy = np.asarray(dy, dtype=self.dtype)
        xhat, ndim = self._xhat, self._xhat.ndim
        self.weight.grad += (dy * xhat).sum(axis=self._axes)
        self.bias.grad += dy.sum(axis=self._axes)
        scale = self._shape(self.weight.value * self._inv_std, ndim)
        if not self._batch_stats:  # running statistics are constants
            return dy * scale
        # mean and variance depend on x: dx = gamma/std * (dy - mean(dy) - xhat * mean(dy * xhat))
        mean_dy = dy.mean(axis=self._axes, keepdims=True)
        mean_dy_xhat = (dy * xhat).mean(axis=self._axes, keepdims=True)
        return (dy - mean_dy - xhat * mean_dy_xhat) * scale


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of each feature of ``(N, F)`` (Ioffe and Szegedy 2015).

    Training: each feature is normalised by the mean and (biased) variance of the batch,
    then scaled and shifted by learnable ``weight`` (gamma, starts at 1) and ``bias``
    (beta, starts at 0). The running statistics are updated as
    ``running = (1 - momentum) * running + momentum * batch``, with the unbiased batch
    variance for ``running_var`` (as in PyTorch). Eval: the running statistics are used
    instead, so the output no longer depends on the rest of the batch. ``backward`` is the
    exact gradient of whichever statistics the forward pass used.

    Args:
        features (int): ``F``.
        momentum (float): weight of the new batch in the running statistics, in [0, 1].
            Default 0.1.
        eps (float): added to the variance, > 0. Default 1e-5.
        dtype: float32 (default) or float64.

    Attributes:
        running_mean, running_var (np.ndarray): ``(F,)`` buffers (not Parameters).
        num_batches_tracked (int): training batches seen.

    Shape:
        input and output ``(N, F)``.

    Raises:
        ValueError / TypeError: for a non-positive size, a momentum outside [0, 1], a
            non-positive eps, a dtype other than float32/float64, an input that is not
            ``(N, F)``, or a training batch of one row.

    Example:
        >>> import numpy as np
        >>> bn = BatchNorm1d(3)
        >>> y = bn.forward(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
        >>> y.shape, y.dtype, bool(np.allclose(y.mean(axis=0), 0, atol=1e-6))
        ((8, 3), dtype('float32'), True)
        >>> bn.running_mean.shape, bn.num_batches_tracked
        ((3,), 1)

    Reference:
        Ioffe and Szegedy, "Batch Normalization", ICML 2015.
    """

    _axes = (0,)
    _layout = "(N, {})"

    def __init__(self, features: int, *, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32) -> None:
        super().__init__("features", features, momentum, eps, dtype)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of each channel of ``(N, C, H, W)``, statistics over N, H and W.

    The same as :class:`BatchNorm1d` with one mean and variance per channel taken over the
    batch and every spatial position (``N*H*W`` values).

    Args:
        channels (int): ``C``.
        momentum (float): weight of the new batch in the running statistics, in [0, 1].
            Default 0.1.
        eps (float): added to the variance, > 0. Default 1e-5.
        dtype: float32 (default) or float64.

    Attributes:
        running_mean, running_var (np.ndarray): ``(C,)`` buffers (not Parameters).
        num_batches_tracked (int): training batches seen.

    Shape:
        input and output ``(N, C, H, W)``.

    Raises:
        ValueError / TypeError: as for :class:`BatchNorm1d`, for an input that is not
            ``(N, C, H, W)``.

    Example:
        >>> import numpy as np
        >>> bn = BatchNorm2d(4)
        >>> bn.forward(np.ones((2, 4, 5, 5), np.float32)).shape
        (2, 4, 5, 5)
        >>> [p.value.shape for p in bn.parameters()]
        [(4,), (4,)]

    Reference:
        Ioffe and Szegedy, "Batch Normalization", ICML 2015.
    """

    _axes = (0, 2, 3)
    _layout = "(N, {}, H, W)"

    def __init__(self, channels: int, *, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32) -> None:
        super().__init__("channels", channels, momentum, eps, dtype)
