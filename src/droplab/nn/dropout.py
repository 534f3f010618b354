"""Dropout, the base of droplab's dropout family.

Every variant is this one mechanism with small variations, drawn through two hooks:

* ``noise_shape(shape)``: the shape the mask is drawn at, broadcast over the input (the full
  shape for standard dropout; ``(N, C, 1, 1)`` for channel dropout; ``(N, 1, ..., 1)`` for
  DropPath; shared over time for locked dropout);
* ``_sample(shape, dtype, counter)``: the multiplicative noise at that shape (Bernoulli
  ``0`` or ``scale`` here; Gaussian, Alpha and DropBlock change it);
* ``_shift(shape, dtype, counter)``: an additive term, ``None`` here (Alpha dropout sets
  dropped units to a constant, so its transform is affine: ``y = x * noise + shift``).

Forward computes ``x * _sample(...) (+ _shift(...))`` and backward ``dy * _sample(...)``,
both from the same ``(key, counter)``. The variants in :mod:`droplab.nn.family` override only
these hooks (and their constructors' checks).

Masks come from :mod:`droplab.kernels`: a pure function of the layer's key, the call
counter and the element index. ``backward`` regenerates the mask from ``(key, counter)``
instead of storing it, so no memory per element is held between forward and backward.
"""

from __future__ import annotations

import numpy as np

from droplab import _rng, _validate, kernels
from droplab.nn.module import Module

__all__ = ["Dropout"]

