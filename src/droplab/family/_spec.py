"""What a dropout variant IS, independent of any array library: the ``Spec`` base class.

A spec answers every contract question once, for both engines (``droplab.nn`` on NumPy
arrays, ``droplab.torch`` on tensors): what ``p`` means and which values are legal, the other
options with their defaults and checks, the noise shape and the rank rule, the scale of kept
values, evaluation, whether rows of a batch draw independent noise, the noise itself (as NumPy
arrays at the noise shape, computed by droplab's own code from a :class:`droplab._rng.Draw`)
and the docstring. The engines only apply that noise to their own arrays.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from droplab import _validate
from droplab.errors import InvalidTypeError, InvalidValueError

__all__ = ["Option", "Spec", "rank_error", "flag"]


@dataclass(frozen=True)
class Option:
    """One constructor option after ``p``: its default, its check ``(where, value) -> value``
    and its line in ``Args:``."""

    name: str
    default: Any
    check: Callable[[str, Any], Any]
    doc: str


def flag(name: str) -> Callable[[str, Any], bool]:
    """A boolean option: True/False (or 0/1)."""

    def check(where: str, value: Any) -> bool:
        if value not in (True, False):
            raise InvalidTypeError(_validate.message(where, name, "True or False", value))
        return bool(value)

    return check


def choice(name: str, choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    return lambda where, value: _validate.one_of(where, name, value, choices)


def rank_error(where: str, shape: tuple[int, ...], layout: str, hint: str | None = None) -> ValueError:
    """The one message for an input of the wrong rank, the same in both engines."""
    allowed = "an array of rank >= 1" if "*" in layout else f"a {layout.count(',') + 1}-D array"
    return InvalidValueError(_validate.message(where, "x", f"{allowed} {layout}", f"array of shape {tuple(shape)}",
                                               hint))


class Spec:
    """A dropout variant, once for both engines. Subclasses set the class attributes and
    override the hooks; :func:`droplab.family.register` makes them known to both engines, the
    model-file loader and the lab."""

    #: registry name (snake case; the functional form's name in ``droplab.torch.functional``)
    name: str = ""
    #: the public class name, the same in ``droplab.nn`` and ``droplab.torch``
    class_name: str = ""
    #: other public names per engine, e.g. ``{"torch": ("DropConnectLinear",)}``
    aliases: dict[str, tuple[str, ...]] = {}
    #: ``"noise"``: an element-wise transform of the input, built by each engine from this spec
    #: alone; ``"weights"`` / ``"concrete"``: the engine classes are written around this spec
    kind: str = "noise"
    #: the multiplicative noise is a Bernoulli mask times ``scale()`` (engines may fuse it)
    bernoulli: bool = True
    p_default: float = 0.5
    #: whether ``p = 0`` / ``p = 1`` are legal; ``p_hint`` explains a refusal
    p_zero: bool = True
    p_one: bool = True
    p_hint: str | None = None
    #: what ``p`` is in ``Args:`` ("drop probability" unless the variant says otherwise)
    p_doc: str = "probability that an element is zeroed"
    options: tuple[Option, ...] = ()
    #: option names also accepted by position, after ``p``
    positional: tuple[str, ...] = ()
    #: the input layout in messages and ``Shape:``
    layout: str = "(*)"
    rank_hint: str | None = None
    # -- documentation (Google style; the engines add their seed arguments and examples) --------
    summary: str = ""
    text: str = ""
    raises: tuple[str, ...] = ()
    reference: str = ""
    examples: dict[str, str] = {}

    # -- arguments ----------------------------------------------------------------------------
    def check_p(self, where: str, value: Any) -> float:
        """``p`` as a float, or the shared error (wrong type, outside the legal interval)."""
        v = _validate._real(where, "p", value)
        lo_ok = v > 0.0 or (self.p_zero and v == 0.0)
        hi_ok = v < 1.0 or (self.p_one and v == 1.0)
        if not (lo_ok and hi_ok):
            allowed = f"a probability in {'[' if self.p_zero else '('}0, 1{']' if self.p_one else ')'}"
            hint = self.p_hint if (0.0 <= v <= 1.0) else None
            raise InvalidValueError(_validate.message(where, "p", allowed, value, hint))
        return v

    def bind(self, where: str, args: tuple, kwargs: dict) -> tuple[float, dict[str, Any]]:
        """``(p, options)`` from a constructor call, every value checked."""
        names = ("p",) + self.positional
        if len(args) > len(names):
            raise InvalidTypeError(f"{where}() takes at most {len(names)} positional arguments after self "
                                   f"({len(args)} given)")
        values = dict(zip(names, args))
        known = {o.name for o in self.options}
        for k, v in kwargs.items():
            if k in values:
                raise InvalidTypeError(f"{where}() got multiple values for argument {k!r}")
            if k != "p" and k not in known:
                raise InvalidTypeError(f"{where}() got an unexpected keyword argument {k!r}")
            values[k] = v
        p = self.check_p(where, values.get("p", self.p_default))
        return p, {o.name: o.check(where, values.get(o.name, o.default)) for o in self.options}

    def signature(self, engine_keywords: list[inspect.Parameter]) -> inspect.Signature:
        """The constructor's signature: ``(p, *positional, *, options..., <engine keywords>)``."""
        P = inspect.Parameter
        params = [P("self", P.POSITIONAL_OR_KEYWORD), P("p", P.POSITIONAL_OR_KEYWORD, default=self.p_default)]
        by_name = {o.name: o for o in self.options}
        params += [P(n, P.POSITIONAL_OR_KEYWORD, default=by_name[n].default) for n in self.positional]
        params += [P(o.name, P.KEYWORD_ONLY, default=o.default) for o in self.options if o.name not in self.positional]
        return inspect.Signature(params + engine_keywords)

    #: a layer that wraps another (DropConnect's Dense, Concrete's layer) splits its seed in two
    wraps_layer: bool = False

    def split_seed(self, ss: np.random.SeedSequence) -> tuple[np.random.SeedSequence, np.random.SeedSequence | None]:
        """``(noise seed, wrapped layer's seed)`` from a layer's SeedSequence, the same rule in both
        engines: the sequence itself for a plain variant, its two children for a wrapper."""
        if not self.wraps_layer:
            return ss, None
        noise, layer = ss.spawn(2)
        return noise, layer

    # -- the contract ---------------------------------------------------------------------------
    def noise_shape(self, where: str, options: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the noise is drawn at, broadcast over the input. Raises for an input of
        the wrong rank whatever the mode and ``p`` (it depends on the input only)."""
        return tuple(shape)

    def rows_independent(self, options: dict) -> bool:
        """Whether every row (index along axis 0) of a batch draws its own noise, independent of
        the other rows: then MC prediction may stack copies of an input in one batch."""
        return True

    def scale(self, options: dict, p: float) -> float:
        """The value of a kept element's factor in training (Bernoulli variants): ``1/(1-p)``,
        0 at ``p = 1`` (never a division by zero)."""
        return 0.0 if p >= 1.0 else 1.0 / (1.0 - p)

    def eval_factor(self, options: dict, p: float) -> float:
        """What evaluation multiplies by (1: identity)."""
        return 1.0

    def noise(self, options: dict, p: float, draw, shape: tuple[int, ...], dtype: np.dtype):
        """``(mult, shift)``: the training transform is ``y = x * mult + shift`` (``shift`` None
        for a purely multiplicative variant), both NumPy arrays of ``shape`` and ``dtype``; the
        gradient is ``dy * mult``."""
        return draw.mask_values(shape, p, self.scale(options, p), dtype), None

    # -- documentation ------------------------------------------------------------------------
    def docstring(self, engine: str, seed_doc: str, example: str | None = None) -> str:
        """The class docstring for ``engine`` ("nn" or "torch"): this spec's text, its options,
        the engine's own arguments (``seed_doc``) and its example (default: ``examples[engine]``)."""
        lines = [self.summary, "",
                 f"``p``: {self.p_doc} (not the keep probability).",
                 "", self.text.strip(), "", "Args:"]
        interval = f"{'[' if self.p_zero else '('}0, 1{']' if self.p_one else ')'}"
        lines.append(f"    p (float): {self.p_doc}, in {interval}. Default {self.p_default}.")
        lines += [f"    {o.name} {o.doc}" for o in self.options]
        lines += ["    " + seed_doc, "", "Shape:", f"    ``{self.layout}`` -> the same shape and dtype.", "",
                  "Raises:",
                  f"    ValueError: ``p`` outside {interval}; an input other than ``{self.layout}``."]
        lines += [f"    {r}" for r in self.raises]
        example = self.examples.get(engine) if example is None else example
        if example:
            lines += ["", "Example:"] + ["    " + e if e else "" for e in example.strip("\n").splitlines()]
        if self.reference:
            lines += ["", "Reference:"] + ["    " + r for r in self.reference.strip().splitlines()]
        return "\n".join(lines)


def shared_axes_shape(where: str, axes, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with 1 along the shared ``axes`` (None: the full shape)."""
    if axes is None:
        return tuple(shape)
    ndim = len(shape)
    if any(not -ndim <= a < ndim for a in axes):
        raise InvalidValueError(_validate.message(where, "axes", f"axes of the {ndim}-D input (shape {tuple(shape)})",
                                                  axes))
    shared = {a % ndim for a in axes}
    return tuple(1 if i in shared else n for i, n in enumerate(shape))


def keeps_rows(axes) -> bool:
    """Whether sharing noise along ``axes`` keeps rows independent, for any rank: no shared
    axis is (or, being negative, could be) axis 0."""
    return axes is None or all(a > 0 for a in axes)


def numel(shape) -> int:
    return math.prod(shape)
