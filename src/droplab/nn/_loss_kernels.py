"""numba kernels of :mod:`droplab.nn.losses` (imported on first use: importing this imports numba).

Softmax cross-entropy on integer labels in a few compiled passes around NumPy's own ``exp`` and
``log`` (NumPy's SIMD ``exp``/``log`` round differently from the C library's, so those stay
NumPy's ufuncs), where the NumPy code made about twenty calls. Every other operation is NumPy's,
in its order and in the array's dtype: a row's maximum as ``maximum.reduce`` takes it, the
row sums and the mean in NumPy's pairwise order (``pairwise_sum`` in NumPy's
``loops_utils.h.src``: 8 accumulators up to 128 elements, halves above), so the loss value and
its gradient equal the NumPy code's bit for bit. Module-level functions, so ``cache=True`` keeps
them across processes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["shift_rows", "row_sums", "sub_rows", "finish"]


@njit(cache=True)
def shift_rows(z):
    """``(z - max(z, axis=1), argmax(z, axis=1))``, as NumPy takes them: a NaN is the maximum
    (the first NaN for argmax), and the first of equal values wins."""
    n, k = z.shape
    shifted = np.empty_like(z)
    pred = np.empty(n, np.int64)
    for i in range(n):
        row = z[i]
        mp = row[0]
        arg = 0
        for j in range(1, k):
            v = row[j]
            if not (v <= mp) and mp == mp:  # NaN: argmax stops at the first, max stays NaN
                mp = v
                arg = j
        pred[i] = arg
        out = shifted[i]
        for j in range(k):
            out[j] = row[j] - mp
    return shifted, pred


@njit
def _block(a, lo, n, zero):
    """NumPy's ``pairwise_sum`` of ``a[lo:lo + n]`` for ``n <= 128``: one accumulator below 8
    elements, else 8 (element ``i`` into accumulator ``i % 8``), combined as a tree, then the
    remainder added one by one."""
    if n < 8:
        res = zero
        for i in range(lo, lo + n):
            res = res + a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        b = lo + i
        r0 = r0 + a[b]
        r1 = r1 + a[b + 1]
        r2 = r2 + a[b + 2]
        r3 = r3 + a[b + 3]
        r4 = r4 + a[b + 4]
        r5 = r5 + a[b + 5]
        r6 = r6 + a[b + 6]
        r7 = r7 + a[b + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res = res + a[lo + i]
        i += 1
    return res


@njit
def _pairwise(a, n, zero):
    """NumPy's ``pairwise_sum`` of ``a[:n]`` (contiguous): above 128 elements, the sum of the
    two halves' sums, the first half a multiple of 8 long (a post-order walk of that tree, with
    an explicit stack: numba's recursion does not survive ``cache=True``)."""
    if n <= 128:
        return _block(a, 0, n, zero)
    los = np.empty(64, np.int64)  # depth <= log2(n): 64 levels cover any array
    ns = np.empty(64, np.int64)
    stage = np.empty(64, np.int64)
    vals = np.empty(65, a.dtype)
    top, nv = 0, 0
    los[0], ns[0], stage[0] = 0, n, 0
    while top >= 0:
        lo, m = los[top], ns[top]
        if m <= 128:
            vals[nv] = _block(a, lo, m, zero)
            nv += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if stage[top] == 0:  # the first half
            stage[top] = 1
            top += 1
            los[top], ns[top], stage[top] = lo, half, 0
        elif stage[top] == 1:  # the second half
            stage[top] = 2
            top += 1
            los[top], ns[top], stage[top] = lo + half, m - half, 0
        else:  # both done: first + second
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
            top -= 1
    return vals[0]


@njit(cache=True)
def row_sums(e, zero):
    """``e.sum(axis=1)`` (``add.reduce``: 0 plus the pairwise sum of the row)."""
    s = np.empty(e.shape[0], e.dtype)
    for i in range(e.shape[0]):
        s[i] = zero + _pairwise(e[i], e.shape[1], zero)
    return s


@njit(cache=True)
def sub_rows(x, c):
    """``x -= c[:, None]`` in place."""
    for i in range(x.shape[0]):
        row = x[i]
        ci = c[i]
        for j in range(x.shape[1]):
            row[j] = row[j] - ci


@njit(cache=True)
def finish(logp, probs, t, pred, zero, one, nf):
    """From the log-probabilities and probabilities: ``probs[i, t[i]] -= 1; probs /= n`` in
    place (the gradient), and ``(sum_i logp[i, t[i]], rows whose pred is t)``, the sum as
    ``logp[arange(n), t].mean()`` takes it before dividing. A label outside ``[0, K)`` returns
    a count of -1 and changes nothing."""
    n, k = logp.shape
    for i in range(n):
        if t[i] < 0 or t[i] >= k:
            return zero, -1
    picked = np.empty(n, logp.dtype)
    correct = 0
    for i in range(n):
        c = t[i]
        picked[i] = logp[i, c]
        probs[i, c] = probs[i, c] - one
        if pred[i] == c:
            correct += 1
        row = probs[i]
        for j in range(k):
            row[j] = row[j] / nf
    return zero + _pairwise(picked, n, zero), correct
