"""Pure-NumPy reference of droplab's mask source: the test oracle and the numba-free fallback.

Element ``i`` of a mask drawn with ``key = (k0, k1)`` at call ``counter`` is a pure function of
those three numbers. Philox4x32-10 (Salmon et al., SC'11) is applied to the 128-bit counter
``(j & 0xffffffff, j >> 32, counter & 0xffffffff, counter >> 32)`` with ``j = i // 4``; element
``i`` takes the block's 32-bit output word ``i % 4`` whole. The element is dropped when that
word is ``< threshold(p)``, an integer in ``[0, 2**32]``: threshold 0 drops nothing, ``2**32``
drops everything, and in between the drop probability is ``threshold / 2**32``.
"""

from __future__ import annotations

import numpy as np

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
ROUNDS = 10
LANES = 4  # elements per Philox block: one 32-bit output word each

_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32(c0, c1, c2, c3, k0: int, k1: int, rounds: int = ROUNDS):
    """Philox4x32 on arrays of counter words; returns the four uint32 output words."""
    c = [np.asarray(w, dtype=np.uint64) & _MASK32 for w in (c0, c1, c2, c3)]
    k0 = np.uint64(k0 & 0xFFFFFFFF)
    k1 = np.uint64(k1 & 0xFFFFFFFF)
    m0, m1 = np.uint64(PHILOX_M0), np.uint64(PHILOX_M1)
    for r in range(rounds):
        if r:  # the key is bumped between rounds
            k0 = (k0 + np.uint64(PHILOX_W0)) & _MASK32
            k1 = (k1 + np.uint64(PHILOX_W1)) & _MASK32
        p0 = m0 * c[0]
        p1 = m1 * c[2]
        c = [
            ((p1 >> np.uint64(32)) ^ c[1] ^ k0) & _MASK32,
            p1 & _MASK32,
            ((p0 >> np.uint64(32)) ^ c[3] ^ k1) & _MASK32,
            p0 & _MASK32,
        ]
    return tuple(w.astype(np.uint32) for w in c)


def words(size: int, key: tuple[int, int], counter: int) -> np.ndarray:
    """The first ``size`` 32-bit words of call ``counter`` under ``key`` (uint32, flat, one per element)."""
    blocks = -(-size // LANES)
    j = np.arange(blocks, dtype=np.uint64)
    w = philox4x32(j & _MASK32, j >> np.uint64(32), counter & 0xFFFFFFFF, counter >> 32, *key)
    return np.stack(w, axis=1).reshape(-1)[:size]


def keep_mask(size: int, threshold: int, key: tuple[int, int], counter: int) -> np.ndarray:
    """Flat boolean keep-mask: True where the element survives (its word is ``>= threshold``)."""
    if threshold <= 0:
        return np.ones(size, dtype=bool)
    if threshold >= 1 << 32:
        return np.zeros(size, dtype=bool)
    return words(size, key, counter) >= np.uint32(threshold)


def apply(x: np.ndarray, threshold: int, scale: float, key: tuple[int, int], counter: int) -> np.ndarray:
    """``y = x * (keep ? scale : 0)`` over the flat C-order index of ``x``, in ``x``'s dtype.

    ``scale`` is rounded once to ``x``'s dtype, so a kept element is ``x * dtype(scale)``,
    one rounding, as PyTorch's CPU kernel computes it.
    """
    m = keep_mask(x.size, threshold, key, counter).astype(x.dtype)
    m *= x.dtype.type(scale)
    out = np.empty(x.shape, x.dtype)  # a plain new array, as the fast path returns
    np.multiply(x, m.reshape(x.shape), out=out)
    return out
