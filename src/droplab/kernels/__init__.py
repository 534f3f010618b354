"""Counter-based dropout masks: a pure function of (key, call counter, element index).

The public functions here are the one mask source of droplab. Every dropout variant draws
through them, so the same seed gives the same mask whatever the thread count or chunking,
and backward regenerates the mask from ``(key, counter)`` instead of storing it.

``p`` is the probability that an element is zeroed (not the keep probability). Each element
draws one full 32-bit Philox word and is dropped when that word is below the threshold
``round(p * 2**32)``, an integer in ``[0, 2**32]``: ``p = 0`` drops nothing, ``p = 1``
everything, and the realised drop probability ``threshold(p) / 2**32`` is within ``2**-33`` of
``p``. Kept values are ``x * dtype(1 / (1 - p))``: the scale computed from ``p`` itself in
float64, rounded once to the input's dtype, and one rounding for the product, as PyTorch's
CPU kernel computes them (``keep_scale``).

Two backends compute the same bits: a numba kernel (parallel, one fused pass) and the NumPy
reference in :mod:`droplab.kernels._reference`, which is the test oracle and the fallback
when numba cannot be imported. numba is imported on the first kernel call, not with
``droplab``. ``DROPLAB_KERNELS=numpy`` forces the reference; ``DROPLAB_KERNELS=numba`` makes
a failed numba import an error instead of a silent fallback.

Example:
    >>> import numpy as np
    >>> from droplab import kernels
    >>> x = np.ones((4, 1000), dtype=np.float32)
    >>> y = kernels.apply(x, 0.25, (1, 2), 0, kernels.keep_scale(0.25))
    >>> y.shape, y.dtype, sorted(set(np.unique(y).tolist()))
    ((4, 1000), dtype('float32'), [0.0, 1.3333333730697632])
    >>> bool(np.array_equal(y != 0, kernels.keep_mask(x.shape, 0.25, (1, 2), 0)))
    True
"""

from __future__ import annotations

import contextlib
import numbers
import os
import sys

from droplab.errors import InvalidTypeError, InvalidValueError
import numpy as np

from droplab._validate import message, one_of, probability
from droplab.kernels import _pool, _reference

__all__ = [
    "RESOLUTION",
    "threshold",
    "effective_p",
    "keep_scale",
    "keep_mask",
    "mask_values",
    "apply",
    "backend",
    "release_memory",
]

#: Threshold steps per unit of probability: one per value of a 32-bit Philox word.
RESOLUTION = 1 << 32

_WHERE = "droplab.kernels"
_BACKENDS = ("auto", "numba", "numpy")
_THREADING_LAYER = "workqueue"
_fast = None  # the imported droplab.kernels._numba module once resolved
_backend_name: str | None = None


def _configure_threads() -> None:
    """Pick numba's thread pool before its first parallel launch (the user's choice wins).

    numba's default OpenMP pool spin-waits after each kernel, as OpenBLAS does after each
    matmul; on a 2-core machine the two pools then steal each other's cores (a training-like
    loop of matmuls and dropout ran about 2x slower). numba's own ``workqueue`` pool sleeps
    when idle and measured as fast as any other option (``benchmarks/kernels_quick.py
    --threads``). It must not be entered by two threads at once, so ``_numba`` serialises its
    launches with a lock.
    """
    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    if "numba" not in sys.modules:
        os.environ["NUMBA_THREADING_LAYER"] = _THREADING_LAYER
        return
    # numba is already imported: its config can still change until the first parallel launch.
    import numba
    from numba.np.ufunc import parallel

    if not getattr(parallel, "_is_initialized", True) and str(numba.config.THREADING_LAYER) == "default":
        numba.config.THREADING_LAYER = _THREADING_LAYER


def _resolve():
    """The numba module, or None when the reference is in use; decided once per process."""
    global _fast, _backend_name
    if _backend_name is not None:
        return _fast
    choice = os.environ.get("DROPLAB_KERNELS", "auto").strip().lower() or "auto"
    one_of(_WHERE, "DROPLAB_KERNELS", choice, _BACKENDS)
    if choice != "numpy":
        try:
            _configure_threads()
            from droplab.kernels import _numba
        except Exception:
            if choice == "numba":
                raise
            _numba = None
        _fast = _numba
    _backend_name = "numba" if _fast is not None else "numpy"
    return _fast


def backend() -> str:
    """``"numba"`` or ``"numpy"``: which backend computes masks in this process.

    Resolving it imports numba (unless ``DROPLAB_KERNELS=numpy``).
    """
    _resolve()
    return _backend_name


def on_this_thread():
    """A context in which the calling thread runs every kernel it launches itself, without
    the GIL, instead of on numba's thread pool: for work the caller already spreads over one
    thread per core. The bits are the same either way; a no-op with the NumPy backend."""
    fast = _resolve()
    return fast.on_this_thread() if fast is not None else contextlib.nullcontext()


