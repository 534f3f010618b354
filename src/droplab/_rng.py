"""Seeds and random state: from ``seed=`` to generators, and the one object that owns a
layer's noise stream.

There is no global generator in droplab. Every random object turns its ``seed`` into a
:class:`numpy.random.SeedSequence` here. A container built with ``seed=s`` hands each of
its random children its own child of ``SeedSequence(s)`` in construction order, so the same
code with the same seed gives the same bits.

A dropout layer's randomness is a :class:`NoiseStream`: a Philox key (two 32-bit words) and a
call counter, in the manner of Keras' ``SeedGenerator`` (state ``[seed, counter]``,
``next()``). Each training forward takes ``stream.next()``, a :class:`Draw`: the key and one
counter value, from which every kind of noise droplab uses is a pure function of the element
index (Bernoulli masks through :mod:`droplab.kernels`, 53-bit uniforms, Box-Muller normals).
Backward replays the forward's draw instead of storing its noise. Only this module reads or
writes the key and the counter; everything else (both engines, model files, MC prediction,
the fused Dense-ReLU-Dropout block) goes through these methods:

==========================  ==================================================================
``next()``                  the draw of the next training forward; advances the counter
``at(counter)``             replay the draw of call ``counter`` (the counter does not move)
``counter`` / ``seek(c)``   the next call's number; set it (rewind or skip)
``state()`` / ``from_state``  ``{"key": [k0, k1], "counter": c}``, JSON-ready, and back (checked)
``child()``                 an independent stream for a replica (never the same masks); it
                            takes the parent's next call, so ``state()`` stays complete
``next(lane=r)``            the next call in lane ``r`` (counter + r * 2**48): one stream, several
                            processes (``droplab.torch`` puts distributed rank ``r`` in lane ``r``)
``continuous()``            the draw whose words feed continuous noise (uniforms, normals)
``substream(tag)``          a fixed side stream (e.g. DropConnect's inference noise), so that
                            evaluation never moves or reuses the training stream
==========================  ==================================================================

Example:
    >>> s = NoiseStream.from_seed(0)
    >>> d0, d1 = s.next(), s.next()
    >>> s.counter, d0 == s.at(0), d0 == d1
    (2, True, False)
    >>> NoiseStream.from_state(s.state()).state() == s.state()
    True
    >>> s.child().state() != s.state()
    True
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Union

from droplab.errors import InvalidTypeError, InvalidValueError
import numpy as np

from droplab._validate import message

Seed = Union[int, np.random.Generator, np.random.SeedSequence, None]

__all__ = ["Seed", "seed_sequence", "generator", "mask_key", "check_seed", "NoiseStream", "Draw", "LANE_SHIFT",
           "CONTINUOUS_KEY"]

_M32 = 0xFFFFFFFF
# key words XOR-ed into a draw's key for continuous noise, so uniforms and normals never reuse
# the words of the same draw's Bernoulli mask
_CONTINUOUS = (0x5BD1E995, 0xD40A7F8B)
_CHILD, _SUB = 0x43484C44, 0x53554253  # SeedSequence tags of child() and substream()
#: a lane's offset in the counter: lane r's call c is counter ``c + r * 2**LANE_SHIFT`` (mod 2**64),
#: so 2**48 calls per lane never reach the next lane
LANE_SHIFT = 48
#: key words XOR-ed into a draw's key for continuous noise (see :meth:`Draw.continuous`)
CONTINUOUS_KEY = _CONTINUOUS


def check_seed(where: str, seed: object) -> None:
    """Raise the project's error unless ``seed`` is a non-negative int, a Generator or None."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InvalidTypeError(message(where, "seed", "an int, a numpy Generator or None", seed))
    if seed < 0:
        raise InvalidValueError(message(where, "seed", "a non-negative integer", seed))


def seed_sequence(seed: Seed, where: str = "seed") -> np.random.SeedSequence:
    """The SeedSequence behind ``seed``.

    An int gives ``SeedSequence(seed)``; a Generator contributes 128 bits drawn from it (so it
    advances); None takes fresh entropy from the OS.
    """
    check_seed(where, seed)
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63, size=2, dtype=np.uint64).tolist())
    return np.random.SeedSequence(seed)


def generator(ss: np.random.SeedSequence) -> np.random.Generator:
    """A NumPy Generator (PCG64) from a SeedSequence, for initialisation and shuffling."""
    return np.random.Generator(np.random.PCG64(ss))


