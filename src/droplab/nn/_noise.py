"""Continuous counter-based noise: uniforms and normals as pure functions of (key, counter, shape).

The Bernoulli masks of :mod:`droplab.kernels` come from Philox4x32-10 cut into 16-bit
uniforms. Variants that need continuous noise (Gaussian dropout's normals, Concrete
dropout's relaxed Bernoulli, DropConnect's Gaussian inference) draw from NumPy's Philox
bit generator (Philox4x64-10, counter-based, in C) keyed by the layer's mask key and started
at a counter block chosen by the call counter. A draw is therefore a pure function of
``(key, counter, shape)``: ``backward`` regenerates it instead of storing it, and the same seed
gives the same noise. The key's second word is a stream constant, so this stream never
coincides with the layer's 16-bit mask stream.

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

__all__ = ["uniform", "normal"]

_STREAM = 0x5BD1E995_D40A7F8B  # the key's second word: separates this stream from the mask stream


def _generator(key: tuple[int, int], counter: int) -> np.random.Generator:
    # the call counter sits in the third counter word: a call draws from words 0-1 (2**128 blocks)
    # before it could reach the next call's blocks
    k = np.array([int(key[0]) | (int(key[1]) << 32), _STREAM], dtype=np.uint64)
    c = np.array([0, 0, int(counter) & 0xFFFFFFFFFFFFFFFF, 0], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=k, counter=c))


def uniform(shape: tuple[int, ...], key: tuple[int, int], counter: int, dtype=np.float64) -> np.ndarray:
    """Uniforms on the open interval (0, 1) of ``shape``, 53 bits, cast to ``dtype``.

    A float32 cast can round the largest values up to 1.0; callers that take ``log(1 - u)``
    should ask for float64.
    """
    n = int(np.prod(shape, dtype=np.int64))
    u = (_generator(key, counter).integers(0, 1 << 53, n, dtype=np.int64) + 0.5) * 2.0**-53  # never 0 or 1
    return u.reshape(shape).astype(dtype, copy=False)


def normal(shape: tuple[int, ...], key: tuple[int, int], counter: int, dtype=np.float64) -> np.ndarray:
    """Standard normals of ``shape`` (computed in float64, cast to ``dtype``)."""
    n = int(np.prod(shape, dtype=np.int64))
    return _generator(key, counter).standard_normal(n).reshape(shape).astype(dtype, copy=False)
