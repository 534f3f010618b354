"""The dropout family, once: one backend-neutral specification per variant and their registry.

``droplab.nn`` (NumPy) and ``droplab.torch`` build their layers from these specs, the model
files and the lab look variants up here, and the docs are the specs' text. A variant is added
by writing a :class:`Spec` subclass and registering it (one line)::

    register(MySpec())

after which ``droplab.nn.variant("my_name")`` and ``droplab.torch.variant("my_name")`` are
working layers, and ``nn.load`` rebuilds the NumPy one from a model file. See
:mod:`droplab.family.variants` for the contract answers (edges, ranks, defaults) and
:mod:`droplab._rng` for the noise source.

Example:
    >>> from droplab import family
    >>> [s.class_name for s in family.specs()][:4]
    ['Dropout', 'Dropout1d', 'Dropout2d', 'Dropout3d']
    >>> family.get("DropPath").p_default, family.get("drop_block2d").options[0].default
    (0.1, 7)
"""

from __future__ import annotations

from droplab.errors import InvalidTypeError, InvalidValueError
from droplab import _validate
from droplab.family._spec import Option, Spec, rank_error
from droplab.family.variants import (ALPHA_PRIME, SELU_ALPHA, SELU_SCALE, SPECS, alpha_coefficients, dropblock_gamma,
                                     expected_drop_fraction)

__all__ = ["Spec", "Option", "rank_error", "register", "unregister", "get", "specs", "SELU_ALPHA", "SELU_SCALE",
           "ALPHA_PRIME", "alpha_coefficients", "dropblock_gamma", "expected_drop_fraction"]

_REGISTRY: dict[str, Spec] = {}


def register(spec: Spec) -> Spec:
    """Make ``spec`` a variant of both engines, the model-file loader and the lab; returns it.

    Raises:
        ValueError: a name or class name already registered to another spec.
    """
    if not isinstance(spec, Spec) or not spec.name or not spec.class_name:
        raise InvalidTypeError(_validate.message("family.register", "spec", "a Spec with a name and a class_name", spec))
    for key in (spec.name, spec.class_name):
        other = _REGISTRY.get(key)
        if other is not None and other is not spec:
            raise InvalidValueError(_validate.message("family.register", "spec", "a new name", key,
                                               f"{key!r} is already {type(other).__name__}."))
    _REGISTRY[spec.name] = spec
    _REGISTRY[spec.class_name] = spec
    return spec


def unregister(spec: Spec) -> None:
    """Forget ``spec`` (for tests that register a made-up variant)."""
    for key in (spec.name, spec.class_name):
        if _REGISTRY.get(key) is spec:
            del _REGISTRY[key]


def get(name: str) -> Spec:
    """The spec registered as ``name`` (registry name or class name)."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        names = sorted({s.name for s in _REGISTRY.values()})
        raise InvalidValueError(_validate.message("droplab.family", "variant", "one of " + ", ".join(map(repr, names)),
                                           name)) from None


def specs() -> tuple[Spec, ...]:
    """Every registered spec, in registration order."""
    seen: dict[int, Spec] = {}
    for s in _REGISTRY.values():
        seen.setdefault(id(s), s)
    return tuple(seen.values())


for _spec in SPECS:
    register(_spec)
del _spec
