"""Dropout, the NumPy engine's one dropout mechanism; every variant is a spec it applies.

What a variant IS (its ``p``, options, rank rule, noise shape, scale, edges, noise and
docstring) lives once in :mod:`droplab.family`, shared with ``droplab.torch``. This module only
applies a spec's noise to NumPy arrays, as Keras 3's layers call
``backend.random.dropout(inputs, rate, noise_shape, seed)``:

* ``forward(x)``: check the input (integers and bools become float32; float16 computes in
  float32 and returns float16), take the noise shape from the spec (this raises for a wrong
  rank in training and in evaluation, at every ``p``), and in training take the next
  :class:`~droplab._rng.Draw` of the layer's :class:`~droplab._rng.NoiseStream` and compute
  ``x * mult (+ shift)``. A Bernoulli mask at the input's full shape goes through the fused
  kernel :func:`droplab.kernels.apply`.
* ``backward(dy)``: ``dy * mult`` from the same draw: the noise is regenerated, never stored.

:func:`variant` gives the NumPy class of any registered spec (generated for element-wise
variants, the hand-written ``DropConnect`` and ``ConcreteDropout`` otherwise).
"""

from __future__ import annotations

import inspect

import numpy as np

from droplab import _rng, _validate, family
from droplab.errors import InvalidTypeError, InvalidValueError
from droplab.family import Spec
from droplab.nn.module import Module, _as_float

__all__ = ["Dropout", "variant", "SEED_DOC"]

_F16, _F32, _F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
#: the dtype the noise is computed in, per input dtype (float16: float32, as PyTorch)
_WORK = {_F16: _F32, _F32: _F32, _F64: _F64}

SEED_DOC = ("seed (int | np.random.Generator | None): seed of the noise. Default None (fresh entropy; a "
            "``Sequential(seed=...)`` seeds it reproducibly).")


def as_input(where: str, x) -> np.ndarray:
    """``x`` as an array the family computes on: float16/32/64 kept, integers and bools as
    float32 (the engine's rule), anything else refused naming the layer."""
    x = _as_float(where, x)
    if x.dtype not in _WORK:
        raise InvalidTypeError(_validate.message(
            where, "x", "a float16, float32 or float64 array (integers and bools are computed in float32)",
            f"array of dtype {x.dtype}", "Convert it with x.astype(np.float32)."))
    return x


def _scaled(x: np.ndarray, factor: float) -> np.ndarray:
    work = _WORK[x.dtype]
    y = x.astype(work, copy=False) * work.type(factor)
    return y.astype(x.dtype, copy=False)


