"""What the user hands the doctor, made uniform: a ``Subject`` builds, at a given ``p``, a
``Runner`` with ``forward(x, training)`` and ``backward(dy)`` on NumPy arrays.

Accepted (what people write):

* a function ``f(x, p)`` or ``f(x, p, training)`` on NumPy arrays or torch tensors;
* a ``torch.nn.Module`` class taking ``p`` (``torch.nn.Dropout``, a user's class, a
  ``droplab.torch`` variant), or an instance of one (copied; its ``p`` set);
* a NumPy layer class: NNFS style (``forward(inputs[, training])`` sets ``self.output`` and may
  return it, ``backward(dvalues)`` sets ``self.dinputs``), or a ``droplab.nn`` layer (``forward``,
  ``backward``, ``train()`` / ``eval()``), or an instance of one.

The doctor passes ``p`` as the drop probability, or ``1 - p`` with ``p_means="keep"``.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from typing import Any

import numpy as np

from droplab import _validate
from droplab.errors import InvalidTypeError

__all__ = ["Subject", "Runner", "make_subject", "UserError", "describe_input"]


class UserError(Exception):
    """The user's code raised: ``exc`` is what it raised, ``during`` what the doctor was doing."""

    def __init__(self, exc: BaseException, during: str) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.exc, self.during = exc, during

    def text(self) -> str:
        msg = " ".join(str(self.exc).split())
        if len(msg) > 160:
            msg = msg[:157] + "..."
        return f"raised {type(self.exc).__name__}({msg!r}) {self.during}"


def describe_input(x) -> str:
    """``"a float32 array of shape (64, 256)"``: the input in words, for 'raised X on input Y'."""
    kind = "tensor" if type(x).__module__.startswith("torch") else "array"
    dtype = str(getattr(x, "dtype", "?")).replace("torch.", "")
    return f"a {dtype} {kind} of shape {tuple(getattr(x, 'shape', ()))}"


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - exercised only without the extra
        return None
    return torch


def _is_torch_module_class(obj) -> bool:
    torch = _torch()
    return torch is not None and isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def _is_torch_module(obj) -> bool:
    torch = _torch()
    return torch is not None and isinstance(obj, torch.nn.Module)


def _params(fn) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []


def _takes_training(fn, skip: int = 0) -> str | None:
    """``"keyword"`` if ``fn`` has a ``training`` parameter, ``"positional"`` if it takes a
    third positional argument (after ``skip`` leading ones), else None."""
    ps = _params(fn)
    if any(p.name == "training" for p in ps):
        return "keyword"
    pos = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(pos) - skip >= 1 or any(p.kind == p.VAR_POSITIONAL for p in ps):
        return "positional"
    return None


class Runner:
    """One instance of the subject (or the function bound) at one ``p``.

    ``forward(x, training)`` returns a NumPy array (the output converted) and records whether
    the input was changed in place (``mutated``); ``backward(dy)`` returns the input's gradient
    for the last forward, or None where the subject has none. ``can_eval``: whether the
    subject can be asked for evaluation mode at all.
    """

    can_eval = True
    can_backward = True
    backend = "numpy"

    def __init__(self) -> None:
        self.mutated = False
        self.last_input_text = ""

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _call(self, fn, during: str, *args, **kwargs):
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the user's code raising is a finding, not a crash
            raise UserError(exc, during) from exc


def _to_numpy(y, where: str) -> np.ndarray:
    torch = _torch()
    if torch is not None and isinstance(y, torch.Tensor):
        return y.detach().cpu().numpy().copy()
    if isinstance(y, np.ndarray):
        return y.copy()
    if isinstance(y, np.generic) or np.isscalar(y):
        return np.asarray(y)
    raise UserError(TypeError(f"returned {type(y).__name__}, not an array or tensor"), where)


class _NumpyFunction(Runner):
    def __init__(self, fn, p_arg: float, training_arg: str | None) -> None:
        super().__init__()
        self.fn, self.p_arg, self.training_arg = fn, p_arg, training_arg
        self.can_eval = training_arg is not None
        self.can_backward = False

    def forward(self, x, training=True):
        xin = x.copy()
        during = f"on input {describe_input(x)} at p={self.p_arg:g}"
        args, kwargs = (xin, self.p_arg), {}
        if self.training_arg == "keyword":
            kwargs["training"] = training
        elif self.training_arg == "positional":
            args += (training,)
        y = self._call(self.fn, during, *args, **kwargs)
        self.mutated |= not np.array_equal(xin, x, equal_nan=True)
        return _to_numpy(y, during)

    def backward(self, dy):
        return None