def mask_key(ss: np.random.SeedSequence) -> tuple[int, int]:
    """The two 32-bit words of a Philox4x32 key, derived from a SeedSequence."""
    k0, k1 = ss.generate_state(2, np.uint32)
    return int(k0), int(k1)


def _check_key(where: str, key: Any) -> tuple[int, int]:
    ok = (isinstance(key, (tuple, list)) and len(key) == 2
          and all(isinstance(k, numbers.Integral) and not isinstance(k, bool) and 0 <= k <= _M32 for k in key))
    if not ok:
        raise InvalidValueError(message(where, "key", "two integers in [0, 2**32)", key))
    return int(key[0]), int(key[1])


def _check_counter(where: str, counter: Any) -> int:
    if isinstance(counter, bool) or not isinstance(counter, numbers.Integral):
        raise InvalidTypeError(message(where, "counter", "an integer in [0, 2**64)", counter))
    if not 0 <= counter < 1 << 64:
        raise InvalidValueError(message(where, "counter", "an integer in [0, 2**64)", counter))
    return int(counter)


class Draw:
    """The noise source of one call: a key and one counter value (immutable, picklable).

    Every method is a pure function of ``(key, counter, element index)``: calling it again
    (in backward, or in the other engine) gives the same bits.
    """

    __slots__ = ("_key", "_counter")

    def __init__(self, key: tuple[int, int], counter: int) -> None:
        self._key = key
        self._counter = counter

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Draw) and (self._key, self._counter) == (other._key, other._counter)

    def __hash__(self) -> int:
        return hash((self._key, self._counter))

    def __repr__(self) -> str:
        return f"Draw(counter={self._counter})"

    def __reduce__(self):
        return Draw, (self._key, self._counter)

    # -- Bernoulli masks (droplab.kernels) ---------------------------------------------------
    def keep_mask(self, shape, p: float) -> np.ndarray:
        """Boolean mask of ``shape``, True where kept (:func:`droplab.kernels.keep_mask`)."""
        from droplab import kernels

        return kernels.keep_mask(shape, p, self._key, self._counter)

    def mask_values(self, shape, p: float, scale: float, dtype) -> np.ndarray:
        """``scale`` where kept, 0 where dropped (:func:`droplab.kernels.mask_values`)."""
        from droplab import kernels

        return kernels.mask_values(shape, p, self._key, self._counter, scale, dtype)

    def apply(self, x: np.ndarray, p: float, scale: float, *, out=None, repeats: int = 1) -> np.ndarray:
        """Fused ``x * mask`` (:func:`droplab.kernels.apply`; ``repeats``: of ``x`` stacked)."""
        from droplab import kernels

        return kernels.apply(x, p, self._key, self._counter, scale, out=out, repeats=repeats)

    def call(self, fn: Callable, *args, **kwargs):
        """``fn(*args, key, counter, **kwargs)``: hands this draw to another implementation of
        the same counter-based bits (the fused Dense-ReLU-Dropout kernel, the pure-torch Philox)."""
        return fn(*args, self._key, self._counter, **kwargs)

    # -- continuous noise: droplab's own formulas on Philox words, the same in both engines ----
    def continuous(self) -> Draw:
        """The draw whose Philox words feed this draw's continuous noise (its key XOR
        :data:`CONTINUOUS_KEY`, the same counter), so uniforms and normals never reuse the words
        of the same draw's Bernoulli mask. Another implementation of the same bits (the
        pure-torch Philox) reads its key and counter with :meth:`call`."""
        return Draw((self._key[0] ^ _CONTINUOUS[0], self._key[1] ^ _CONTINUOUS[1]), self._counter)

    def _blocks(self, n: int) -> np.ndarray:
        """Philox4x32 block ``i`` (four uint32 words) for element ``i``: shape ``(n, 4)``."""
        from droplab.kernels import _reference

        c = self.continuous()
        return _reference.words(4 * n, c._key, c._counter).reshape(n, 4)

    @staticmethod
    def _u53(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """53-bit uniforms on the open interval (0, 1) from two words (exact in float64)."""
        m = (hi.astype(np.uint64) << np.uint64(21)) | (lo.astype(np.uint64) >> np.uint64(11))
        return (m.astype(np.float64) + 0.5) * 2.0**-53

    def uniform(self, shape) -> np.ndarray:
        """float64 uniforms on (0, 1) of ``shape``: element ``i`` from words 0-1 of block ``i``."""
        shape = tuple(int(s) for s in shape)
        b = self._blocks(math.prod(shape))
        return self._u53(b[:, 0], b[:, 1]).reshape(shape)

    def normal(self, shape) -> np.ndarray:
        """float64 standard normals of ``shape`` by Box-Muller on block ``i``'s two uniforms:
        ``sqrt(-2 log u1) * cos(2 pi u2)``, one normal per element (so element ``i`` depends on
        ``i`` only, whatever the shape or chunking)."""
        shape = tuple(int(s) for s in shape)
        b = self._blocks(math.prod(shape))
        u1, u2 = self._u53(b[:, 0], b[:, 1]), self._u53(b[:, 2], b[:, 3])
        return (np.sqrt(-2.0 * np.log(u1)) * np.cos((2.0 * np.pi) * u2)).reshape(shape)


class NoiseStream:
    """A layer's random state: a Philox key and the number of its next call (see the module doc).

    Build one with :meth:`from_seed` (``int | np.random.Generator | SeedSequence | None``),
    :meth:`from_words` (a key drawn elsewhere, e.g. from a ``torch.Generator``) or
    :meth:`from_state`.
    """

    __slots__ = ("_key", "_counter")

    def __init__(self, key: tuple[int, int], counter: int = 0) -> None:
        self._key = _check_key("NoiseStream", key)
        self._counter = _check_counter("NoiseStream", counter)

    @classmethod
    def from_seed(cls, seed: Seed = None, where: str = "seed") -> NoiseStream:
        return cls(mask_key(seed_sequence(seed, where)))

    @classmethod
    def from_words(cls, k0: int, k1: int) -> NoiseStream:
        return cls((int(k0) & _M32, int(k1) & _M32))

    @classmethod
    def from_state(cls, state: Any, where: str = "NoiseStream") -> NoiseStream:
        """The stream of :meth:`state` (a dict ``{"key": [k0, k1], "counter": c}``), checked."""
        if not isinstance(state, dict) or "key" not in state:
            raise InvalidValueError(message(where, "state", "a dict with 'key' and 'counter'", state))
        return cls(_check_key(where, state["key"]), _check_counter(where, state.get("counter", 0)))

    def state(self) -> dict:
        """``{"key": [k0, k1], "counter": c}``: JSON-ready; :meth:`from_state` restores it."""
        return {"key": [self._key[0], self._key[1]], "counter": self._counter}

    @property
    def counter(self) -> int:
        """The number of the next training call (how many draws :meth:`next` has given)."""
        return self._counter

    def seek(self, counter: int) -> None:
        """Make call ``counter`` the next one (replay from there, or skip ahead)."""
        self._counter = _check_counter("NoiseStream", counter)

    def next(self, lane: int = 0) -> Draw:
        """The draw of the next call; the counter moves on by one.

        ``lane`` (default 0) puts the call in lane ``lane`` of the counter space, call ``c``
        becoming counter ``c + lane * 2**LANE_SHIFT`` (mod 2**64): processes that share one
        stream's state (distributed ranks) draw different masks, and lane 0 is the plain stream.
        """
        c = self._counter
        self._counter = c + 1
        if lane:
            c = (c + (int(lane) << LANE_SHIFT)) & ((1 << 64) - 1)
        return Draw(self._key, c)

    def at(self, counter: int) -> Draw:
        """The draw of call ``counter``, without moving the stream."""
        return Draw(self._key, _check_counter("NoiseStream", counter))

    def child(self) -> NoiseStream:
        """A new stream for a replica (``droplab.torch``'s DataParallel copies; a deep copy of a
        module keys its clone by a clone count instead): it takes this stream's next call (the counter
        moves on by one) and derives its key from this key and that call's number, so no two
        children (nor the parent) share masks, and :meth:`state` still says everything: a
        stream restored from it makes the same children."""
        c = self._counter
        self._counter = c + 1
        ss = np.random.SeedSequence([self._key[0], self._key[1], c & _M32, c >> 32, _CHILD])
        return NoiseStream(mask_key(ss))

    def substream(self, tag: int) -> NoiseStream:
        """A fixed side stream of this key (the same for the same ``tag``), at counter 0: noise
        that must never move or reuse the training stream (evaluation-time sampling)."""
        ss = np.random.SeedSequence([self._key[0], self._key[1], _SUB, int(tag)])
        return NoiseStream(mask_key(ss))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoiseStream) and self.state() == other.state()

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"NoiseStream(counter={self._counter})"
