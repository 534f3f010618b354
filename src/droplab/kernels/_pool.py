"""Recycled memory for the kernels' large outputs.

A new array of 32 MiB or more costs more to create than dropout costs to compute: glibc
serves it with a fresh ``mmap``, and the kernel must zero every page on first touch. On the
2-core machine a 16M-element float32 output took 13-16 ms through the layer against 7-9 ms
into an existing array. Below 32 MiB glibc's own free lists already reuse freed blocks
(its dynamic mmap threshold stops at 32 MiB), so only larger outputs come from here.

An output is a view of a pooled byte buffer through a small lease object. NumPy makes the
lease the base of the output and of every view taken from it, so the lease dies only when
the last array that can reach the memory dies; then, and only then, the buffer returns to
the free list. Nothing is ever handed out twice while reachable, and nothing is kept beyond
``MAX_FREE_BYTES`` of free buffers (:func:`release` frees them at once). No mask is stored
here: a buffer is recycled output memory, empty of meaning once the caller drops it.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["MIN_BYTES", "MAX_FREE_BYTES", "empty", "release", "free_bytes"]

#: Smaller outputs are plain ``np.empty`` (glibc recycles them already).
MIN_BYTES = 32 << 20
#: The free list never holds more than this; the oldest buffers go first.
MAX_FREE_BYTES = 256 << 20

# Re-entrant: a lease can die inside a locked region when the cyclic garbage collector runs.
_lock = threading.RLock()
_free: list[np.ndarray] = []  # most recently returned last


class _Lease:
    """Owns one pooled buffer while any array made from it is alive."""

    __slots__ = ("_buffer", "__array_interface__")

    def __init__(self, buffer: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._buffer = buffer
        self.__array_interface__ = {"shape": shape, "typestr": dtype.str,
                                    "data": (buffer.ctypes.data, False), "version": 3}

    def __del__(self) -> None:
        try:
            _give_back(self._buffer)
        except Exception:  # interpreter shutdown: the module's globals may be gone
            pass


def _give_back(buffer: np.ndarray) -> None:
    with _lock:
        _free.append(buffer)
        total = sum(b.nbytes for b in _free)
        while total > MAX_FREE_BYTES:
            total -= _free.pop(0).nbytes


def empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array, from the free list when it is large."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize
    for s in shape:
        nbytes *= int(s)
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    buffer = None
    with _lock:
        for i in range(len(_free) - 1, -1, -1):
            if _free[i].nbytes == nbytes:
                buffer = _free.pop(i)
                break
    if buffer is None:
        buffer = np.empty(nbytes, dtype=np.uint8)
    return np.asarray(_Lease(buffer, tuple(int(s) for s in shape), dtype))


def free_bytes() -> int:
    """Bytes held in free buffers now."""
    with _lock:
        return sum(b.nbytes for b in _free)


def release() -> int:
    """Free every pooled buffer no array uses; returns the bytes released."""
    with _lock:
        n = sum(b.nbytes for b in _free)
        _free.clear()
    return n
