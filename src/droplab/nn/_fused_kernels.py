"""numba kernels of :mod:`droplab.nn._fused` (imported on first use: importing this imports numba).

Module-level functions, so ``cache=True`` keeps them across processes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from droplab.kernels._numba import (CHUNK, GROUP, GROUP_ELEMENTS, _LAUNCH, _chunk_words, _counter_words, _factors,
                                    _key_schedule, use_pool)
from droplab.kernels._reference import LANES

__all__ = ["bias_relu", "gate", "bias_relu_mask", "small_dense", "small_weight_grad", "gate_small",
           "small_dense_relu_mask"]


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


# --- Dense layers with few inputs (``in_features <= SMALL_IN``) ---------------------------------
# BLAS handles x @ W with K = 2 (the spiral's first layer) poorly: 3000x2 @ 2x512 took 1.4 ms
# to write 6 MB, and x.T @ dy as long, on one thread. These kernels compute the same sums
# in a fixed order, x[i, 0] * w[0, j] + x[i, 1] * w[1, j] + ..., each product rounded and
# then added (no FMA: numba contracts nothing without fastmath), and the weight gradient row
# by row, as the column sums. Dense and the fused block both use them, so fused and layer by
# layer stay bit-identical.


@njit(inline="always")
def _dot_segment(x, w, i, j0, seg, acc):
    """``acc[:seg] = sum_q x[i, q] * w[q, j0:j0 + seg]``, q in order."""
    wr = w[0, j0:j0 + seg]
    xv = x[i, 0]
    for k in range(seg):
        acc[k] = xv * wr[k]
    for q in range(1, x.shape[1]):
        wr = w[q, j0:j0 + seg]
        xv = x[i, q]
        for k in range(seg):
            acc[k] = acc[k] + xv * wr[k]


@njit(inline="always")
def _small_rows(x, w, b, out, r0, r1):
    m = w.shape[1]
    for i in range(r0, r1):
        orow = out[i]
        _dot_segment(x, w, i, 0, m, orow)
        for j in range(m):
            orow[j] = orow[j] + b[j]


@njit(cache=True, nogil=True)
def _small_dense_serial(x, w, b, out, rows):
    _small_rows(x, w, b, out, 0, x.shape[0])


@njit(parallel=True, cache=True)
def _small_dense_parallel(x, w, b, out, rows):
    n = x.shape[0]
    for ri in prange((n + rows - 1) // rows):
        _small_rows(x, w, b, out, ri * rows, min(ri * rows + rows, n))


def small_dense(x, w, b, out):
    """``out = x @ w + b`` for few inputs, the products summed in input order."""
    rows = max(1, CHUNK // max(1, w.shape[1]))
    if not use_pool(out.size):
        _small_dense_serial(x, w, b, out, rows)
    else:
        with _LAUNCH:
            _small_dense_parallel(x, w, b, out, rows)
    return out


@njit(cache=True)
def small_weight_grad(x, dy, dw):
    """``dw = x.T @ dy`` for few inputs: each entry summed over the rows in order, from 0."""
    dw[:] = 0
    for i in range(x.shape[0]):
        dr = dy[i]
        for q in range(x.shape[1]):
            xv = x[i, q]
            dq = dw[q]
            for j in range(dr.size):
                dq[j] = dq[j] + xv * dr[j]


@njit(cache=True)
def gate_small(y, dy, s, zero, x, out, write_out, colsum, dw):
    """``gate`` and ``small_weight_grad`` in one pass; ``out`` is written only if asked
    (the first layer of a model needs no input gradient, so nothing else reads it)."""
    colsum[:] = zero
    dw[:] = 0
    v = np.empty(y.shape[1], y.dtype)
    for i in range(y.shape[0]):
        yr = y[i]
        dr = dy[i]
        for j in range(v.size):
            v[j] = dr[j] * s if yr[j] > 0 else zero
            colsum[j] += v[j]
        if write_out:
            out[i, :] = v
        for q in range(x.shape[1]):
            xv = x[i, q]
            dq = dw[q]
            for j in range(v.size):
                dq[j] = dq[j] + xv * v[j]


# Bias, ReLU and the dropout mask in one pass: the chunks, Philox blocks and 32-bit compare of
# droplab.kernels._numba (so the very bits of kernels.apply), with the bias and ReLU applied
# to each element before it is masked.


# ``x`` holds the pre-activations ``x @ W`` (then ``w`` has no rows), or, for a Dense with few
# inputs, the inputs themselves, and the product is computed here from ``w``: no
# pre-activation array at all.


@njit(inline="always")
def _brm_chunk(x, w, b, out, m, ci, t, scale, zero, relu_zero, c2, c3, ks0, ks1, chunk):
    start = ci * chunk
    stop = min(start + chunk, out.size)
    u = np.empty(GROUP * LANES, dtype=np.uint32)
    f = np.empty(GROUP_ELEMENTS, dtype=out.dtype)
    acc = np.empty(GROUP_ELEMENTS, dtype=out.dtype)
    flat = x.reshape(x.size)
    product = w.shape[0] > 0
    s = start
    while s < stop:  # in steps of GROUP blocks, as kernels._numba._apply_chunk
        e = min(s + GROUP_ELEMENTS, stop)
        _chunk_words(u, s // LANES, (e - s + LANES - 1) // LANES, c2, c3, ks0, ks1)
        _factors(f, u, e - s, t, scale, zero)
        pos = s
        while pos < e:  # one row segment at a time, so the bias is read contiguously
            i = pos // m
            j0 = pos - i * m
            seg = min(e - pos, m - j0)
            if product:
                _dot_segment(x, w, i, j0, seg, acc)
            else:  # staged: when out is x (the block writes into its product), a loop reading and
                # writing one array fails LLVM's overlap check and runs scalar, 8x slower
                xs = flat[pos:pos + seg]
                for k in range(seg):
                    acc[k] = xs[k]
            xs = acc[:seg]
            os = out[pos:pos + seg]
            bs = b[j0:j0 + seg]
            fs = f[pos - s:pos - s + seg]
            for k in range(seg):
                v = xs[k] + bs[k]
                v = v if v > 0 else (relu_zero if v <= 0 else v)
                os[k] = v * fs[k]
            pos += seg
        s = e


@njit(parallel=True, cache=True)
def _brm_parallel(x, w, b, out, m, t, scale, zero, relu_zero, c2, c3, ks0, ks1, chunk):
    for ci in prange((out.size + chunk - 1) // chunk):
        _brm_chunk(x, w, b, out, m, ci, t, scale, zero, relu_zero, c2, c3, ks0, ks1, chunk)


@njit(cache=True, nogil=True)
def _brm_serial(x, w, b, out, m, t, scale, zero, relu_zero, c2, c3, ks0, ks1, chunk):
    for ci in range((out.size + chunk - 1) // chunk):
        _brm_chunk(x, w, b, out, m, ci, t, scale, zero, relu_zero, c2, c3, ks0, ks1, chunk)


def _brm(x, w, b, out, threshold, scale, zero, key, counter):
    c2, c3 = _counter_words(counter)
    ks0, ks1 = _key_schedule(int(key[0]), int(key[1]))
    args = (x, w, b, out.reshape(-1), np.int64(out.shape[1]), np.uint32(threshold), scale, zero,
            out.dtype.type(0), c2, c3, ks0, ks1, np.int64(CHUNK))
    if not use_pool(out.size):
        _brm_serial(*args)
    else:
        with _LAUNCH:
            _brm_parallel(*args)
    return out


def bias_relu_mask(pre, b, out, threshold, scale, zero, key, counter):
    """``out = max(pre + b, 0) * (scale if kept else zero)``; pre and out 2-D C-contiguous.

    ``0 < threshold < 2**32``; parallel from the kernels' ``SERIAL_BELOW`` size up, under
    their launch lock, exactly as ``kernels.apply``."""
    return _brm(pre, np.empty((0, pre.shape[1]), pre.dtype), b, out, threshold, scale, zero, key, counter)


def small_dense_relu_mask(x, w, b, out, threshold, scale, zero, key, counter):
    """``bias_relu_mask(small_dense(x, w, 0) ...)`` without the pre-activation array:
    ``out = max(x @ w + b, 0) * (scale if kept else zero)``, bit for bit."""
    return _brm(x, w, b, out, threshold, scale, zero, key, counter)
