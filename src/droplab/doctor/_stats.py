"""The doctor's statistics: every bound derived, none hand-picked.

A rate measured over ``n`` INDEPENDENT draws (elements, channels, samples or blocks: the
units of the noise shape, times the calls) is accepted when ``|rate - p| <= Z * sqrt(p (1 - p) / n)``
with ``Z = 5``: a correct implementation fails one such test with probability
``P(|N(0, 1)| > 5) = 5.7e-7`` (normal approximation of the binomial; every test here has
``n p (1 - p)`` in the hundreds at least). A run of ``k`` tests raises a false alarm with
probability at most ``k * 5.7e-7`` (union bound); :func:`false_alarm` states it.
"""

from __future__ import annotations

import math

__all__ = ["Z", "TAIL", "rate_bound", "mean_bound", "var_bound", "randn_rate", "mixup_rate", "phi",
           "false_alarm", "ulps"]

#: the z of every statistical test
Z = 5.0
#: two-sided tail of the standard normal beyond Z: the false-alarm probability of one test
TAIL = math.erfc(Z / math.sqrt(2.0))  # 5.733e-7


def phi(z: float) -> float:
    """The standard normal CDF."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def rate_bound(p: float, n: int) -> float:
    """``Z * sqrt(p (1 - p) / n)``: the half-width within which a Bernoulli(p) rate over ``n``
    independent draws falls, but for a probability of :data:`TAIL`. Exact (0) at p = 0 or 1."""
    return Z * math.sqrt(max(p * (1.0 - p), 0.0) / max(n, 1))


def mean_bound(variance: float, n: int) -> float:
    """``Z * sqrt(variance / n)``: the bound on a mean of ``n`` independent draws."""
    return Z * math.sqrt(max(variance, 0.0) / max(n, 1))


def var_bound(variance: float, n: int) -> float:
    """The bound on a sample variance of ``n`` independent NORMAL draws: its standard error is
    ``variance * sqrt(2 / (n - 1))``."""
    return Z * variance * math.sqrt(2.0 / max(n - 1, 1))


def randn_rate(p: float) -> float:
    """The drop rate of the bug ``mask = randn(shape) < 1 - p`` (a standard NORMAL draw where a
    uniform one is meant): an element is kept with probability ``Phi(1 - p)``, so the rate is
    ``1 - Phi(1 - p)`` (0.31 at p = 0.5, not 0.5)."""
    return 1.0 - phi(1.0 - p)


def mixup_rate(p: float) -> float:
    """The drop rate when the keep probability is passed where the drop probability is meant."""
    return 1.0 - p


def false_alarm(k: int) -> float:
    """The probability that a correct implementation fails at least one of ``k`` tests at Z
    (union bound: at most ``k * TAIL``)."""
    return min(1.0, k * TAIL)


def ulps(a, b, dtype):
    """``|a - b|`` in units of the last place of ``b`` in ``dtype`` (NumPy arrays; 0 where equal)."""
    import numpy as np

    a = np.asarray(a, np.float64)
    b64 = np.asarray(b, np.float64)
    spacing = np.spacing(np.abs(np.asarray(b, dtype))).astype(np.float64)
    spacing = np.where(spacing > 0, spacing, np.finfo(dtype).smallest_subnormal)
    return np.abs(a - b64) / spacing
