"""numba kernels of :mod:`droplab.nn.optim` (imported on first use: importing this imports numba).

One compiled call updates a whole group of parameters (Adam's moments, bias correction, AdamW's
decay and the weight change; SGD's velocity and step) where NumPy made about ten passes and four
temporaries per parameter, and the optimizer a Python round trip per parameter. The arithmetic
is NumPy's, operation for operation, in the arrays' dtype (the scalars arrive already cast to
it, as NumPy casts a Python float under NEP 50), without fast-math and with
``error_model="numpy"`` (IEEE division, no zero-division branch, so the loops vectorise): the
update equals the NumPy code's bit for bit. Module-level functions, so ``cache=True`` keeps them
across processes.

The parameters of a group travel as tuples of ``GROUP`` flat C-contiguous arrays of one dtype
(numba's ``UniTuple``, indexed in a loop), padded with empty arrays: one compiled signature per
dtype, whatever the number of parameters.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["GROUP", "adam", "sgd"]

#: Parameters per compiled call; the tuples are padded to this length.
GROUP = 8


@njit(error_model="numpy")
def _squares_finite(g, big):
    """Every ``g * g`` finite (``<= big``, the dtype's largest value; NaN is not)."""
    bad = False
    for i in range(g.shape[0]):  # no early exit: an OR reduction vectorises
        gg = g[i] * g[i]
        bad |= not (gg <= big)
    return not bad


@njit(error_model="numpy")
def _adam_one(w, g, m, v, b1, c1, b2, c2, bc2, step, eps, keep, clear):
    """Adam on one flat parameter, in place; with ``clear``, each gradient element is zeroed once
    read (fit's zero_grad for the next batch, done while the element is at hand)."""
    for i in range(w.shape[0]):
        gi = g[i]
        mi = m[i] * b1 + c1 * gi  # NumPy: m *= b1; m += c1 * g
        m[i] = mi
        vi = v[i] * b2 + (gi * gi) * c2  # v *= b2; gg = g * g; gg *= c2; v += gg
        v[i] = vi
        d = np.sqrt(vi / bc2) + eps  # denom = sqrt(v / bc2); denom += eps
        w[i] = w[i] * keep - (step * mi) / d  # AdamW's w *= keep, then w -= step * m / denom
        if clear:
            g[i] = 0


@njit(cache=True, error_model="numpy")
def adam(ws, gs, ms, vs, k, clear):
    """Adam over a group of parameters, one after another, in place: ``ws``, ``gs``, ``ms``,
    ``vs`` the weights, gradients and moments (tuples of flat arrays of one dtype). Returns the
    position of the first parameter whose ``g * g`` is not finite (``> big``, the dtype's
    largest value, or NaN), which is left untouched with those after it (the ones before it are
    updated, as parameter by parameter), or -1.

    ``clear``: zero each gradient once consumed. Every gradient of the group is then checked
    before any update, and a refused group is updated as without ``clear`` (no gradient
    zeroed): a refusal leaves what it leaves without.

    ``k``: the scalars, an array of the arrays' dtype: ``b1``, ``b2`` the betas, ``c1 = 1 - b1``, ``c2 = 1 - b2``,
    ``bc2 = 1 - b2**t``, ``step = lr / (1 - b1**t)``, ``eps``, ``keep`` AdamW's
    ``1 - lr * weight_decay`` (1 leaves ``w`` exactly as it is), ``big``. One array, not
    nine arguments: each argument costs numba's dispatcher about a microsecond a call."""
    b1, c1, b2, c2, bc2, step, eps, keep, big = k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]
    first_bad = -1
    for j in range(len(ws)):
        if not _squares_finite(gs[j], big):
            first_bad = j
            break
        if not clear:
            _adam_one(ws[j], gs[j], ms[j], vs[j], b1, c1, b2, c2, bc2, step, eps, keep, False)
    if clear:
        for j in range(len(ws) if first_bad < 0 else first_bad):
            _adam_one(ws[j], gs[j], ms[j], vs[j], b1, c1, b2, c2, bc2, step, eps, keep, first_bad < 0)
    return first_bad


@njit(error_model="numpy")
def _sgd_one(w, g, v, lr, momentum, mode, clear):
    n = w.shape[0]
    if mode == 0:
        for i in range(n):
            w[i] = w[i] - lr * g[i]  # NumPy: w -= lr * g
            if clear:
                g[i] = 0
    elif mode == 1:
        for i in range(n):
            vi = v[i] * momentum - lr * g[i]  # v *= momentum; v -= lr * g
            v[i] = vi
            w[i] = w[i] + vi  # w += v
            if clear:
                g[i] = 0
    else:
        for i in range(n):
            gi = lr * g[i]
            vi = v[i] * momentum - gi
            v[i] = vi
            w[i] = w[i] + (momentum * vi - gi)  # Nesterov: w += momentum * v - lr * g
            if clear:
                g[i] = 0


@njit(cache=True, error_model="numpy")
def sgd(ws, gs, vs, k, mode, clear):
    """SGD over a group of parameters, in place. ``k``: ``lr`` and ``momentum`` in the arrays'
    dtype; ``mode`` 0: plain (``vs`` unused), 1: momentum, 2: Nesterov momentum; ``clear``:
    zero each gradient once consumed."""
    lr, momentum = k[0], k[1]
    for j in range(len(ws)):
        _sgd_one(ws[j], gs[j], vs[j], lr, momentum, mode, clear)
    return -1