def release_memory() -> int:
    """Free the recycled output buffers that no array uses; returns the bytes freed.

    New results of 32 MiB or more (the outputs of :func:`apply`, :func:`mask_values` and
    :func:`keep_mask`) come from a small free list: once every array that can reach one has
    been dropped, its memory serves the next result of the same size without fresh pages.
    At most 256 MiB of free buffers are kept; this gives them back to the system now.
    """
    return _pool.release()


def threshold(p: float) -> int:
    """The integer threshold ``round(p * 2**32)`` in ``[0, 2**32]``: an element is dropped when
    its 32-bit word is below it (0: nothing dropped; ``2**32``: everything dropped)."""
    return int(round(float(p) * RESOLUTION))  # times a power of two: exact, one rounding to int


def effective_p(p: float) -> float:
    """The drop probability actually realised, ``threshold(p) / 2**32``: within ``2**-33`` of ``p``."""
    return threshold(p) / RESOLUTION


def keep_scale(p: float) -> float:
    """``1 / (1 - p)`` in float64 (the caller rounds it once to its dtype); 0.0 at ``p = 1``
    (never a division by zero).

    The scale uses ``p`` itself, not :func:`effective_p`: kept values are ``x * (1 / (1 - p))``
    as in PyTorch, Keras and JAX, and ``E[y]`` differs from ``x`` by less than
    ``2**-33 / (1 - p)`` relative.
    """
    p = float(p)
    return 0.0 if p >= 1.0 else 1.0 / (1.0 - p)


def _check_p(where: str, p) -> float:
    if type(p) is float and 0.0 <= p <= 1.0:  # the common case, without the ABC checks
        return p
    return probability(where, "p", p)


def _check_key(where: str, key) -> tuple[int, int]:
    if type(key) is tuple and len(key) == 2 and type(key[0]) is int and type(key[1]) is int:
        if 0 <= key[0] < 1 << 32 and 0 <= key[1] < 1 << 32:  # fast path for the common case
            return key
    ok = isinstance(key, (tuple, list)) and len(key) == 2 and all(
        isinstance(k, numbers.Integral) and not isinstance(k, bool) and 0 <= k < 1 << 32 for k in key
    )
    if not ok:
        raise InvalidValueError(message(where, "key", "a pair of integers in [0, 2**32)", key))
    return int(key[0]), int(key[1])


def _check_counter(where: str, counter) -> int:
    if type(counter) is int and 0 <= counter < 1 << 64:
        return counter
    if isinstance(counter, bool) or not isinstance(counter, numbers.Integral):
        raise InvalidTypeError(message(where, "counter", "an integer in [0, 2**64)", counter))
    if not 0 <= counter < 1 << 64:
        raise InvalidValueError(message(where, "counter", "an integer in [0, 2**64)", counter))
    return int(counter)


def _check_shape(where: str, shape) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    try:
        out = tuple(int(s) for s in shape)
    except TypeError:
        raise InvalidTypeError(message(where, "shape", "a tuple of non-negative integers", shape)) from None
    if any(s < 0 for s in out):
        raise InvalidValueError(message(where, "shape", "a tuple of non-negative integers", shape))
    return out


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _check_dtype(where: str, name: str, dtype) -> np.dtype:
    dt = dtype if type(dtype) in (type(_FLOATS[0]), type(_FLOATS[1])) else np.dtype(dtype)
    if dt not in _FLOATS:
        raise InvalidTypeError(message(where, name, "float32 or float64", dt.name))
    return dt


def keep_mask(shape, p: float, key: tuple[int, int], counter: int) -> np.ndarray:
    """Boolean mask of ``shape``: True where the element is kept.

    Args:
        shape: int or tuple of ints, the mask's shape.
        p: probability that an element is zeroed (not the keep probability), in [0, 1].
        key: two uint32 words, the layer's Philox key.
        counter: the call counter, an integer in [0, 2**64).

    Returns:
        A new C-contiguous ``bool`` array.
    """
    where = f"{_WHERE}.keep_mask"
    shape = _check_shape(where, shape)
    t = threshold(_check_p(where, p))
    key = _check_key(where, key)
    counter = _check_counter(where, counter)
    n = int(np.prod(shape, dtype=np.int64))
    fast = _resolve()
    if fast is None:
        return _reference.keep_mask(n, t, key, counter).reshape(shape)
    if t == 0 or t >= RESOLUTION or n == 0:
        return np.full(shape, t == 0, dtype=bool)
    out = _pool.empty((n,), bool)
    return fast.keep_mask(out, t, key, counter).reshape(shape)


