"""Layers with parameters or shape logic: ``Dense`` and ``Flatten``."""

from __future__ import annotations

import math

import numpy as np

from droplab import _rng, _validate
from droplab.errors import InvalidValueError
from droplab.nn import _fused
from droplab.nn.module import Module, Parameter, _as_float

__all__ = ["Dense", "Flatten"]

_INITS = ("he", "glorot", "lecun", "torch", "small")


class Dense(Module):
    """Fully connected layer ``y = x @ W + b``, with optional L1/L2 penalties.

    With at most 4 inputs (``x @ W`` and ``x.T @ dy``) or 4 outputs (``x.T @ dy`` and
    ``dy @ W.T``), the products run in droplab's kernels (:mod:`droplab.nn._fused`), in a fixed
    summation order, because BLAS is slow on such thin shapes; they equal the BLAS results to
    rounding and never depend on the thread count.

    Args:
        in_features (int): size of each input row.
        out_features (int): size of each output row.
        l1, l2 (float): penalty weights on ``W``: ``l1 * sum|W| + l2 * sum W**2``. Default 0.
        bias_l1, bias_l2 (float): the same on ``b``. Default 0.
        init (str): ``"he"`` (normal, std ``sqrt(2/in)``, for ReLU; default), ``"glorot"``
            (uniform, limit ``sqrt(6/(in+out))``, for tanh/sigmoid), ``"lecun"`` (normal, std
            ``sqrt(1/in)``, for SELU), ``"torch"``
            (PyTorch's ``nn.Linear`` default: ``U(-1/sqrt(in), 1/sqrt(in))`` for W and b) or
            ``"small"`` (normal, std 0.01, zero bias: the ``0.01 * np.random.randn`` of Kinsley and
            Kukieła's *Neural Networks from Scratch*, whatever the width).
        seed (int | np.random.Generator | None): seed of the initial weights. Default None.
        dtype: float32 (default) or float64.

    Shape:
        input ``(N, in_features)``, output ``(N, out_features)``.

    The penalties enter the model's ``regularization_loss()``, and ``backward`` adds their
    gradients (``l1 * sign(W) + 2 * l2 * W``) into ``W.grad`` along with the data gradient.

    Raises:
        ValueError / TypeError: for a non-positive size, a negative penalty, an unknown
            ``init`` or a dtype other than float32/float64.

    Example:
        >>> import numpy as np
        >>> layer = Dense(3, 2, l2=1e-4, seed=0)
        >>> layer.forward(np.ones((5, 3), np.float32)).dtype
        dtype('float32')
        >>> [p.value.shape for p in layer.parameters()]
        [(3, 2), (2,)]
    """

    def __init__(self, in_features: int, out_features: int, *, l1: float = 0.0, l2: float = 0.0,
                 bias_l1: float = 0.0, bias_l2: float = 0.0, init: str = "he",
                 seed: _rng.Seed = None, dtype=np.float32) -> None:
        super().__init__()
        where = "Dense"
        self.in_features = _validate.positive_int(where, "in_features", in_features)
        self.out_features = _validate.positive_int(where, "out_features", out_features)
        _validate.parameter_budget(where, "in_features * out_features", self.in_features * self.out_features)
        self.l1 = _validate.nonnegative_float(where, "l1", l1)
        self.l2 = _validate.nonnegative_float(where, "l2", l2)
        self.bias_l1 = _validate.nonnegative_float(where, "bias_l1", bias_l1)
        self.bias_l2 = _validate.nonnegative_float(where, "bias_l2", bias_l2)
        self.init = _validate.one_of(where, "init", init, _INITS)
        self.dtype = _validate.float_dtype(where, dtype)
        self._config = dict(in_features=self.in_features, out_features=self.out_features,
                            l1=self.l1, l2=self.l2, bias_l1=self.bias_l1, bias_l2=self.bias_l2,
                            init=self.init, dtype=self.dtype.name)
        self.weight = Parameter(np.zeros((self.in_features, self.out_features), self.dtype), "weight")
        self.bias = Parameter(np.zeros(self.out_features, self.dtype), "bias")
        self._x: np.ndarray | None = None
        self._reseed(_rng.seed_sequence(seed, where))
        self._explicit_seed = seed is not None

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        g = _rng.generator(ss)
        fan_in, fan_out = self.in_features, self.out_features
        shape = (fan_in, fan_out)
        if self.init == "he":
            w = g.standard_normal(shape) * np.sqrt(2.0 / fan_in)
            b = np.zeros(fan_out)
        elif self.init == "lecun":
            w = g.standard_normal(shape) * np.sqrt(1.0 / fan_in)
            b = np.zeros(fan_out)
        elif self.init == "glorot":
            w = g.uniform(-1, 1, shape) * np.sqrt(6.0 / (fan_in + fan_out))
            b = np.zeros(fan_out)
        elif self.init == "small":
            w = g.standard_normal(shape) * 0.01
            b = np.zeros(fan_out)
        else:
            bound = 1.0 / np.sqrt(fan_in)
            w = g.uniform(-bound, bound, shape)
            b = g.uniform(-bound, bound, fan_out)
        self.weight.value[...] = w
        self.bias.value[...] = b

    def _parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]

    def _check_input(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise InvalidValueError(
                f"Dense: input must have shape (N, {self.in_features}); got shape {x.shape}."
            )
        return x

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        self._x = x
        if _fused.small(self):
            return _fused.small_dense(x, self.weight.value, self.bias.value)
        y = x @ self.weight.value
        y += self.bias.value
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._backward(dy, True)

    def _backward(self, dy: np.ndarray, need_dx: bool):
        """``backward``; with ``need_dx=False`` (a model's first layer, inside fit) the input
        gradient, which nobody reads, is not computed and None is returned."""
        if self._x is None:
            raise self._no_forward()
        dy = np.asarray(dy, dtype=self.dtype)
        self._accumulate(dy, dy.sum(axis=0))
        if not need_dx:
            return None
        if _fused.few_out(self):
            return _fused.few_out_input_grad(dy, self.weight.value)
        return dy @ self.weight.value.T

    def _accumulate(self, dy: np.ndarray | None, dy_colsum: np.ndarray, dw: np.ndarray | None = None) -> None:
        """Add the data gradients (``dy_colsum``: ``dy.sum(axis=0)``; ``dw``: ``x.T @ dy`` when the
        caller has it already) and the penalties' gradients."""
        w, b = self.weight, self.bias
        if dw is None:
            if _fused.small(self):
                dw = _fused.small_weight_grad(self._x, dy)
            elif _fused.few_out(self):
                dw = _fused.few_out_weight_grad(self._x, dy)
            else:
                dw = self._x.T @ dy
        w.grad += dw
        b.grad += dy_colsum
        if self._tape_calls:  # a later call of a reused layer: the penalty is added once, by the first
            return
        for p, l1, l2 in ((w, self.l1, self.l2), (b, self.bias_l1, self.bias_l2)):
            if l1:
                p.grad += l1 * np.sign(p.value)
            if l2:
                p.grad += (2 * l2) * p.value

    def _penalty(self) -> float:
        total = 0.0
        for p, l1, l2 in ((self.weight, self.l1, self.l2), (self.bias, self.bias_l1, self.bias_l2)):
            if l1:
                total += l1 * float(np.abs(p.value).sum())
            if l2:
                total += l2 * float((p.value * p.value).sum())
        return total


class Flatten(Module):
    """Flattens every axis but the first: ``(N, *) -> (N, prod(*))``.

    A 0-row batch gives a 0-row output; integer and bool input becomes float32.

    Raises:
        ValueError: a 0-D input (it has no batch axis).

    Example:
        >>> import numpy as np
        >>> Flatten().forward(np.zeros((2, 3, 4))).shape
        (2, 12)
    """

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float("Flatten", x)
        if x.ndim == 0:
            raise InvalidValueError(_validate.message("Flatten", "x", "an array (N, *) with a batch axis",
                                                      f"array of shape {x.shape}"))
        self._shape = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1: a 0-row batch has no size to infer

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._shape is None:
            raise self._no_forward()
        return np.asarray(dy).reshape(self._shape)