class Dropout(Module):
    __doc__ = family.get("dropout").docstring("nn", SEED_DOC) + """

Attributes:
    rng (droplab._rng.NoiseStream): the layer's key and call counter.
    counter (int): ``rng.counter``: how many training forwards have drawn noise; setting it
        replays (or skips to) that call's noise.
"""

    spec: Spec = family.get("dropout")
    is_dropout = True

    def __init__(self, *args, seed: _rng.Seed = None, **kwargs) -> None:
        super().__init__()
        where = type(self).__name__
        p, self._options = type(self).spec.bind(where, args, kwargs)
        self.p = p
        self._state: tuple | None = None  # what backward needs: never the noise itself
        self._reseed(_rng.seed_sequence(seed, where))
        self._explicit_seed = seed is not None

    # -- configuration --------------------------------------------------------------------------
    @property
    def p(self) -> float:
        """The drop probability; setting it (rate schedules do) validates it."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        self._p = self.spec.check_p(type(self).__name__, value)

    def __getattr__(self, name: str):
        options = self.__dict__.get("_options")
        if options is not None and name in options:  # the spec's options read as attributes
            return options[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def config(self) -> dict:
        return {"p": self.p, **self._options}

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        self.rng = _rng.NoiseStream.from_seed(ss)

    @property
    def counter(self) -> int:
        return self.rng.counter

    @counter.setter
    def counter(self, value: int) -> None:
        self.rng.seek(value)

    @property
    def rows_independent(self) -> bool:
        """Whether every row of a batch draws its own noise (the spec's answer)."""
        return self.spec.rows_independent(self._options)

    # -- what the spec decides ------------------------------------------------------------------
    def noise_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the noise is drawn at, broadcast over the input; raises for a wrong rank."""
        return self.spec.noise_shape(type(self).__name__, self._options, tuple(shape))

    @property
    def scale(self) -> float:
        """The factor on kept elements in training (Bernoulli variants)."""
        return self.spec.scale(self._options, self.p)

    def _eval_factor(self) -> float:
        """What evaluation multiplies by: 1, or ``1 - p`` for the classic form."""
        return self.spec.eval_factor(self._options, self.p)

    # -- the mechanism ----------------------------------------------------------------------------
    def _noise(self, x: np.ndarray, draw: _rng.Draw, shape: tuple[int, ...], forward: bool) -> np.ndarray:
        """``x * mult (+ shift in forward)`` of ``draw`` at ``shape``, in ``x``'s dtype."""
        work = _WORK[x.dtype]
        xc = x.astype(work, copy=False)
        spec, p = self.spec, self.p
        if spec.bernoulli and shape == x.shape:
            y = draw.apply(xc, p, spec.scale(self._options, p))
        else:
            mult, shift = spec.noise(self._options, p, draw, shape, work)
            y = xc * mult
            if forward and shift is not None:
                y += shift
        return y.astype(x.dtype, copy=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_input(type(self).__name__, x)
        shape = self.noise_shape(x.shape)  # the rank rule holds in every mode, at every p
        if not self.training or self.p == 0:
            factor = self._eval_factor() if not self.training else 1.0
            self._state = ("eval", factor)
            return x if factor == 1.0 else _scaled(x, factor)
        draw = self.rng.next()
        self._state = ("train", draw, shape, x.shape)
        return self._noise(x, draw, shape, True)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._state is None:
            raise self._no_forward()
        dy = as_input(type(self).__name__, dy)
        if self._state[0] == "eval":
            factor = self._state[1]
            return dy if factor == 1.0 else _scaled(dy, factor)
        _, draw, shape, in_shape = self._state
        if dy.shape != in_shape:
            raise InvalidValueError(_validate.message(
                type(self).__name__, "dy", f"an array of the forward input's shape {in_shape}",
                f"array of shape {dy.shape}"))
        return self._noise(dy, draw, shape, False)


_P = inspect.Parameter
Dropout.__init__.__signature__ = Dropout.spec.signature([_P("seed", _P.KEYWORD_ONLY, default=None)])
_CLASSES: dict[Spec, type] = {Dropout.spec: Dropout}


def register_class(cls: type) -> type:
    """Make a hand-written class the NumPy engine's layer of ``cls.spec`` (a class decorator)."""
    _CLASSES[cls.spec] = cls
    return cls


def variant(name: str | Spec) -> type:
    """The NumPy layer class of a registered variant (by registry name, class name or spec).

    An element-wise variant's class is generated from its spec on first use: a subclass of
    :class:`Dropout` named as the spec says, with the spec's signature and docstring.
    """
    spec = name if isinstance(name, Spec) else family.get(name)
    cls = _CLASSES.get(spec)
    if cls is not None:
        return cls
    if spec.kind != "noise":
        raise InvalidValueError(_validate.message("droplab.nn.variant", "name", "an element-wise variant or one with a "
                                           "hand-written NumPy class", spec.name))

    def __init__(self, *args, seed: _rng.Seed = None, **kwargs) -> None:
        Dropout.__init__(self, *args, seed=seed, **kwargs)

    P = inspect.Parameter
    __init__.__signature__ = spec.signature([P("seed", P.KEYWORD_ONLY, default=None)])
    cls = type(spec.class_name, (Dropout,), {
        "spec": spec, "__init__": __init__, "__doc__": spec.docstring("nn", SEED_DOC),
        "__module__": "droplab.nn.family", "__qualname__": spec.class_name})
    _CLASSES[spec] = cls
    return cls