class _TorchFunction(_NumpyFunction):
    backend = "torch"

    def __init__(self, fn, p_arg, training_arg) -> None:
        super().__init__(fn, p_arg, training_arg)
        self.can_backward = True
        self._last = None

    def forward(self, x, training=True):
        torch = _torch()
        xt = torch.from_numpy(x.copy()).requires_grad_(x.dtype.kind == "f")
        during = f"on input {describe_input(xt)} at p={self.p_arg:g}"
        args, kwargs = (xt, self.p_arg), {}
        if self.training_arg == "keyword":
            kwargs["training"] = training
        elif self.training_arg == "positional":
            args += (training,)
        y = self._call(self.fn, during, *args, **kwargs)
        self.mutated |= not np.array_equal(xt.detach().numpy(), x, equal_nan=True)
        self._last = (xt, y)
        return _to_numpy(y, during)

    def backward(self, dy):
        return _torch_backward(self, dy)


def _torch_backward(runner, dy):
    torch = _torch()
    if runner._last is None:
        return None
    xt, y = runner._last
    if not isinstance(y, torch.Tensor) or not y.requires_grad:
        return None
    g = torch.from_numpy(np.ascontiguousarray(dy, dtype=np.dtype(str(y.dtype).replace("torch.", ""))))
    runner._call(y.backward, "in backward", g)
    return None if xt.grad is None else xt.grad.detach().numpy().copy()


class _TorchModule(Runner):
    backend = "torch"

    def __init__(self, module, p_arg) -> None:
        super().__init__()
        self.module, self.p_arg = module, p_arg
        self._last = None

    def forward(self, x, training=True):
        torch = _torch()
        xt = torch.from_numpy(x.copy()).requires_grad_(x.dtype.kind == "f")
        during = f"on input {describe_input(xt)} at p={self.p_arg:g} ({'training' if training else 'eval'} mode)"
        self._call(self.module.train, during, training)
        y = self._call(self.module, during, xt)
        self.mutated |= not np.array_equal(xt.detach().numpy(), x, equal_nan=True)
        self._last = (xt, y)
        return _to_numpy(y, during)

    def backward(self, dy):
        return _torch_backward(self, dy)


class _NumpyLayer(Runner):
    def __init__(self, layer, p_arg) -> None:
        super().__init__()
        self.layer, self.p_arg = layer, p_arg
        fwd = getattr(layer, "forward", None)
        self.training_arg = _takes_training(fwd, skip=1) if fwd is not None else None
        self.has_modes = callable(getattr(layer, "train", None)) and callable(getattr(layer, "eval", None))
        self.can_eval = self.training_arg is not None or self.has_modes
        self.can_backward = callable(getattr(layer, "backward", None))

    def forward(self, x, training=True):
        xin = x.copy()
        during = f"on input {describe_input(x)} at p={self.p_arg:g} ({'training' if training else 'eval'} mode)"
        kwargs, args = {}, (xin,)
        if self.training_arg == "keyword":
            kwargs["training"] = training
        elif self.training_arg == "positional":
            args += (training,)
        elif self.has_modes:
            self._call(self.layer.train if training else self.layer.eval, during)
        y = self._call(self.layer.forward, during, *args, **kwargs)
        if y is None:
            y = getattr(self.layer, "output", None)
        if y is None:
            raise UserError(AttributeError("forward returned None and set no self.output"), during)
        self.mutated |= not np.array_equal(xin, x, equal_nan=True)
        return _to_numpy(y, during)

    def backward(self, dy):
        if not self.can_backward:
            return None
        d = self._call(self.layer.backward, "in backward(dvalues)", np.array(dy, copy=True))
        if d is None or not isinstance(d, np.ndarray):
            d = getattr(self.layer, "dinputs", None)
        return None if d is None else np.array(d, copy=True)


