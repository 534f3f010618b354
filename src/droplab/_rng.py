"""Seeds: from ``seed=`` (int | np.random.Generator | None) to generators and mask keys.

There is no global generator in droplab. Every random object turns its ``seed`` into a
:class:`numpy.random.SeedSequence` here. A container built with ``seed=s`` hands each of
its random children its own child of ``SeedSequence(s)`` in construction order, so the same
code with the same seed gives the same bits.
"""

from __future__ import annotations

import numbers
from typing import Union

import numpy as np

from droplab._validate import message

Seed = Union[int, np.random.Generator, np.random.SeedSequence, None]

__all__ = ["Seed", "seed_sequence", "generator", "mask_key", "check_seed"]


def check_seed(where: str, seed: object) -> None:
    """Raise the project's error unless ``seed`` is a non-negative int, a Generator or None."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(message(where, "seed", "an int, a numpy Generator or None", seed))
    if seed < 0:
        raise ValueError(message(where, "seed", "a non-negative integer", seed))


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
