"""Continuous counter-based noise: uniforms and normals as pure functions of (key, counter, index).

The Bernoulli masks of :mod:`droplab.kernels` cut each Philox4x32-10 block into eight 16-bit
uniforms. Variants that need continuous noise (Gaussian dropout's normals, Concrete
dropout's relaxed Bernoulli, DropConnect's Gaussian inference) draw from the same generator
here, with 32-bit uniforms (four per block), so their noise is reproducible from the
layer's seed and ``backward`` regenerates it instead of storing it. The key's second word is
XOR-ed with a stream constant so this stream never coincides with the layer's mask stream.

Example:
    >>> import numpy as np
    >>> z = normal((1000,), (1, 2), 0, np.float64)
    >>> z.shape, z.dtype, bool(np.array_equal(z, normal((1000,), (1, 2), 0, np.float64)))
    ((1000,), dtype('float64'), True)
    >>> u = uniform((3, 5), (1, 2), 7, np.float32)
    >>> bool(((u > 0) & (u < 1)).all())
    True
"""

from __future__ import annotations

import numpy as np

from droplab.kernels._reference import philox4x32

__all__ = ["uniform", "normal"]

_STREAM = 0x5BD1E995  # separates the continuous stream from the 16-bit mask stream of the same key
_MASK32 = np.uint64(0xFFFFFFFF)


def _uniform64(n: int, key: tuple[int, int], counter: int) -> np.ndarray:
    """``n`` float64 uniforms in the open interval (0, 1), 32 bits each."""
    blocks = -(-n // 4)
    j = np.arange(blocks, dtype=np.uint64)
    words = philox4x32(j & _MASK32, j >> np.uint64(32), counter & 0xFFFFFFFF, counter >> 32,
                       key[0], key[1] ^ _STREAM)
    w = np.stack(words, axis=1).reshape(-1)[:n].astype(np.float64)
    return (w + 0.5) * 2.0**-32  # never 0 or 1, so logs stay finite


def uniform(shape: tuple[int, ...], key: tuple[int, int], counter: int, dtype=np.float64) -> np.ndarray:
    """Uniforms on (0, 1) of ``shape``, computed in float64 and cast to ``dtype``.

    A float32 cast can round the largest values up to 1.0; callers that take ``log(1 - u)``
    should ask for float64.
    """
    n = int(np.prod(shape, dtype=np.int64))
    return _uniform64(n, key, counter).reshape(shape).astype(dtype, copy=False)


def normal(shape: tuple[int, ...], key: tuple[int, int], counter: int, dtype=np.float64) -> np.ndarray:
    """Standard normals of ``shape`` by the Box-Muller transform of the 32-bit uniforms."""
    n = int(np.prod(shape, dtype=np.int64))
    u = _uniform64(2 * (-(-n // 2)), key, counter)
    r = np.sqrt(-2.0 * np.log(u[0::2]))
    theta = 2.0 * np.pi * u[1::2]
    z = np.empty(u.size)
    z[0::2] = r * np.cos(theta)
    z[1::2] = r * np.sin(theta)
    return z[:n].reshape(shape).astype(dtype, copy=False)
