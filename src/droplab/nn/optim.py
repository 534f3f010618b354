"""Optimizers: ``step(params)`` updates every ``Parameter`` from its ``.grad``.

An update that would overflow (Adam's second moment holds squared gradients: float32
overflows once a gradient passes about 1.8e19) raises ``DivergenceError`` instead of
silently freezing the parameter.

SGD, Adam and AdamW update all the parameters in one compiled call
(:mod:`droplab.nn._optim_kernels`; one per ``GROUP`` parameters of one dtype) when the numba
kernels are in use, with NumPy's float32 (or float64) arithmetic bit for bit; elsewhere, and
for subclasses, in NumPy, parameter by parameter.

The learning rate decays as ``lr_t = lr / (1 + decay * t)`` with ``t`` the number of steps
taken (the textbook's schedule); ``decay = 0`` keeps it constant. State (momenta, moments)
is kept per parameter, in the order the parameters are given.
"""

from __future__ import annotations

import math
import operator

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


_KERNELS = None


def _kernels():
    """The compiled updates, :mod:`droplab.nn._optim_kernels` (numba is imported on first use)."""
    global _KERNELS
    if _KERNELS is None:
        from droplab.nn import _optim_kernels

        _KERNELS = _optim_kernels
    return _KERNELS


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


_EMPTY = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}


def _groups(params: list[Parameter], arrays: list[np.ndarray], per: int):
    """The parameters as the compiled updates take them: runs of consecutive parameters of one
    dtype, at most ``GROUP`` to a run, each ``(start, dtype, columns)``, a column a tuple of flat
    views of one kind (values, gradients, then each slot) padded to ``GROUP``. ``arrays`` holds
    each parameter's ``per`` arrays in turn. Parameters keep their order, so an update refused
    part-way leaves the same ones updated as parameter by parameter. None when a slot is not a
    contiguous array shaped and typed as its parameter (a state set by hand)."""
    size = _kernels().GROUP
    runs = []
    n = len(params)
    start = 0
    while start < n:
        dt = params[start].value.dtype
        stop = start + 1
        while stop < n and stop - start < size and params[stop].value.dtype == dt:
            stop += 1
        pad = [_EMPTY[dt]] * (size - (stop - start))
        cols = []
        for c in range(per):
            col = []
            for i in range(start, stop):
                a = arrays[i * per + c]
                if c >= 2 and (a.dtype != dt or a.shape != params[i].value.shape or not a.flags.c_contiguous):
                    return None
                col.append(a.reshape(-1))
            cols.append(tuple(col + pad))
        runs.append((start, dt, tuple(cols)))
        start = stop
    return runs


class Optimizer:
    """Base: the step counter, the decayed learning rate and per-parameter state."""

    _plan: tuple | None = None  # (arrays, runs): the compiled update's groups, see _fused_runs

    def __init__(self, lr: float, decay: float) -> None:
        where = type(self).__name__
        self.lr = _validate.positive_float(where, "lr", lr)
        self.decay = _validate.nonnegative_float(where, "decay", decay)
        self.iterations = 0
        self._state: dict[int, dict[str, np.ndarray]] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_plan", None)  # views of the parameters' arrays: a copy rebuilds its own at its first step
        return state

    @property
    def current_lr(self) -> float:
        """The learning rate of the next step: ``lr / (1 + decay * iterations)``."""
        return self.lr / (1.0 + self.decay * self.iterations)

    def _slots(self, p: Parameter, *names: str) -> list[np.ndarray]:
        st = self._state.get(id(p))
        if st is None:
            st = self._state[id(p)] = {n: np.zeros_like(p.value) for n in names}
        return [st[n] for n in names]

    def _fused_runs(self, params: list[Parameter], names: tuple[str, ...]):
        """``(runs, made)``: the parameters in the compiled update's groups (:func:`_groups`),
        with the slots ``names`` made where missing (``made``: those parameters' positions), or
        ``(None, ())`` where the compiled update does not apply. The groups are kept while the
        same arrays are in play: rebuilding them cost about 10 us a step, a tenth of Adam's
        step on the default model."""
        from droplab import kernels

        if kernels.backend() != "numba":
            return None, ()
        state = self._state
        arrays, made = [], []
        for i, p in enumerate(params):
            arrays.append(p.value)
            arrays.append(p.grad)
            if names:
                st = state.get(id(p))
                if st is None:
                    made.append(i)
                    st = state[id(p)] = {n: np.zeros_like(p.value) for n in names}
                for n in names:
                    arrays.append(st[n])
        plan = self._plan
        if plan is not None and len(plan[0]) == len(arrays) and all(map(operator.is_, plan[0], arrays)):
            return plan[1], made
        runs = _groups(params, arrays, 2 + len(names)) if _fusable(params) else None
        if runs is None:
            for i in made:  # the NumPy path makes each parameter's state as it reaches it
                state.pop(id(params[i]), None)
            self._plan = None
            return None, ()
        self._plan = (arrays, runs)
        return runs, made

    def step(self, params: list[Parameter]) -> None:
        """Apply one update to every parameter, then advance the step counter."""
        lr = self.current_lr
        for p in params:
            self._update(p, lr)
        self.iterations += 1

    def _step(self, params: list[Parameter], clear: bool) -> bool:
        """``step``; with ``clear``, the compiled update may also zero every gradient it has
        consumed, in the same pass (fit's use: that is the next batch's ``zero_grad``, where
        nobody reads the gradients in between). Returns whether it did."""
        self.step(params)
        return False

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

    def step(self, params: list[Parameter]) -> None:
        """Apply one update to every parameter, then advance the step counter."""
        self._step(params, False)

    def _step(self, params, clear):
        mode = 0 if not self.momentum else (2 if self.nesterov else 1)
        runs = self._fused_runs(params, ("velocity",) if mode else ())[0] if type(self) is SGD else None
        if runs is None:
            Optimizer.step(self, params)
            return False
        lr = self.current_lr
        sgd = _kernels().sgd
        consts: dict = {}
        for _, dt, cols in runs:
            k = consts.get(dt)
            if k is None:  # the constants as NumPy's arithmetic sees them (NEP 50: cast to the array's dtype)
                k = consts[dt] = np.array([lr, self.momentum], dt)
            sgd(cols[0], cols[1], cols[2] if mode else cols[1], k, mode, clear)
        self.iterations += 1
        return clear

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
        self._step(params, False)

    def _step(self, params, clear):
        runs, made = self._fused_runs(params, ("m", "v")) if type(self) in (Adam, AdamW) else (None, ())
        if runs is None:
            Optimizer.step(self, params)
            return False
        clear = clear and len(runs) == 1  # one group: its kernel can check every gradient before zeroing any
        lr = self.current_lr
        t = self.iterations + 1
        wd = getattr(self, "weight_decay", 0.0)
        adam = _kernels().adam
        consts: dict = {}
        for start, dt, cols in runs:
            k = consts.get(dt)
            if k is None:  # the constants as NumPy's arithmetic sees them (NEP 50: cast to the array's dtype)
                k = consts[dt] = np.array([
                    self.beta1, 1 - self.beta1, self.beta2, 1 - self.beta2, 1 - self.beta2**t,
                    lr / (1 - self.beta1**t), self.eps, 1 - lr * wd if wd else 1.0, np.finfo(dt).max], dt)
            bad = adam(*cols, k, clear)
            if bad >= 0:
                p = params[start + bad]
                for i in made:  # the parameters not reached keep no state, as parameter by parameter
                    if i > start + bad:
                        self._state.pop(id(params[i]), None)
                _overflow(type(self).__name__, p, p.grad)
        self.iterations += 1
        return clear

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