class Subject:
    """The user's object, able to build a :class:`Runner` at any drop probability ``p``.

    Attributes:
        obj: what was given. name: its name. kind: ``"function"``, ``"torch-module"``,
        ``"numpy-layer"``. backend: ``"numpy"`` or ``"torch"``. p_means: ``"drop"`` or ``"keep"``.
    """

    def __init__(self, obj, kind: str, backend: str, name: str, p_means: str, seed: int,
                 construct: dict[str, Any] | None = None) -> None:
        self.obj, self.kind, self.backend, self.name, self.p_means = obj, kind, backend, name, p_means
        self.seed = seed
        self.construct = dict(construct or {})  # extra keyword arguments of the constructor
        self.leading: tuple = ()  # positional arguments before p (DropConnect's sizes)
        self._fn_backend: str | None = None

    @property
    def cls(self):
        return self.obj if isinstance(self.obj, type) else type(self.obj)

    def p_arg(self, p: float) -> float:
        return 1.0 - p if self.p_means == "keep" else p

    def _build(self, p_arg: float, leading: tuple = ()):
        """A fresh instance at ``p_arg`` (classes), or a copy of the instance with ``p`` set."""
        if not isinstance(self.obj, type):
            inst = copy.deepcopy(self.obj)
            for name in ("p", "rate", "drop_prob"):
                if hasattr(inst, name):
                    try:
                        setattr(inst, name, p_arg)
                    except Exception as exc:  # noqa: BLE001
                        raise UserError(exc, f"setting {name}={p_arg:g} on a copy of the instance") from exc
                    break
            return inst
        cls = self.obj
        ps = _params(cls)
        names = {q.name for q in ps}
        kwargs = dict(self.construct)
        if "seed" in names and self.cls.__module__.startswith("droplab.nn"):
            kwargs["seed"] = self.seed  # droplab's NumPy layers: a reproducible mask stream
        pos = [q for q in ps if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)]
        during = f"constructing {cls.__name__} at p={p_arg:g}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if "p" in names and (len(pos) <= len(leading) or pos[len(leading)].name != "p"):
                    return cls(*leading, p=p_arg, **kwargs)
                return cls(*leading, p_arg, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise UserError(exc, during) from exc

    def at(self, p: float) -> Runner:
        """A runner at drop probability ``p`` (converted to ``1 - p`` if ``p_means="keep"``)."""
        p_arg = self.p_arg(p)
        if self.kind == "function":
            training = _takes_training(self.obj, skip=2)
            if self._fn_backend == "torch":
                return _TorchFunction(self.obj, p_arg, training)
            return _NumpyFunction(self.obj, p_arg, training)
        inst = self._build(p_arg, self.leading)
        if self.kind == "torch-module":
            return _TorchModule(inst, p_arg)
        return _NumpyLayer(inst, p_arg)

    def probe(self, x: np.ndarray, p: float) -> None:
        """Decide whether a function works on NumPy arrays or torch tensors: NumPy first, torch
        if NumPy raises and torch works. Raises the NumPy attempt's :class:`UserError` if neither does."""
        if self.kind != "function":
            return
        self._fn_backend = "numpy"
        try:
            self.at(p).forward(x)
            return
        except UserError as first:
            if _torch() is None:
                raise
            self._fn_backend = "torch"
            try:
                self.at(p).forward(x)
            except UserError:
                self._fn_backend = "numpy"
                raise first from None
        self.backend = "torch"


def make_subject(obj, *, p_means: str = "drop", seed: int = 0, name: str | None = None) -> Subject:
    """The :class:`Subject` for ``obj``, or a TypeError saying what is accepted."""
    p_means = _validate.one_of("doctor", "p_means", p_means, ("drop", "keep"))
    label = name or getattr(obj, "__qualname__", None) or type(obj).__name__
    if _is_torch_module_class(obj) or _is_torch_module(obj):
        return Subject(obj, "torch-module", "torch", label, p_means, seed)
    if isinstance(obj, type) or (not callable(obj) or hasattr(obj, "forward")):
        cls = obj if isinstance(obj, type) else type(obj)
        if callable(getattr(cls, "forward", None)):
            return Subject(obj, "numpy-layer", "numpy", label, p_means, seed)
    if callable(obj) and not isinstance(obj, type):
        return Subject(obj, "function", "numpy", label, p_means, seed)
    raise InvalidTypeError(_validate.message(
        "doctor", "obj", "a function f(x, p[, training]), a torch.nn.Module class taking p, or a NumPy layer class "
        "with forward(inputs[, training]) and backward(dvalues)", obj))
