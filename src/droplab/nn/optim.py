"""Optimizers: ``step(params)`` updates every ``Parameter`` from its ``.grad``.

An update that would overflow (Adam's second moment holds squared gradients: float32
overflows once a gradient passes about 1.8e19) raises ``DivergenceError`` instead of
silently freezing the parameter.

Adam and AdamW update each parameter in one compiled pass (:mod:`droplab.nn._optim_kernels`)
when the numba kernels are in use, with NumPy's float32 (or float64) arithmetic bit for bit;
elsewhere, and for subclasses, in NumPy.

The learning rate decays as ``lr_t = lr / (1 + decay * t)`` with ``t`` the number of steps
taken (the textbook's schedule); ``decay = 0`` keeps it constant. State (momenta, moments)
is kept per parameter, in the order the parameters are given.
"""

from __future__ import annotations

import math

from droplab.errors import InvalidValueError
import numpy as np

from droplab import _validate
from droplab.nn.module import Parameter

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


def _overflow(where: str, p: Parameter, g: np.ndarray) -> None:
    from droplab.nn.train import DivergenceError

    finite = np.isfinite(g)
    if not finite.all():
        what = "is NaN or infinite"
    else:
        what = (f"reaches {float(np.abs(g).max()):.3g}, whose square overflows {g.dtype} in the second moment "
                "(the parameter would silently stop learning)")
    raise DivergenceError(f"{where}: the gradient of `{p.name or 'a parameter'}` {what}; standardise the inputs, "
                          "lower the learning rate, or use float64.")


_KERNEL = None


def _kernel():
    """The compiled Adam update (numba is imported on first use)."""
    global _KERNEL
    if _KERNEL is None:
        from droplab.nn._optim_kernels import adam

        _KERNEL = adam
    return _KERNEL


def _fusable(params) -> bool:
    """The compiled update applies: numba kernels in use, every value and gradient a contiguous
    float32 or float64 array of one dtype."""
    from droplab import kernels

    if kernels.backend() != "numba":
        return False
    for p in params:
        w, g = p.value, p.grad
        if (w.dtype not in (np.float32, np.float64) or g.dtype != w.dtype or not w.flags.c_contiguous
                or not g.flags.c_contiguous or w.shape != g.shape):
            return False
    return True


