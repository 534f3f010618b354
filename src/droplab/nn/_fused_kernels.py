"""numba kernels of :mod:`droplab.nn._fused` (imported on first use: importing this imports numba).

Module-level functions, so ``cache=True`` keeps them across processes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from droplab.kernels._numba import (CHUNK, GROUP, GROUP_ELEMENTS, SERIAL_BELOW, _LAUNCH, _chunk_uniforms,
                                    _counter_words, _key_schedule)
from droplab.kernels._reference import LANES

__all__ = ["bias_relu", "gate", "bias_relu_mask"]


@njit(cache=True)
def bias_relu(h, b, zero):
    """``h = max(h + b, 0)`` in place, row by row."""
    for i in range(h.shape[0]):
        row = h[i]
        for j in range(h.shape[1]):
            v = row[j] + b[j]
            # a NaN fails both tests and propagates, as np.maximum does
            row[j] = v if v > 0 else (zero if v <= 0 else v)


@njit(cache=True)
def gate(y, dy, s, zero, out, colsum):
    """``out = dy * s`` where ``y > 0``, else 0; ``colsum`` = column sums of ``out``.

    Row by row, so each column is summed in the order of NumPy's ``sum(axis=0)``."""
    colsum[:] = zero
    for i in range(y.shape[0]):
        yr = y[i]
        dr = dy[i]
        orow = out[i]
        for j in range(y.shape[1]):
            v = dr[j] * s if yr[j] > 0 else zero
            orow[j] = v
            colsum[j] += v


# Bias, ReLU and the dropout mask in one pass: the chunks, Philox blocks and 16-bit compare of
# droplab.kernels._numba (so the very bits of kernels.apply), with the bias and ReLU applied
# to each element before it is masked.


@njit(inline="always")
def _brm_chunk(x, b, out, m, ci, t, scale, zero, relu_zero, c2, c3, ks0, ks1, chunk):
    start = ci * chunk
    stop = min(start + chunk, x.size)
    buf = np.empty(GROUP * 4, dtype=np.uint32)
    u = buf.view(np.uint16)
    s = start
    while s < stop:  # in steps of GROUP blocks, as kernels._numba._apply_chunk
        e = min(s + GROUP_ELEMENTS, stop)
        _chunk_uniforms(buf, s // LANES, (e - s + LANES - 1) // LANES, c2, c3, ks0, ks1)
        pos = s
        while pos < e:  # one row segment at a time, so the bias is read contiguously
            j0 = pos % m
            seg = min(e - pos, m - j0)
            xs = x[pos:pos + seg]
            os = out[pos:pos + seg]
            bs = b[j0:j0 + seg]
            us = u[pos - s:pos - s + seg]
            for k in range(seg):
                v = xs[k] + bs[k]
                v = v if v > 0 else (relu_zero if v <= 0 else v)
                os[k] = v * (scale if us[k] >= t else zero)
            pos += seg
        s = e


@njit(parallel=True, cache=True)
def _brm_parallel(x, b, out, m, t, scale, zero, relu_zero, c2, c3, ks0, ks1, chunk):
    for ci in prange((x.size + chunk - 1) // chunk):
        _brm_chunk(x, b, out, m, ci, t, scale, zero, relu_zero, c2, c3, ks0, ks1, chunk)


@njit(cache=True)
def _brm_serial(x, b, out, m, t, scale, zero, relu_zero, c2, c3, ks0, ks1, chunk):
    for ci in range((x.size + chunk - 1) // chunk):
        _brm_chunk(x, b, out, m, ci, t, scale, zero, relu_zero, c2, c3, ks0, ks1, chunk)


def bias_relu_mask(pre, b, out, threshold, scale, zero, key, counter):
    """``out = max(pre + b, 0) * (scale if kept else zero)``; pre and out 2-D C-contiguous.

    ``0 < threshold < 2**16``; parallel from the kernels' ``SERIAL_BELOW`` size up, under
    their launch lock, exactly as ``kernels.apply``."""
    c2, c3 = _counter_words(counter)
    ks0, ks1 = _key_schedule(int(key[0]), int(key[1]))
    args = (pre.reshape(-1), b, out.reshape(-1), np.int64(pre.shape[1]), np.uint16(threshold), scale, zero,
            pre.dtype.type(0), c2, c3, ks0, ks1, np.int64(CHUNK))
    if pre.size < SERIAL_BELOW:
        _brm_serial(*args)
    else:
        with _LAUNCH:
            _brm_parallel(*args)
    return out
