"""numba fast path of droplab's mask source, bit-identical to :mod:`droplab.kernels._reference`.

Importing this module imports numba (about 0.3 s), so :mod:`droplab.kernels` imports it only
on the first kernel call. Each kernel is one pass over the output: a ``prange`` over chunks
of ``CHUNK`` elements (a plain loop on the calling thread below ``SERIAL_BELOW`` or inside
:func:`on_this_thread`). A chunk is done in steps of ``GROUP`` blocks: a straight-line loop
computes Philox4x32-10 for the step's blocks into a small local buffer (L1-resident), a second
turns each element's 32-bit word into its multiplier (``scale`` or 0), and a third writes
``x * multiplier``. The inner loops are branch-free so LLVM vectorises them (``vpmuludq`` for
the 32x32->64 multiplies). No fastmath: the result must match the reference bit for bit.

Every element depends only on ``(key, counter, index)``, so the chunk size and the number of
threads change nothing but speed.
"""

from __future__ import annotations

import contextlib
import functools
import threading

from droplab.errors import InvalidValueError
import numpy as np
from numba import njit, prange

from droplab.kernels._reference import LANES, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1

__all__ = ["CHUNK", "philox4x32", "words", "apply", "mask_values", "keep_mask", "use_pool", "on_this_thread"]

#: Elements per parallel work item (a multiple of ``LANES``). 8192 float32 elements plus their
#: 32 KiB of words stay in L1/L2 while giving a 2-core machine hundreds of items to balance.
CHUNK = 8192

#: Philox blocks per inner step. A chunk is done in steps of ``GROUP`` blocks: their words
#: (16 bytes a block) and then their ``LANES * GROUP`` elements. Short steps let the core
#: overlap the arithmetic of one step with the memory traffic of the last; computing a whole
#: chunk's words first and then streaming its elements left one of the two idle at a time (16M
#: float32 on 2 threads: 9-12 ms before, 7.1-7.4 ms after, against np.copyto's 6-7 ms).
GROUP = 32
GROUP_ELEMENTS = GROUP * LANES

#: Arrays smaller than this run on the calling thread: below it, waking the pool costs more
#: than the second core saves (measured with ``benchmarks/kernels_quick.py``).
SERIAL_BELOW = 1 << 16

# numba's workqueue pool (droplab's default, see kernels._configure_threads) aborts the process
# when two Python threads launch parallel kernels at once; one lock makes them take turns
# (each launch already uses every core).
_LAUNCH = threading.Lock()

_HERE = threading.local()  # .serial: this thread runs every kernel itself (on_this_thread)


def use_pool(size: int) -> bool:
    """Whether a kernel writing ``size`` elements runs on numba's thread pool: from
    ``SERIAL_BELOW`` up, unless the calling thread is inside :func:`on_this_thread`."""
    return size >= SERIAL_BELOW and not getattr(_HERE, "serial", False)


@contextlib.contextmanager
def on_this_thread():
    """Run every kernel the calling thread launches on that thread, without the GIL.

    For work already spread over threads by the caller (``nn.mc_predict`` runs its input
    chunks on one Python thread per core): there, launching numba's pool from each thread
    would only queue the launches behind ``_LAUNCH``. The serial kernels release the GIL, so
    the callers' threads compute at once. The bits are the same either way.
    """
    was = getattr(_HERE, "serial", False)
    _HERE.serial = True
    try:
        yield
    finally:
        _HERE.serial = was

_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_M0 = np.uint64(PHILOX_M0)
_M1 = np.uint64(PHILOX_M1)


@njit(inline="always")
def _round(c0, c1, c2, c3, k0, k1):
    # One Philox round on 32-bit words held in uint64 with zero upper halves, so the products
    # are exact 32x32->64 multiplies (vpmuludq once vectorised).
    # The masks on the inputs are no-ops on valid words but tell LLVM the upper halves are
    # zero; without them it emits the 64x64 vpmullq, several times slower.
    p0 = _M0 * (c0 & _M32)
    p1 = _M1 * (c2 & _M32)
    return ((p1 >> _S32) ^ (c1 & _M32) ^ (k0 & _M32)), p1 & _M32, ((p0 >> _S32) ^ (c3 & _M32) ^ (k1 & _M32)), p0 & _M32


@njit(inline="always")
def _philox10(c0, c1, c2, c3, ks0, ks1):
    # ks0/ks1: the ten round keys, precomputed once per call (the key schedule is the same
    # for every block). Written out so the block loop is straight-line code.
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, ks0[0], ks1[0])
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, ks0[1], ks1[1])
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, ks0[2], ks1[2])
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, ks0[3], ks1[3])
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, ks0[4], ks1[4])
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, ks0[5], ks1[5])
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, ks0[6], ks1[6])
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, ks0[7], ks1[7])
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, ks0[8], ks1[8])
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, ks0[9], ks1[9])
    return c0, c1, c2, c3


