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
    # one shape for the four words (the call counter's words are scalars), copies updated in place
    c = [np.array(w) for w in np.broadcast_arrays(*[np.asarray(w, dtype=np.uint64) for w in (c0, c1, c2, c3)])]
    for w in c:
        w &= _MASK32
    k0 = np.uint64(k0 & 0xFFFFFFFF)
    k1 = np.uint64(k1 & 0xFFFFFFFF)
    m0, m1 = np.uint64(PHILOX_M0), np.uint64(PHILOX_M1)
    p0, p1 = np.empty_like(c[0]), np.empty_like(c[0])
    for r in range(rounds):
        if r:  # the key is bumped between rounds
            k0 = (k0 + np.uint64(PHILOX_W0)) & _MASK32
            k1 = (k1 + np.uint64(PHILOX_W1)) & _MASK32
        np.multiply(c[0], m0, out=p0)  # exact: 32 x 32 -> 64 bits
        np.multiply(c[2], m1, out=p1)
        # (hi(p1) ^ c1 ^ k0, lo(p1), hi(p0) ^ c3 ^ k1, lo(p0)), each word read before it is replaced
        np.right_shift(p1, np.uint64(32), out=c[0])
        c[0] ^= c[1]
        c[0] ^= k0
        np.bitwise_and(p1, _MASK32, out=c[1])
        np.right_shift(p0, np.uint64(32), out=c[2])
        c[2] ^= c[3]
        c[2] ^= k1
        np.bitwise_and(p0, _MASK32, out=c[3])
    return tuple(w.astype(np.uint32) for w in c)


#: Philox blocks computed per step of :func:`words` (their temporaries stay in cache).
_STEP = 1 << 14


def words(size: int, key: tuple[int, int], counter: int) -> np.ndarray:
    """The first ``size`` 32-bit words of call ``counter`` under ``key`` (uint32, flat, one per element)."""
    blocks = -(-size // LANES)
    out = np.empty((blocks, LANES), dtype=np.uint32)
    for j0 in range(0, blocks, _STEP):
        j = np.arange(j0, min(j0 + _STEP, blocks), dtype=np.uint64)
        w = philox4x32(j & _MASK32, j >> np.uint64(32), counter & 0xFFFFFFFF, counter >> 32, *key)
        for lane in range(LANES):
            out[j0:j0 + j.size, lane] = w[lane]
    return out.reshape(-1)[:size]


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
