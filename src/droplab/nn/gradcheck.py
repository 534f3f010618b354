"""Finite-difference gradient checks for any Module (float64, random masks frozen).

``check_gradients`` compares ``backward`` with central differences of the scalar
``sum(w * forward(x))`` for a fixed random ``w``, for the input and for every parameter.
Random layers are frozen by replaying the same mask: every module with a ``counter``
attribute (the dropout family) has it reset before each forward pass.

The check always runs in float64: a float32 module (the default ``Dense``) is checked on a
float64 copy (same weights, same mask keys), because float32 finite differences are dominated
by rounding. The module passed in is never changed.

Example:
    >>> import numpy as np
    >>> from droplab import nn
    >>> model = nn.Sequential(nn.Dense(3, 4), nn.Tanh(), nn.Dropout(0.5), seed=0)
    >>> report = nn.gradcheck.check_gradients(model, np.random.default_rng(0).standard_normal((5, 3)))
    >>> report.ok
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from droplab.errors import InvalidTypeError
import numpy as np

from droplab import _validate
from droplab.nn.module import Module

__all__ = ["GradientReport", "check_gradients"]


def _is_float64(module: Module) -> bool:
    for m in module.modules():
        for value in vars(m).values():
            if isinstance(value, (np.ndarray, np.dtype)) and np.dtype(getattr(value, "dtype", value)).kind == "f" \
                    and np.dtype(getattr(value, "dtype", value)) != np.float64:
                return False
    return all(p.value.dtype == np.float64 for p in module.parameters())


def _float64_copy(module: Module) -> Module:
    """A deep copy of ``module`` whose floating arrays, parameters and dtypes are float64."""
    twin = copy.deepcopy(module)
    for m in twin.modules():
        for name, value in list(vars(m).items()):
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                setattr(m, name, value.astype(np.float64))
            elif isinstance(value, np.dtype) and value.kind == "f":
                setattr(m, name, np.dtype(np.float64))
    for p in twin.parameters():
        p.value = p.value.astype(np.float64)
        p.grad = np.zeros_like(p.value)
    return twin


@dataclass
class GradientReport:
    """Worst relative error per checked array (``"input"``, ``"<i>.<name>"``) and the verdict."""

    errors: dict[str, float] = field(default_factory=dict)
    rtol: float = 1e-6
    atol: float = 1e-8

    @property
    def ok(self) -> bool:
        return all(e <= 1.0 for e in self.errors.values())

    def __str__(self) -> str:
        return ", ".join(f"{k}: {v:.2g}" for k, v in self.errors.items())


def _score(analytic: np.ndarray, numeric: np.ndarray, rtol: float, atol: float) -> float:
    """max |a - n| / (atol + rtol * |n|): <= 1 means within tolerance everywhere."""
    return float(np.max(np.abs(analytic - numeric) / (atol + rtol * np.abs(numeric)), initial=0.0))


def check_gradients(module: Module, x: np.ndarray, *, eps: float = 1e-6, rtol: float = 1e-6, atol: float = 1e-8,
                    seed: int = 0, extra_loss: Callable[[], float] | None = None,
                    check_input: bool = True) -> GradientReport:
    """Central-difference check of ``module.backward`` in float64.

    Args:
        module: the module; a float64 module is checked in place (its gradients are
            overwritten), a float32 one on a float64 copy (the module itself is left as it was).
        x: an input the module accepts (converted to float64).
        eps: the finite-difference step. rtol, atol: the tolerance.
        seed: seed of the random output weights ``w``.
        extra_loss: an additional scalar term that depends on the parameters only, whose
            gradient ``backward`` adds itself (default: the model's ``regularization_loss``).
        check_input: also check ``dx`` (off for integer-like inputs).
    """
    x = np.array(x, dtype=np.float64)
    if not _is_float64(module):
        if extra_loss is not None:  # a closure over the module's own parameters: no copy can serve
            raise InvalidTypeError(_validate.message(
                "check_gradients", "module", "float64 when `extra_loss` is given", type(module).__name__,
                "Build it with dtype=np.float64, or leave extra_loss unset."))
        module = _float64_copy(module)
    extra = extra_loss if extra_loss is not None else module.regularization_loss
    counters = {id(m): m.counter for m in module.modules() if hasattr(m, "counter")}

    def replay() -> None:
        for m in module.modules():
            if id(m) in counters:
                m.counter = counters[id(m)]

    def f() -> float:
        replay()
        return float(np.sum(w * module.forward(x))) + extra()

    replay()
    y = module.forward(x)
    w = np.random.default_rng(seed).standard_normal(y.shape)
    module.zero_grad()
    replay()
    module.forward(x)
    dx = module.backward(w.copy())
    report = GradientReport(rtol=rtol, atol=atol)

    def numeric(arr: np.ndarray) -> np.ndarray:
        g = np.zeros_like(arr, dtype=np.float64)
        flat, gflat = arr.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            fp = f()
            flat[i] = old - eps
            fm = f()
            flat[i] = old
            gflat[i] = (fp - fm) / (2 * eps)
        return g

    if check_input:
        report.errors["input"] = _score(np.asarray(dx, np.float64), numeric(x), rtol, atol)
    for i, p in enumerate(module.parameters()):
        analytic = p.grad.astype(np.float64).copy()
        report.errors[f"{i}.{p.name}"] = _score(analytic, numeric(p.value), rtol, atol)
    replay()
    return report
