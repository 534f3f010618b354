"""numba kernels of :mod:`droplab.nn.optim` (imported on first use: importing this imports numba).

One compiled call per parameter does Adam's whole update (moments, bias correction, AdamW's
decay, the weight change) where NumPy made about ten passes and four temporaries. The
arithmetic is NumPy's, operation for operation, in the array's dtype (the scalars arrive
already cast to it, as NumPy casts a Python float under NEP 50), without fast-math and with
``error_model="numpy"`` (IEEE division, no zero-division branch, so the loop vectorises): the
update equals the NumPy code's bit for bit. Module-level functions, so ``cache=True`` keeps them
across processes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["adam"]


@njit(cache=True, error_model="numpy")
def adam(w, g, m, v, k):
    """Adam on flat arrays of one dtype, in place; returns False, changing nothing, when some
    ``g * g`` is not finite (``> big``, the dtype's largest value, or NaN).

    ``k``: the scalars, an array of the arrays' dtype: ``b1``, ``b2`` the betas, ``c1 = 1 - b1``, ``c2 = 1 - b2``,
    ``bc2 = 1 - b2**t``, ``step = lr / (1 - b1**t)``, ``eps``, ``keep`` AdamW's
    ``1 - lr * weight_decay`` (1 leaves ``w`` exactly as it is), ``big``. One array, not
    nine arguments: each argument costs numba's dispatcher about a microsecond a call."""
    b1, c1, b2, c2, bc2, step, eps, keep, big = k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]
    n = w.shape[0]
    bad = False
    for i in range(n):  # no early exit: an OR reduction vectorises
        gg = g[i] * g[i]
        bad |= not (gg <= big)
    if bad:
        return False
    for i in range(n):
        gi = g[i]
        mi = m[i] * b1 + c1 * gi  # NumPy: m *= b1; m += c1 * g
        m[i] = mi
        vi = v[i] * b2 + (gi * gi) * c2  # v *= b2; gg = g * g; gg *= c2; v += gg
        v[i] = vi
        d = np.sqrt(vi / bc2) + eps  # denom = sqrt(v / bc2); denom += eps
        w[i] = w[i] * keep - (step * mi) / d  # AdamW's w *= keep, then w -= step * m / denom
    return True