@functools.lru_cache(maxsize=256)
def _key_schedule(k0: int, k1: int):
    """The ten (k0, k1) round keys of Philox4x32-10 as two read-only uint64 arrays.

    Cached: a layer calls with the same key every step.
    """
    r = np.arange(10, dtype=np.uint64)
    ks0 = (np.uint64(k0 & 0xFFFFFFFF) + r * np.uint64(PHILOX_W0)) & _M32
    ks1 = (np.uint64(k1 & 0xFFFFFFFF) + r * np.uint64(PHILOX_W1)) & _M32
    ks0.flags.writeable = False
    ks1.flags.writeable = False
    return ks0, ks1


@njit(cache=True)
def _philox_scalar(c0, c1, c2, c3, ks0, ks1):
    return _philox10(c0, c1, c2, c3, ks0, ks1)


def philox4x32(counter_words, key):
    """Philox4x32-10 of one 128-bit counter through the compiled round function (for tests)."""
    ks0, ks1 = _key_schedule(int(key[0]), int(key[1]))
    c = [np.uint64(int(w) & 0xFFFFFFFF) for w in counter_words]
    return tuple(int(w) for w in _philox_scalar(c[0], c[1], c[2], c[3], ks0, ks1))


@njit(inline="always")
def _chunk_words(buf, first_block, nblocks, c2, c3, ks0, ks1):
    # Writes the words of blocks first_block .. first_block+nblocks-1 interleaved as
    # (w0, w1, w2, w3) per block: one word per element, in element order, exactly as the
    # reference lays them out.
    # The round keys go into locals first: read from their arrays inside the loop, they had to
    # be reloaded after every store to ``buf`` (which might alias them, for all LLVM knows), and
    # a kernel outside numba's thread pool made its words 1.65x slower (1M words, one thread:
    # 0.82 ms against 0.49 ms).
    k0 = (ks0[0], ks0[1], ks0[2], ks0[3], ks0[4], ks0[5], ks0[6], ks0[7], ks0[8], ks0[9])
    k1 = (ks1[0], ks1[1], ks1[2], ks1[3], ks1[4], ks1[5], ks1[6], ks1[7], ks1[8], ks1[9])
    for b in range(nblocks):
        j = np.uint64(first_block + b)
        w0, w1, w2, w3 = _philox10(j & _M32, j >> _S32, c2, c3, k0, k1)
        buf[4 * b] = np.uint32(w0)
        buf[4 * b + 1] = np.uint32(w1)
        buf[4 * b + 2] = np.uint32(w2)
        buf[4 * b + 3] = np.uint32(w3)


@njit(cache=True)
def _words(first_block, nblocks, c2, c3, ks0, ks1):
    buf = np.empty(nblocks * 4, dtype=np.uint32)
    _chunk_words(buf, first_block, nblocks, c2, c3, ks0, ks1)
    return buf


def words(first_block: int, nblocks: int, key, counter) -> np.ndarray:
    """The 32-bit words of blocks ``first_block ..`` as the kernels see them (for tests of
    block indices past 2**32, which no test array is large enough to reach)."""
    c2, c3 = _counter_words(counter)
    ks0, ks1 = _key_schedule(int(key[0]), int(key[1]))
    return _words(np.int64(first_block), np.int64(nblocks), c2, c3, ks0, ks1)


@njit(inline="always")
def _factors(f, u, n, t, scale, zero):
    # The step's multipliers, ``scale`` where kept and ``zero`` where dropped, staged in a local
    # buffer: the product loop then reads two arrays that cannot overlap its output and
    # vectorises on every path (selecting inside it ran 1.2-1.5x slower outside numba's pool).
    for k in range(n):
        f[k] = scale if u[k] >= t else zero