_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Dropout(Module):
    """Zeroes each element with probability ``p`` while training.

    ``p``: probability that an element is zeroed (not the keep probability).

    In training, with ``inverted=True`` (the default), ``y = x * m / (1 - p)`` with
    ``m ~ Bernoulli(1 - p)``, so ``E[y] = x`` and evaluation is the identity. With
    ``inverted=False`` (the classic form of Srivastava et al. 2014), training gives
    ``y = x * m`` and evaluation gives ``y = x * (1 - p)`` (weight scaling at inference).
    The gradient is the same mask applied to ``dy``. Kept values are exactly
    ``x * dtype(1 / (1 - p))`` (the scale computed in float64 and rounded once to the input's
    dtype, then one rounding for the product, as PyTorch computes it), and the realised drop
    probability is within ``2**-33`` of ``p`` (each element compares a 32-bit random word
    with ``round(p * 2**32)``). ``p = 1`` gives zeros, forward and backward, and never
    divides by zero. The caller's array is
    never modified. In eval mode and for ``p = 0`` forward returns its input unchanged.

    Args:
        p (float): drop probability in [0, 1]. Default 0.5.
        inverted (bool): scale at training time (True) or at inference (False). Default True.
        axes (int | tuple[int, ...] | None): axes along which one mask value is shared, e.g.
            ``(2, 3)`` on ``(N, C, H, W)`` drops whole channels and ``1`` on ``(N, T, F)``
            shares a mask over time. None (default): an independent value per element.
        seed (int | np.random.Generator | None): seed of the masks. Default None (fresh
            entropy; a ``Sequential(seed=...)`` seeds it reproducibly).

    Attributes:
        counter (int): how many training forwards have drawn a mask; the next one draws mask
            number ``counter``. Setting it replays a mask.

    Shape:
        input ``(*)``, any floating dtype; output: the same shape and dtype.

    Raises:
        ValueError: ``p`` outside [0, 1]; ``axes`` not axes of the input.
        TypeError: ``p`` not a real number; a non-floating input.
        RuntimeError: ``backward`` before ``forward``.

    Example:
        >>> import numpy as np
        >>> layer = Dropout(0.5, seed=0)
        >>> x = np.ones((2, 1000), np.float32)
        >>> y = layer.forward(x)
        >>> y.shape, y.dtype, sorted(set(y.ravel().tolist()))
        ((2, 1000), dtype('float32'), [0.0, 2.0])
        >>> bool(np.array_equal(layer.eval().forward(x), x))
        True

    Reference:
        Srivastava, Hinton, Krizhevsky, Sutskever and Salakhutdinov, "Dropout: A Simple Way
        to Prevent Neural Networks from Overfitting", JMLR 15, 2014. The paper's ``p`` is the
        RETAIN probability; droplab's ``p`` is the paper's ``1 - p``.
    """

    is_dropout = True
    #: whether ``p = 1`` is allowed (Gaussian and Alpha dropout have no finite noise at p = 1)
    _allow_p_one = True
    _p_one_hint: str | None = None

    def __init__(self, p: float = 0.5, *, inverted: bool = True, axes=None, seed: _rng.Seed = None) -> None:
        super().__init__()
        where = type(self).__name__
        self.p = p
        self.inverted = bool(inverted)
        self.axes = _validate.axes(where, axes)
        self._config = {"p": self.p, "inverted": self.inverted, "axes": self.axes}
        self._state: tuple | None = None  # what backward needs: never the mask itself
        self._reseed(_rng.seed_sequence(seed, where))
        self._explicit_seed = seed is not None

    @property
    def p(self) -> float:
        """The drop probability; setting it (rate schedules do) validates it."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        where = type(self).__name__
        v = _validate.probability(where, "p", value)
        if v == 1.0 and not self._allow_p_one:
            raise ValueError(_validate.message(where, "p", "a probability in [0, 1)", value, self._p_one_hint))
        self._p = v

    def config(self) -> dict:
        return {**self._config, "p": self.p}

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        self._key = _rng.mask_key(ss)
        self.counter = 0

    # -- the hooks ---------------------------------------------------------------------------
    def noise_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the mask is drawn at (1 along shared axes); broadcast over the input."""
        if self.axes is None:
            return shape
        ndim = len(shape)
        if any(not -ndim <= a < ndim for a in self.axes):
            raise ValueError(_validate.message(
                type(self).__name__, "axes", f"axes of the {ndim}-D input (shape {shape})", self.axes))
        shared = {a % ndim for a in self.axes}
        return tuple(1 if i in shared else n for i, n in enumerate(shape))

    @property
    def scale(self) -> float:
        """The factor on kept elements in training: ``1/(1 - p)`` (inverted) or 1 (classic); 0 at p = 1."""
        if not self.inverted:
            return 0.0 if self.p == 1.0 else 1.0
        return kernels.keep_scale(self.p)

    def _sample(self, shape: tuple[int, ...], dtype: np.dtype, counter: int) -> np.ndarray:
        """The multiplicative noise at ``shape``: ``scale`` where kept, 0 where dropped."""
        return kernels.mask_values(shape, self.p, self._key, counter, self.scale, dtype)

    def _shift(self, shape: tuple[int, ...], dtype: np.dtype, counter: int) -> np.ndarray | None:
        """An additive term of the training transform at ``shape`` (None: purely multiplicative)."""
        return None

    def _eval_factor(self) -> float:
        """What evaluation multiplies by: 1, or ``1 - p`` for the classic form."""
        return 1.0 if self.inverted else 1.0 - self.p

    # -- the mechanism -------------------------------------------------------------------------
    def _check_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(_validate.message(
                type(self).__name__, "x", "a floating-point array", f"array of dtype {x.dtype}",
                "Convert it with x.astype(np.float32)."))
        return x

    def _apply(self, x: np.ndarray, shape: tuple[int, ...], counter: int) -> np.ndarray:
        """``x`` times the noise drawn at ``shape`` for ``counter`` (forward and backward alike)."""
        if shape == x.shape and x.dtype in _FUSED_DTYPES and type(self)._sample is Dropout._sample:
            return kernels.apply(x, self.p, self._key, counter, self.scale)
        return x * self._sample(shape, x.dtype, counter)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        if not self.training or self.p == 0:
            factor = self._eval_factor() if not self.training else 1.0
            self._state = ("eval", factor)
            return x if factor == 1.0 else x * x.dtype.type(factor)
        shape = self.noise_shape(x.shape)
        counter = self.counter
        self.counter += 1
        self._state = ("train", counter, shape, x.shape)
        y = self._apply(x, shape, counter)
        shift = self._shift(shape, x.dtype, counter)
        return y if shift is None else y + shift

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._state is None:
            raise self._no_forward()
        dy = np.asarray(dy)
        if self._state[0] == "eval":
            factor = self._state[1]
            return dy if factor == 1.0 else dy * dy.dtype.type(factor)
        _, counter, shape, in_shape = self._state
        if dy.shape != in_shape:
            raise ValueError(_validate.message(
                type(self).__name__, "dy", f"an array of the forward input's shape {in_shape}",
                f"array of shape {dy.shape}"))
        return self._apply(dy, shape, counter)
