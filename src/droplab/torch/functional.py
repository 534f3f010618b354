"""Functional forms of the ``droplab.torch`` family: one call, one draw.

Each is the registered spec's forward (:mod:`droplab.family`) without a module. Its noise
comes from, as for the modules (:mod:`droplab.torch._random`):

* ``seed`` (int | numpy Generator) and ``counter`` (which call of that stream, default 0): a
  pure function of ``(seed, counter)``, the same noise as a module or a NumPy layer seeded
  alike (a captured graph replays it, as asked);
* else ``generator`` (a ``torch.Generator``) or, by default, torch's default generator, drawn
  at each call, so ``torch.manual_seed`` makes it reproducible as ``torch.nn.functional.dropout``.

The options are the module's (``axes=``, ``mode=``, ``block_size=``...), keyword-only.

``p`` is always the probability that an element is zeroed (not the keep probability).

Example:
    >>> import torch
    >>> from droplab.torch import functional as F
    >>> x = torch.ones(4, 1000)
    >>> y = F.dropout(x, 0.25, seed=0)
    >>> y.shape, sorted(set(y.unique().tolist()))
    (torch.Size([4, 1000]), [0.0, 1.3333333730697632])
    >>> bool(torch.equal(y, F.dropout(x, 0.25, seed=0)))
    True
    >>> F.drop_block2d(torch.ones(2, 3, 8, 8), 0.2, block_size=3, seed=0).shape
    torch.Size([2, 3, 8, 8])
"""

from __future__ import annotations

import torch

from droplab.errors import InvalidValueError
from droplab import _rng, _validate, family
from droplab.torch import _core, _random
from droplab.torch.modules import TORCH_CLASSES, take_inplace

__all__ = [
    "apply", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "gaussian_dropout",
    "drop_path", "locked_dropout", "drop_block2d",
]


def apply(name: str, x: torch.Tensor, p: float | None = None, training: bool = True, *, seed=None, counter: int = 0,
          generator: torch.Generator | None = None, **options) -> torch.Tensor:
    """The element-wise variant registered as ``name``, applied once (see the module doc).
    ``inplace=True`` (the variants torch.nn has, :data:`~droplab.torch.modules.TORCH_CLASSES`)
    writes the result into ``x`` and returns it, as torch's ``inplace=True``.

    Raises:
        ValueError: a bad ``p`` or option, a negative ``counter``, ``counter`` without ``seed``,
            both ``seed`` and ``generator``.
        TypeError: ``generator`` not a ``torch.Generator``; ``inplace`` for a variant torch.nn
            does not have.
    """
    spec = family.get(name)
    where = spec.name
    _, inplace = take_inplace(where, spec, (), options)
    p, opts = spec.bind(where, () if p is None else (p,), options)
    counter = _validate.nonnegative_int(where, "counter", counter)
    generator = _core.check_generator(where, seed, generator)
    if seed is None:
        if counter:
            raise InvalidValueError(_validate.message(where, "counter", "0 without `seed`", counter,
                                               "A call counter selects a call of a seeded stream; pass seed= too."))
        def draw(t):
            if generator is not None:
                _random.check_not_recomputing(where, False)
            return _random.fresh_draw(generator, t.device, _random.rank())

        return _core.apply(where, spec, opts, p, x, training, draw, inplace)
    _rng.check_seed(where, seed)
    return _core.apply(where, spec, opts, p, x, training, lambda t: _rng.NoiseStream.from_seed(seed, where).at(counter),
                       inplace)


def _functional(name: str):
    spec = family.get(name)

    if name in TORCH_CLASSES:  # torch's signature: (input, p, training, inplace)
        def fn(x: torch.Tensor, p: float = spec.p_default, training: bool = True, inplace: bool = False, *, seed=None,
               counter: int = 0, generator: torch.Generator | None = None, **options) -> torch.Tensor:
            return apply(name, x, p, training, seed=seed, counter=counter, generator=generator, inplace=inplace,
                         **options)
    else:
        def fn(x: torch.Tensor, p: float = spec.p_default, training: bool = True, *, seed=None, counter: int = 0,
               generator: torch.Generator | None = None, **options) -> torch.Tensor:
            return apply(name, x, p, training, seed=seed, counter=counter, generator=generator, **options)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"{spec.summary}\n\nThe functional form of :class:`droplab.torch.{spec.class_name}` (its options "
                  f"as keywords). ``p``: {spec.p_doc} (not the keep probability). Noise from ``seed`` and "
                  "``counter``, else ``generator`` or torch's default generator (see the module doc)."
                  + (" ``inplace``: write the result into ``x`` and return it, as torch's." if name in TORCH_CLASSES
                     else ""))
    return fn


dropout = _functional("dropout")
dropout1d = _functional("dropout1d")
dropout2d = _functional("dropout2d")
dropout3d = _functional("dropout3d")
alpha_dropout = _functional("alpha_dropout")
gaussian_dropout = _functional("gaussian_dropout")
drop_path = _functional("drop_path")
locked_dropout = _functional("locked_dropout")
drop_block2d = _functional("drop_block2d")
