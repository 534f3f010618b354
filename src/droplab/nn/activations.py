"""Activations. The element-wise ones share one forward/backward; each states f and f'.

Integer and bool input is computed in float32 (as every layer does), never as truncated
integers.
"""

from __future__ import annotations

import numpy as np

from droplab import _validate
from droplab.family import SELU_ALPHA, SELU_SCALE  # the one copy, shared with AlphaDropout
from droplab.nn.module import Module, _as_float

__all__ = ["ReLU", "LeakyReLU", "Tanh", "Sigmoid", "SELU", "Softmax", "SELU_ALPHA", "SELU_SCALE"]

class _Elementwise(Module):
    """``y = f(x)`` element by element; ``dx = dy * f'(x)`` from what forward kept."""

    def __init__(self) -> None:
        super().__init__()
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def _f(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _grad(self, x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(type(self).__name__, x)
        y = self._f(x)
        self._x, self._y = x, y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._y is None:
            raise self._no_forward()
        return self._grad(self._x, self._y, np.asarray(dy))


class ReLU(_Elementwise):
    """``max(x, 0)``; the gradient is ``dy`` where ``x > 0`` and 0 elsewhere.

    Example:
        >>> import numpy as np
        >>> ReLU().forward(np.array([-1.0, 2.0]))
        array([0., 2.])
    """

    def _f(self, x):
        return np.maximum(x, 0)

    def _grad(self, x, y, dy):
        return np.where(y > 0, dy, 0).astype(dy.dtype, copy=False)


class LeakyReLU(_Elementwise):
    """``x`` where ``x > 0``, ``alpha * x`` elsewhere.

    Args:
        alpha (float): slope for negative inputs, >= 0. Default 0.01.

    Example:
        >>> import numpy as np
        >>> LeakyReLU(0.1).forward(np.array([-1.0, 2.0]))
        array([-0.1,  2. ])
    """

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = _validate.nonnegative_float("LeakyReLU", "alpha", alpha)
        self._config = {"alpha": self.alpha}

    def _f(self, x):
        return np.where(x > 0, x, x * x.dtype.type(self.alpha))

    def _grad(self, x, y, dy):
        return np.where(x > 0, dy, dy * dy.dtype.type(self.alpha))


class Tanh(_Elementwise):
    """``tanh(x)``; ``f' = 1 - y**2``.

    Example:
        >>> import numpy as np
        >>> Tanh().forward(np.zeros(2))
        array([0., 0.])
    """

    def _f(self, x):
        return np.tanh(x)

    def _grad(self, x, y, dy):
        return dy * (1 - y * y)


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``, computed without overflow; ``f' = y (1 - y)``.

    Example:
        >>> import numpy as np
        >>> Sigmoid().forward(np.zeros(1))
        array([0.5])
    """

    def _f(self, x):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    def _grad(self, x, y, dy):
        return dy * y * (1 - y)


class SELU(_Elementwise):
    """Scaled ELU (Klambauer et al. 2017): ``scale * (x if x > 0 else alpha * (exp(x) - 1))``.

    Pair it with ``AlphaDropout``, which keeps SELU's mean and variance.

    Example:
        >>> import numpy as np
        >>> SELU().forward(np.zeros(1))
        array([0.])
    """

    def _f(self, x):
        neg = SELU_ALPHA * np.expm1(np.minimum(x, 0))
        return (SELU_SCALE * np.where(x > 0, x, neg)).astype(x.dtype, copy=False)

    def _grad(self, x, y, dy):
        # for x <= 0, f'(x) = scale * alpha * exp(x) = y + scale * alpha
        return dy * np.where(x > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA).astype(dy.dtype, copy=False)


class Softmax(Module):
    """Softmax over the last axis, numerically stable. For training a classifier prefer
    ``SoftmaxCrossEntropy`` on logits (one fused, exact gradient); this layer's backward
    applies the full Jacobian: ``dx = y * (dy - sum(dy * y))``.

    Example:
        >>> import numpy as np
        >>> Softmax().forward(np.zeros((1, 4))).tolist()
        [[0.25, 0.25, 0.25, 0.25]]
    """

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float("Softmax", x)
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        self._y = e / e.sum(axis=-1, keepdims=True)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._y is None:
            raise self._no_forward()
        y = self._y
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