@njit(inline="always")
def _apply_chunk(x, out, ci, t, scale, zero, c2, c3, ks0, ks1, chunk):
    # ``out = x * multiplier`` over chunk ``ci`` of ``out``, where ``out.size`` is a whole
    # multiple of ``x.size`` (1 for plain dropout): ``x`` is read as if stacked that many
    # times, without the stacked copy. Output element ``i`` reads ``x[i % x.size]`` and takes
    # the word of ``i``, in segments that never cross the end of ``x`` (one per step when the
    # sizes are equal). Slices, so each loop index starts at 0: LLVM then proves it
    # non-negative, drops numba's negative-index wraparound and vectorises with plain loads
    # and stores (indexing x[s + k] gave gathers and scatters).
    n = out.size
    m = x.size
    start = ci * chunk
    stop = min(start + chunk, n)
    u = np.empty(GROUP * LANES, dtype=np.uint32)
    f = np.empty(GROUP * LANES, dtype=x.dtype)
    s = start
    while s < stop:
        e = min(s + GROUP_ELEMENTS, stop)
        _chunk_words(u, s // LANES, (e - s + LANES - 1) // LANES, c2, c3, ks0, ks1)
        _factors(f, u, e - s, t, scale, zero)
        pos = s
        while pos < e:
            j = pos % m
            seg = min(e - pos, m - j)
            xs = x[j:j + seg]
            os = out[pos:pos + seg]
            fs = f[pos - s:pos - s + seg]
            for k in range(seg):
                os[k] = xs[k] * fs[k]
            pos += seg
        s = e


@njit(inline="always")
def _keep_chunk(out, ci, t, c2, c3, ks0, ks1, chunk):
    n = out.size
    start = ci * chunk
    stop = min(start + chunk, n)
    u = np.empty(GROUP * LANES, dtype=np.uint32)
    s = start
    while s < stop:
        e = min(s + GROUP_ELEMENTS, stop)
        _chunk_words(u, s // LANES, (e - s + LANES - 1) // LANES, c2, c3, ks0, ks1)
        os = out[s:e]
        for k in range(e - s):
            os[k] = u[k] >= t
        s = e


# Each kernel comes twice: parallel, and serial for small arrays, where waking the thread
# pool (tens of microseconds) costs more than the work.


@njit(parallel=True, cache=True)
def _apply(x, out, t, scale, zero, c2, c3, ks0, ks1, chunk):
    for ci in prange((out.size + chunk - 1) // chunk):
        _apply_chunk(x, out, ci, t, scale, zero, c2, c3, ks0, ks1, chunk)


@njit(cache=True, nogil=True)
def _apply_serial(x, out, t, scale, zero, c2, c3, ks0, ks1, chunk):
    for ci in range((out.size + chunk - 1) // chunk):
        _apply_chunk(x, out, ci, t, scale, zero, c2, c3, ks0, ks1, chunk)


@njit(parallel=True, cache=True)
def _keep_mask(out, t, c2, c3, ks0, ks1, chunk):
    for ci in prange((out.size + chunk - 1) // chunk):
        _keep_chunk(out, ci, t, c2, c3, ks0, ks1, chunk)


@njit(cache=True, nogil=True)
def _keep_mask_serial(out, t, c2, c3, ks0, ks1, chunk):
    for ci in range((out.size + chunk - 1) // chunk):
        _keep_chunk(out, ci, t, c2, c3, ks0, ks1, chunk)


def _counter_words(counter):
    counter = int(counter)
    return np.uint64(counter & 0xFFFFFFFF), np.uint64(counter >> 32)


# The kernels take the threshold as uint32 (so the compare stays 32-bit wide once vectorised):
# callers handle threshold 0 (keep all) and 2**32 (drop all) without a kernel.


def _check_chunk(chunk: int) -> None:
    # A chunk must start on a block boundary: its first word is lane 0 of its first block.
    if chunk < LANES or chunk % LANES:
        raise InvalidValueError(f"chunk must be a positive multiple of {LANES}; got chunk={chunk!r}.")


def apply(x, out, threshold, scale, zero, key, counter, chunk=CHUNK):
    """``out = x * (scale if kept else zero)``; ``x``, ``out`` flat, contiguous, one dtype.

    ``scale`` and ``zero`` are scalars of that dtype; ``0 < threshold < 2**32``. ``out`` may
    be ``x`` (each element is read before it is written, by the same thread). ``out`` may
    also be a whole multiple of ``x`` in size: then ``x`` is read as if stacked that many
    times (``out = apply(concatenate([x] * r))``, bit for bit, without the copy).
    """
    _check_chunk(chunk)
    c2, c3 = _counter_words(counter)
    ks0, ks1 = _key_schedule(int(key[0]), int(key[1]))
    args = (x, out, np.uint32(threshold), scale, zero, c2, c3, ks0, ks1, np.int64(chunk))
    if not use_pool(out.size):
        _apply_serial(*args)
    else:
        with _LAUNCH:
            _apply(*args)
    return out


def mask_values(out, threshold, scale, zero, key, counter, chunk=CHUNK):
    """Fill flat ``out`` with ``scale`` where kept and ``zero`` where dropped.

    Runs the apply kernel on ones (``1 * scale == scale`` exactly): one compiled kernel
    fewer (about 3 s of cold compile per dtype) for a function that is off the hot path.
    """
    out.fill(1)
    return apply(out, out, threshold, scale, zero, key, counter, chunk)


def keep_mask(out, threshold, key, counter, chunk=CHUNK):
    """Fill flat boolean ``out`` with True where the element is kept."""
    _check_chunk(chunk)
    c2, c3 = _counter_words(counter)
    ks0, ks1 = _key_schedule(int(key[0]), int(key[1]))
    args = (out, np.uint32(threshold), c2, c3, ks0, ks1, np.int64(chunk))
    if not use_pool(out.size):
        _keep_mask_serial(*args)
    else:
        with _LAUNCH:
            _keep_mask(*args)
    return out
