"""The lab's one statistics helper and its one rule for readings.

Every figure the lab prints over seeds (or repeats) is the mean with a 95% confidence interval
from Student's t distribution (scipy), with n stated: ``mean ± t(0.975, n-1) * s / sqrt(n)``.
With fewer than 3 values there is no useful interval (t(0.975, 1) = 12.7), so the figure shows
the range of the values instead and says so: ``53.3 (range 30.0–76.6)``.

Readings obey one rule, :func:`verdict`: a sentence may claim a difference ("dropout raised
…", "best placement is …", "hurts") only when n >= 3 and the 95% CI of the paired
difference excludes 0. Otherwise it says the difference is within noise (or that n is too
small) and how many seeds would resolve a difference of the size seen:
the smallest n with ``t(0.975, n-1) * s / sqrt(n) < |mean difference|`` (``s``: the standard
deviation of the paired differences), about ``(1.96 s / d)^2`` when that n is large.

Example:
    >>> s = summary([0.70, 0.72, 0.74])
    >>> s["n"], round(s["ci95"], 4), fmt(s, 100)
    (3, 0.0497, '72.0 ± 5.0')
    >>> fmt(summary([0.70, 0.74]), 100)
    '72.0 (range 70.0–74.0)'
    >>> v = verdict([0.10, 0.09, 0.11, 0.10])
    >>> v.resolved, v.direction
    (True, 1)
    >>> verdict([0.10, -0.09, 0.01]).resolved
    False
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from droplab import _validate

__all__ = ["MIN_N", "HEADER", "t95", "summary", "fmt", "paired", "Verdict", "verdict", "seeds_needed",
           "sentence", "legend", "prediction_interval"]

MIN_N = 3  # fewer values: a range, never an interval, and no claimed difference
MAX_SEEDS_SHOWN = 1000
HEADER = "mean ± 95% CI (Student t)"


def t95(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (scipy).

    ``scipy.special.stdtrit``, the function ``scipy.stats.t.ppf`` itself calls (the same bits,
    tested): importing ``scipy.stats`` would cost most of a second of every lab command.

    Example:
        >>> round(t95(4), 3), round(t95(10**6), 2)
        (2.776, 1.96)
    """
    from scipy.special import stdtrit

    df = _validate.positive_int("t95", "df", df)
    return float(stdtrit(df, 0.975))


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, n, standard deviation (ddof=1), min, max and the 95% CI half-width over ``values``.

    ``ci95`` is None when n < 3 (``kind`` is then ``"range"``: show ``min``–``max``, not an
    interval); None values and non-finite values are left out (n counts the rest). An empty
    list gives ``mean`` None and n = 0.
    """
    v = np.asarray([x for x in values if x is not None and math.isfinite(float(x))], dtype=float)
    n = int(len(v))
    if n == 0:
        return {"mean": None, "n": 0, "std": None, "min": None, "max": None, "ci95": None, "kind": "none"}
    std = float(v.std(ddof=1)) if n > 1 else 0.0
    ci = t95(n - 1) * std / math.sqrt(n) if n >= MIN_N else None
    return {"mean": float(v.mean()), "n": n, "std": std, "min": float(v.min()), "max": float(v.max()),
            "ci95": ci, "kind": "ci95" if ci is not None else "range"}


def fmt(stat: Mapping[str, Any] | None, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """The one way a summary is printed: ``m ± h`` (95% CI), ``m (range a–b)`` when n < 3, ``m``
    when n = 1, ``–`` when there is nothing."""
    if not stat or stat.get("mean") is None:
        return "–"
    f = f"{{:.{digits}f}}"
    m = f.format(stat["mean"] * scale) + unit
    if stat.get("ci95") is not None:
        return f"{m} ± {f.format(stat['ci95'] * scale)}"
    if stat.get("n", 0) >= 2 and stat.get("min") is not None:
        return f"{m} (range {f.format(stat['min'] * scale)}–{f.format(stat['max'] * scale)})"
    return m


def legend(n: int | Sequence[int]) -> str:
    """The header line that says what ``±`` means for tables over ``n`` seeds."""
    ns = sorted({n} if isinstance(n, int) else set(n))
    text = "n = " + ",".join(map(str, ns))
    if ns and max(ns) >= MIN_N:
        out = f"{HEADER}, {text}"
        return out + ("; (range a–b) where n < 3: not an interval" if min(ns) < MIN_N else "")
    return f"mean (range a–b) over {text}: with n < 3, a range, not an interval"


def paired(a: Mapping[Any, float | None], b: Mapping[Any, float | None]) -> list[float]:
    """``b[k] - a[k]`` over the keys (seeds) both have with a finite value, in key order."""
    keys = sorted((k for k in set(a) & set(b) if a[k] is not None and b[k] is not None), key=str)
    return [float(b[k]) - float(a[k]) for k in keys if math.isfinite(float(b[k]) - float(a[k]))]


def seeds_needed(mean: float, std: float, limit: int = MAX_SEEDS_SHOWN) -> int | None:
    """The smallest n >= 3 with ``t(0.975, n-1) * std / sqrt(n) < |mean|``: how many paired
    seeds would resolve a difference of this size with this spread (None: more than ``limit``,
    or no difference to resolve)."""
    if mean == 0 or not math.isfinite(mean) or not math.isfinite(std):
        return None
    if std == 0:
        return MIN_N
    n = max(MIN_N, math.ceil((1.96 * std / abs(mean)) ** 2))
    while n <= limit and t95(n - 1) * std / math.sqrt(n) >= abs(mean):
        n += 1
    return n if n <= limit else None


@dataclass(frozen=True)
class Verdict:
    """What the paired differences support. ``resolved``: n >= 3 and the 95% CI excludes 0."""

    n: int
    mean: float | None
    ci95: float | None
    std: float | None
    resolved: bool
    direction: int  # +1 / -1 when resolved, else 0
    needed: int | None  # seeds that would resolve a difference this size (when not resolved)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "ci95": self.ci95, "std": self.std, "resolved": self.resolved,
                "direction": self.direction, "seeds_needed": self.needed}


def verdict(differences: Sequence[float]) -> Verdict:
    """The one rule: a difference is claimed only when n >= 3 and its 95% CI excludes 0."""
    s = summary(differences)
    n, mean, std = s["n"], s["mean"], s["std"]
    if n == 0:
        return Verdict(0, None, None, None, False, 0, None)
    ci = s["ci95"]
    resolved = ci is not None and abs(mean) > ci
    needed = None if resolved or n < 2 else seeds_needed(mean, std)
    return Verdict(n, mean, ci, std, resolved, (1 if mean > 0 else -1) if resolved else 0, needed)


def sentence(v: Verdict, *, subject: str, what: str, up: str = "raised", down: str = "lowered",
             scale: float = 1.0, unit: str = "", digits: int = 1, unit_word: str = "seed") -> str:
    """The reading of a paired difference under :func:`verdict`'s rule, without a final period.

    ``subject up/down what by d ± h unit (paired 95% CI over n seeds)`` when resolved; otherwise
    the difference is reported as within noise (or n too small) with the seeds that would
    resolve it.

    Example:
        >>> sentence(verdict([0.1, 0.12, 0.11]), subject="dropout", what="validation accuracy", scale=100,
        ...          unit=" points")
        'dropout raised validation accuracy by 11.0 ± 2.5 points (paired 95% CI over 3 seeds)'
    """
    f = f"{{:.{digits}f}}"
    units = f"{unit_word}s"
    if v.n == 0 or v.mean is None:
        return f"{subject}: no paired {units} to compare {what}"
    if v.resolved:
        verb = up if v.direction > 0 else down
        return (f"{subject} {verb} {what} by {f.format(abs(v.mean) * scale)} ± {f.format(v.ci95 * scale)}{unit} "
                f"(paired 95% CI over {v.n} {units})")
    diff = f"{v.mean * scale:+.{digits}f}"
    if v.n < MIN_N:
        head = (f"{subject}: {what} {diff}{unit} over {v.n} {unit_word if v.n == 1 else units}, too few to claim a "
                f"difference (at least {MIN_N} are needed)")
    else:
        head = (f"{subject}: {what} {diff} ± {f.format(v.ci95 * scale)}{unit} (paired 95% CI over {v.n} {units}), "
                "within noise")
    if v.needed is not None:
        return head + f"; about {v.needed} {units} would resolve a difference this size"
    if v.n >= 2 and v.mean != 0:
        return head + f"; more than {MAX_SEEDS_SHOWN} {units} would be needed to resolve a difference this size"
    return head


def prediction_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95% prediction interval of ONE more run: ``mean ± t(0.975, n-1) * s * sqrt(1 + 1/n)``
    (None when n < 3). Where a single run (a book's, a paper's) should land if it is the same
    experiment.

    Example:
        >>> lo, hi = prediction_interval([0.70, 0.72, 0.74])
        >>> round(lo, 3), round(hi, 3)
        (0.621, 0.819)
    """
    s = summary(values)
    if s["n"] < MIN_N:
        return None
    h = t95(s["n"] - 1) * s["std"] * math.sqrt(1 + 1 / s["n"])
    return s["mean"] - h, s["mean"] + h
