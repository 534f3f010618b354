"""Counter-based dropout masks: a pure function of (key, call counter, element index).

The public functions here are the one mask source of droplab. Every dropout variant draws
through them, so the same seed gives the same mask whatever the thread count or chunking,
and backward regenerates the mask from ``(key, counter)`` instead of storing it.

``p`` is the probability that an element is zeroed (not the keep probability). It is
quantised to 16 bits: the effective drop probability ``threshold(p) / 2**16`` is within
``2**-16`` of ``p``, and the inverted scale ``1 / (1 - p_eff)`` makes ``E[y] = x`` exactly
for the probability actually used.
"""

from __future__ import annotations

import numpy as np

from droplab.kernels import _reference

__all__ = ["RESOLUTION", "threshold", "effective_p", "keep_scale", "keep_mask", "mask_values", "apply"]

RESOLUTION = 1 << 16


def threshold(p: float) -> int:
    """The integer threshold in [0, 2**16]: an element is dropped when its uniform is below it."""
    return int(round(float(p) * RESOLUTION))


def effective_p(p: float) -> float:
    """The drop probability actually realised by the 16-bit threshold."""
    return threshold(p) / RESOLUTION


def keep_scale(p: float) -> float:
    """``1 / (1 - p_eff)``, and 0.0 when every element is dropped (never a division by zero)."""
    t = threshold(p)
    return 0.0 if t >= RESOLUTION else RESOLUTION / (RESOLUTION - t)


def keep_mask(shape, p: float, key: tuple[int, int], counter: int) -> np.ndarray:
    """Boolean mask of ``shape``: True where the element is kept."""
    shape = tuple(shape)
    return _reference.keep_mask(int(np.prod(shape, dtype=np.int64)), threshold(p), key, counter).reshape(shape)


def mask_values(shape, p: float, key: tuple[int, int], counter: int, scale: float, dtype) -> np.ndarray:
    """The multiplicative mask itself: ``scale`` where kept, 0 where dropped."""
    m = keep_mask(shape, p, key, counter).astype(dtype)
    m *= np.dtype(dtype).type(scale)
    return m


def apply(x: np.ndarray, p: float, key: tuple[int, int], counter: int, scale: float) -> np.ndarray:
    """Fused ``y = x * mask``: a new array of ``x``'s shape and dtype; ``x`` is not modified."""
    return _reference.apply(x, threshold(p), scale, key, counter)