def mask_values(shape, p: float, key: tuple[int, int], counter: int, scale: float, dtype) -> np.ndarray:
    """The multiplicative mask itself: ``scale`` where kept, 0 where dropped.

    Args:
        shape: int or tuple of ints, the mask's shape.
        p: probability that an element is zeroed (not the keep probability), in [0, 1].
        key: two uint32 words, the layer's Philox key.
        counter: the call counter, an integer in [0, 2**64).
        scale: the value of a kept element (``keep_scale(p)`` for inverted dropout).
        dtype: float32 or float64.

    Returns:
        A new C-contiguous array of ``dtype``; the dropped value is ``0 * scale`` in ``dtype``.
    """
    where = f"{_WHERE}.mask_values"
    shape = _check_shape(where, shape)
    t = threshold(_check_p(where, p))
    key = _check_key(where, key)
    counter = _check_counter(where, counter)
    dt = _check_dtype(where, "dtype", dtype)
    n = int(np.prod(shape, dtype=np.int64))
    fast = _resolve()
    if fast is None:
        m = _reference.keep_mask(n, t, key, counter).astype(dt)
        m *= dt.type(scale)
        return m.reshape(shape)
    s = dt.type(scale)
    zero = dt.type(0) * s  # what the reference's 0 * scale gives (-0.0 for a negative scale)
    if t == 0 or t >= RESOLUTION or n == 0:
        return np.full(shape, s if t == 0 else zero, dtype=dt)
    out = _pool.empty((n,), dt)
    return fast.mask_values(out, t, s, zero, key, counter).reshape(shape)


def apply(x: np.ndarray, p: float, key: tuple[int, int], counter: int, scale: float, *, out=None,
          repeats: int = 1) -> np.ndarray:
    """Fused ``y = x * mask``: ``x * scale`` where kept, ``x * 0`` where dropped.

    Forward and backward of dropout are this same linear map: call it on ``dy`` with the
    forward's ``key`` and ``counter`` to regenerate the mask instead of storing it. The mask
    is indexed by the flat C-order position, so a non-contiguous ``x`` gets the mask of its
    contiguous copy.

    Args:
        x: float32 or float64 array; never modified (unless it is passed as ``out``).
        p: probability that an element is zeroed (not the keep probability), in [0, 1].
        key: two uint32 words, the layer's Philox key.
        counter: the call counter, an integer in [0, 2**64).
        scale: multiplier of kept elements (``keep_scale(p)`` for inverted dropout).
        out: optional C-contiguous array of ``x``'s shape and dtype to write into
            (``out=x`` is allowed and works in place).
        repeats: the mask of ``x`` stacked this many times along axis 0, without making
            the stack: the result equals ``apply(np.concatenate([x] * repeats), ...)`` bit
            for bit (Monte Carlo dropout's passes over one batch). An int >= 1; ``x`` must
            have at least one axis, and ``out`` then has the stacked shape. Default 1.

    Returns:
        ``out``, or a new array of ``x``'s shape (the stacked shape with ``repeats``) and dtype.

    Example:
        >>> import numpy as np
        >>> x = np.arange(1, 9, dtype=np.float32).reshape(2, 4)
        >>> y = apply(x, 0.5, (1, 2), 0, 2.0, repeats=3)
        >>> y.shape, bool((y == apply(np.concatenate([x] * 3), 0.5, (1, 2), 0, 2.0)).all())
        ((6, 4), True)

    Raises:
        TypeError: ``x`` is not float32/float64, or ``out`` has another dtype.
        ValueError: bad ``p``, ``key``, ``counter``, or an ``out`` of the wrong shape or layout.
    """
    where = f"{_WHERE}.apply"
    x = np.asarray(x)
    dt = _check_dtype(where, "x", x.dtype)
    t = threshold(_check_p(where, p))
    key = _check_key(where, key)
    counter = _check_counter(where, counter)
    if isinstance(repeats, (bool, np.bool_)) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise InvalidValueError(message(where, "repeats", "an integer >= 1", repeats))
    repeats = int(repeats)
    if repeats > 1 and x.ndim == 0:
        raise InvalidValueError(message(where, "x", "an array with at least one axis when repeats > 1", "a 0-d array"))
    shape = x.shape if repeats == 1 else (x.shape[0] * repeats,) + x.shape[1:]
    if out is not None:
        if not isinstance(out, np.ndarray) or out.dtype != dt:
            got = getattr(out, "dtype", type(out).__name__)
            raise InvalidTypeError(message(where, "out", f"an ndarray of dtype {dt.name}", got))
        if out.shape != shape or not out.flags.c_contiguous or not out.flags.writeable:
            raise InvalidValueError(
                message(where, "out", f"a writeable C-contiguous array of shape {shape}", f"shape {out.shape}")
            )
    fast = _resolve()
    if fast is None:
        y = _reference.apply(x if repeats == 1 else np.concatenate([x] * repeats), t, scale, key, counter)
        if out is None:
            return y
        out[...] = y
        return out
    if out is None:
        out = _pool.empty(shape, dt)
    if x.size == 0:
        return out
    s = dt.type(scale)
    zero = dt.type(0) * s
    if t == 0 or t >= RESOLUTION:
        # Every element kept or every one dropped: the same products as the mask kernel.
        np.multiply(x if repeats == 1 else np.broadcast_to(x, (repeats,) + x.shape), s if t == 0 else zero,
                    out=out.reshape((repeats,) + x.shape))
        return out
    xc = np.ascontiguousarray(x)
    fast.apply(xc.reshape(-1), out.reshape(-1), t, s, zero, key, counter)
    return out
