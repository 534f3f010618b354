"""Argument checks: one helper per constraint, one message shape.

Every message reads ``"<Where>: `<name>` must be <what is allowed>; got <name>=<value>."``
with an optional hint, so the CLI can print it as the single line a user sees.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "message",
    "probability",
    "positive_int",
    "nonnegative_int",
    "positive_float",
    "nonnegative_float",
    "one_of",
    "float_dtype",
    "axes",
    "finite_array",
    "labels",
]


def message(where: str, name: str, allowed: str, value: Any, hint: str | None = None) -> str:
    """Format the project's one error-message shape."""
    text = f"{where}: `{name}` must be {allowed}; got {name}={value!r}."
    return f"{text} {hint}" if hint else text


def _real(where: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message(where, name, "a real number", value))
    return float(value)


def probability(where: str, name: str, value: Any, *, allow_one: bool = True) -> float:
    """A drop probability: a real number in [0, 1] (or [0, 1) when ``allow_one`` is False)."""
    v = _real(where, name, value)
    if not (0.0 <= v <= 1.0) or (not allow_one and v >= 1.0):
        allowed = "a probability in [0, 1]" if allow_one else "a probability in [0, 1)"
        raise ValueError(message(where, name, allowed, value))
    return v


def positive_int(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(message(where, name, "a positive integer", value))
    if value < 1:
        raise ValueError(message(where, name, "a positive integer", value))
    return int(value)


def nonnegative_int(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(message(where, name, "a non-negative integer", value))
    if value < 0:
        raise ValueError(message(where, name, "a non-negative integer", value))
    return int(value)


def positive_float(where: str, name: str, value: Any) -> float:
    v = _real(where, name, value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(message(where, name, "a finite number > 0", value))
    return v


def nonnegative_float(where: str, name: str, value: Any) -> float:
    v = _real(where, name, value)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(message(where, name, "a finite number >= 0", value))
    return v


def one_of(where: str, name: str, value: Any, choices: Iterable[str]) -> str:
    """A name from a fixed set; suggests the closest one when it is misspelt."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"Did you mean {close[0]!r}?" if close else None
        raise ValueError(message(where, name, "one of " + ", ".join(map(repr, choices)), value, hint))
    return value


def float_dtype(where: str, value: Any) -> np.dtype:
    """float32 or float64 (the engine's two dtypes)."""
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(message(where, "dtype", "float32 or float64", value))
    return dt


def axes(where: str, value: Any) -> tuple[int, ...] | None:
    """``None`` or a tuple of distinct integer axes (a single int is accepted)."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value),)
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(
        isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in value
    ):
        raise TypeError(message(where, "axes", "None, an int or a tuple of ints", value))
    out = tuple(int(a) for a in value)
    if len(set(out)) != len(out):
        raise ValueError(message(where, "axes", "distinct axes", value))
    return out


def finite_array(where: str, name: str, value: Any, *, ndim: int | None = None) -> np.ndarray:
    """A non-empty numeric array with no NaN or inf (optionally of a given rank)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(message(where, name, "a numeric array", f"array of dtype {arr.dtype}"))
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(message(where, name, f"a {ndim}-D array", f"array of shape {arr.shape}"))
    if arr.size == 0:
        raise ValueError(message(where, name, "a non-empty array", f"array of shape {arr.shape}"))
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(message(where, name, "finite (no NaN or inf)", f"array with {bad} non-finite values"))
    return arr


def labels(where: str, name: str, value: Any, classes: int | None = None) -> np.ndarray:
    """Integer class labels in [0, classes)."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(message(where, name, "integer class labels", f"array of dtype {arr.dtype}"))
    if classes is not None and arr.size and (arr.min() < 0 or arr.max() >= classes):
        bad = arr[(arr < 0) | (arr >= classes)][0]
        raise ValueError(message(where, name, f"labels in [0, {classes})", f"array containing {bad}"))
    return arr.astype(np.int64, copy=False)