class Optimizer:
    """Base: the step counter, the decayed learning rate and per-parameter state."""

    def __init__(self, lr: float, decay: float) -> None:
        where = type(self).__name__
        self.lr = _validate.positive_float(where, "lr", lr)
        self.decay = _validate.nonnegative_float(where, "decay", decay)
        self.iterations = 0
        self._state: dict[int, dict[str, np.ndarray]] = {}

    @property
    def current_lr(self) -> float:
        """The learning rate of the next step: ``lr / (1 + decay * iterations)``."""
        return self.lr / (1.0 + self.decay * self.iterations)

    def _slots(self, p: Parameter, *names: str) -> list[np.ndarray]:
        st = self._state.get(id(p))
        if st is None:
            st = self._state[id(p)] = {n: np.zeros_like(p.value) for n in names}
        return [st[n] for n in names]

    def step(self, params: list[Parameter]) -> None:
        """Apply one update to every parameter, then advance the step counter."""
        lr = self.current_lr
        for p in params:
            self._update(p, lr)
        self.iterations += 1

    def _update(self, p: Parameter, lr: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr}, decay={self.decay})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    ``v = momentum * v - lr_t * g``; ``w += v`` (or, Nesterov, ``w += momentum * v - lr_t * g``).

    Args:
        lr (float): learning rate, > 0.
        momentum (float): in [0, 1). Default 0.
        nesterov (bool): Nesterov's look-ahead form. Default False.
        decay (float): learning-rate decay, >= 0. Default 0.

    Example:
        >>> import numpy as np
        >>> p = Parameter(np.ones(2)); p.grad[:] = 1.0
        >>> SGD(0.1).step([p]); p.value
        array([0.9, 0.9])
    """

    def __init__(self, lr: float = 0.01, *, momentum: float = 0.0, nesterov: bool = False,
                 decay: float = 0.0) -> None:
        super().__init__(lr, decay)
        m = _validate.nonnegative_float("SGD", "momentum", momentum)
        if m >= 1:
            raise InvalidValueError(_validate.message("SGD", "momentum", "in [0, 1)", momentum))
        self.momentum = m
        self.nesterov = bool(nesterov)

    def _update(self, p, lr):
        g = p.grad
        if not self.momentum:
            p.value -= p.value.dtype.type(lr) * g
            return
        (v,) = self._slots(p, "velocity")
        v *= self.momentum
        v -= lr * g
        if self.nesterov:
            p.value += self.momentum * v - lr * g
        else:
            p.value += v


class Adam(Optimizer):
    """Adam (Kingma and Ba 2015) with bias correction and the textbook's lr decay.

    Args:
        lr (float): learning rate, > 0. Default 1e-3.
        beta1, beta2 (float): moment decay rates in [0, 1). Defaults 0.9, 0.999.
        eps (float): added to the root of the second moment, > 0. Default 1e-7.
        decay (float): learning-rate decay, >= 0. Default 0.

    Example:
        >>> import numpy as np
        >>> p = Parameter(np.ones(2)); p.grad[:] = 3.0
        >>> Adam(0.1).step([p]); np.round(p.value, 6)
        array([0.9, 0.9])
    """

    def __init__(self, lr: float = 1e-3, *, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-7, decay: float = 0.0) -> None:
        super().__init__(lr, decay)
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            v = _validate.nonnegative_float(type(self).__name__, name, b)
            if v >= 1:
                raise InvalidValueError(_validate.message(type(self).__name__, name, "in [0, 1)", b))
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = _validate.positive_float(type(self).__name__, "eps", eps)

    def step(self, params: list[Parameter]) -> None:
        """Apply one update to every parameter, then advance the step counter."""
        if type(self) not in (Adam, AdamW) or not _fusable(params):
            return super().step(params)
        lr = self.current_lr
        t = self.iterations + 1
        wd = getattr(self, "weight_decay", 0.0)
        consts: dict = {}
        for p in params:
            m, v = self._slots(p, "m", "v")
            dt = p.value.dtype
            k = consts.get(dt)
            if k is None:  # the constants as NumPy's arithmetic sees them (NEP 50: cast to the array's dtype)
                k = consts[dt] = np.array([
                    self.beta1, 1 - self.beta1, self.beta2, 1 - self.beta2, 1 - self.beta2**t,
                    lr / (1 - self.beta1**t), self.eps, 1 - lr * wd if wd else 1.0, np.finfo(dt).max], dt)
            if not _kernel()(p.value.reshape(-1), p.grad.reshape(-1), m.reshape(-1), v.reshape(-1), k):
                _overflow(type(self).__name__, p, p.grad)
        self.iterations += 1

    def _adam_step(self, p, lr):
        m, v = self._slots(p, "m", "v")
        g = p.grad
        t = self.iterations + 1
        m *= self.beta1
        m += (1 - self.beta1) * g
        gg = g * g
        if not math.isfinite(gg.max(initial=0.0)):  # one pass over a parameter-sized temporary
            _overflow(type(self).__name__, p, g)
        self._before_step(p, lr)  # after the check: a refused step changes nothing
        v *= self.beta2
        gg *= 1 - self.beta2
        v += gg
        step = lr / (1 - self.beta1**t)
        denom = np.sqrt(v / (1 - self.beta2**t))
        denom += self.eps
        p.value -= (step * m / denom).astype(p.value.dtype, copy=False)

    def _before_step(self, p, lr):
        """What a variant does to the weights before the Adam update (AdamW: decay them)."""

    _update = _adam_step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter 2019): before the Adam step,
    ``w -= lr_t * weight_decay * w``.

    Args:
        lr, beta1, beta2, eps, decay: as for :class:`Adam`.
        weight_decay (float): >= 0. Default 0.01.

    Example:
        >>> import numpy as np
        >>> p = Parameter(np.ones(2))
        >>> AdamW(0.1, weight_decay=0.5).step([p]); p.value
        array([0.95, 0.95])
    """

    def __init__(self, lr: float = 1e-3, *, weight_decay: float = 0.01, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-7, decay: float = 0.0) -> None:
        super().__init__(lr, beta1=beta1, beta2=beta2, eps=eps, decay=decay)
        self.weight_decay = _validate.nonnegative_float("AdamW", "weight_decay", weight_decay)

    def _before_step(self, p, lr):
        if self.weight_decay:
            p.value *= p.value.dtype.type(1 - lr * self.weight_decay)
