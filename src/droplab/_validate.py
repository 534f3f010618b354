"""Argument checks: one helper per constraint, one message shape.

Every message reads ``"<Where>: `<name>` must be <what is allowed>; got <name>=<value>."``
with an optional hint, so the CLI can print it as the single line a user sees.
"""

from __future__ import annotations

import argparse
import difflib
import math
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from droplab.errors import InvalidTypeError, InvalidValueError, ResourceLimitError

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
    "Bound",
    "FLAG_BOUNDS",
    "bounds_help",
    "flag_type",
    "flag_error",
    "within",
    "hidden_sizes",
    "hidden_flag",
    "samples_flag",
    "usable_cores",
]


def message(where: str, name: str, allowed: str, value: Any, hint: str | None = None) -> str:
    """Format the project's one error-message shape."""
    text = f"{where}: `{name}` must be {allowed}; got {name}={value!r}."
    return f"{text} {hint}" if hint else text


def _real(where: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(message(where, name, "a real number", value))
    return float(value)


def probability(where: str, name: str, value: Any, *, allow_one: bool = True) -> float:
    """A drop probability: a real number in [0, 1] (or [0, 1) when ``allow_one`` is False)."""
    v = _real(where, name, value)
    if not (0.0 <= v <= 1.0) or (not allow_one and v >= 1.0):
        allowed = "a probability in [0, 1]" if allow_one else "a probability in [0, 1)"
        raise InvalidValueError(message(where, name, allowed, value))
    return v


def positive_int(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidTypeError(message(where, name, "a positive integer", value))
    if value < 1:
        raise InvalidValueError(message(where, name, "a positive integer", value))
    return int(value)


def nonnegative_int(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidTypeError(message(where, name, "a non-negative integer", value))
    if value < 0:
        raise InvalidValueError(message(where, name, "a non-negative integer", value))
    return int(value)


def positive_float(where: str, name: str, value: Any) -> float:
    v = _real(where, name, value)
    if not (math.isfinite(v) and v > 0):
        raise InvalidValueError(message(where, name, "a finite number > 0", value))
    return v


def nonnegative_float(where: str, name: str, value: Any) -> float:
    v = _real(where, name, value)
    if not (math.isfinite(v) and v >= 0):
        raise InvalidValueError(message(where, name, "a finite number >= 0", value))
    return v


def one_of(where: str, name: str, value: Any, choices: Iterable[str]) -> str:
    """A name from a fixed set; suggests the closest one when it is misspelt."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"Did you mean {close[0]!r}?" if close else None
        raise InvalidValueError(message(where, name, "one of " + ", ".join(map(repr, choices)), value, hint))
    return value


def float_dtype(where: str, value: Any) -> np.dtype:
    """float32 or float64 (the engine's two dtypes)."""
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InvalidTypeError(message(where, "dtype", "float32 or float64", value))
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
        raise InvalidTypeError(message(where, "axes", "None, an int or a tuple of ints", value))
    out = tuple(int(a) for a in value)
    if len(set(out)) != len(out):
        raise InvalidValueError(message(where, "axes", "distinct axes", value))
    return out


def finite_array(where: str, name: str, value: Any, *, ndim: int | None = None) -> np.ndarray:
    """A non-empty numeric array with no NaN or inf (optionally of a given rank)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise InvalidTypeError(message(where, name, "a numeric array", f"array of dtype {arr.dtype}"))
    if ndim is not None and arr.ndim != ndim:
        raise InvalidValueError(message(where, name, f"a {ndim}-D array", f"array of shape {arr.shape}"))
    if arr.size == 0:
        raise InvalidValueError(message(where, name, "a non-empty array", f"array of shape {arr.shape}"))
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InvalidValueError(message(where, name, "finite (no NaN or inf)", f"array with {bad} non-finite values"))
    return arr


def labels(where: str, name: str, value: Any, classes: int | None = None) -> np.ndarray:
    """Integer class labels in [0, classes)."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidTypeError(message(where, name, "integer class labels", f"array of dtype {arr.dtype}"))
    if classes is not None and arr.size and (arr.min() < 0 or arr.max() >= classes):
        bad = arr[(arr < 0) | (arr >= classes)][0]
        raise InvalidValueError(message(where, name, f"labels in [0, {classes})", f"array containing {bad}"))
    return arr.astype(np.int64, copy=False)


# ------------------------------------------------------------------------- command-line bounds
#
# Every numeric flag of every command has a maximum, defined once here and shown in --help. A
# value outside is refused with one line before any work starts, never clamped. The maxima are
# far above what a real experiment needs, and low enough that one run stays within one machine
# (memory first: a width of 8192 is a 256 MiB weight matrix, 1 GiB with its gradient and Adam's
# two moments).


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Bound:
    """What one numeric flag accepts: an int (or a finite float) in ``[lo, hi]``.

    ``hi`` may be a function (``--workers``: the usable cores, known only at run time);
    ``lo_open`` excludes ``lo`` itself (a learning rate is > 0); ``note`` says why the maximum
    is what it is, or what a special value means, in --help and in the error.
    """

    flag: str
    lo: float
    hi: float | Callable[[], float]
    integer: bool = True
    lo_open: bool = False
    note: str = ""
    what: str = ""  # "a probability"; default "an integer" or "a number"

    @property
    def maximum(self) -> float:
        return self.hi() if callable(self.hi) else self.hi

    @property
    def name(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def allowed(self) -> str:
        hi = self.maximum
        if self.integer:
            text = f"{self.what or 'an integer'} in [{int(self.lo)}, {int(hi)}]"
        elif hi == _FLOAT_MAX:
            text = f"{self.what or 'a finite number'} {'>' if self.lo_open else '>='} {self.lo:g}"
        else:
            text = f"{self.what or 'a number'} in {'(' if self.lo_open else '['}{self.lo:g}, {hi:g}]"
        return f"{text} ({self.note})" if self.note else text

    def accepts(self, value: float) -> bool:
        above_lo = value > self.lo if self.lo_open else value >= self.lo
        return above_lo and value <= self.maximum


_FLOAT_MAX = sys.float_info.max  # a float flag that costs no memory or time: finite is its only bound
MAX_WIDTH = 8192  # units in one hidden layer: 8192 x 8192 float32 weights are 256 MiB
MAX_DEPTH = 64  # hidden layers
MAX_HIDDEN_WEIGHTS = 2**26  # weights between consecutive hidden layers, all together: 256 MiB float32
MAX_SWEEP_RUNS = 100_000  # grid points x seeds of one sweep
MAX_T = 10_000  # MC passes: the MC average's error shrinks as 1/sqrt(T); 10,000 is 1% of one pass's spread

# name -> bound. The flag is what a user typed; the same name serves every command that has it.
FLAG_BOUNDS: dict[str, Bound] = {
    "seed": Bound("--seed", 0, 2**32 - 1, note="a 32-bit seed"),
    "seeds": Bound("--seeds", 1, 1000, note="each seed is a whole training run"),
    "epochs": Bound("--epochs", 1, 100_000),
    "batch_size": Bound("--batch-size", 0, 1_000_000, note="0: full batch"),
    "checkpoint_every": Bound("--checkpoint-every", 1, 100_000),
    "workers": Bound("--workers", 1, usable_cores, note="the usable cores"),
    "head_units": Bound("--head-units", 1, MAX_WIDTH),
    "units": Bound("--units", 1, 16, note="2^16 sub-networks are averaged exactly"),
    "samples": Bound("--samples-list", 1, MAX_T),
    "max_T": Bound("--max-T", 1, MAX_T),
    "mc_repeats": Bound("--repeats", 1, 1000),
    "bench_repeats": Bound("--repeats", 0, 1000, note="0: the default"),
    "bins": Bound("--bins", 1, 1000),
    "ood_samples": Bound("--ood-samples", 1, 100_000),
    "p": Bound("--p", 0.0, 1.0, integer=False, what="a probability"),
    "input_p": Bound("--input-p", 0.0, 1.0, integer=False, what="a probability"),
    # a learning rate costs nothing up front; one so large that the loss diverges stops the run
    "lr": Bound("--lr", 0.0, _FLOAT_MAX, integer=False, lo_open=True),
    "l2": Bound("--l2", 0.0, 1e6, integer=False),
    "first_l2": Bound("--first-l2", 0.0, 1e6, integer=False),
    # lr / (1 + decay * step): any finite decay only slows learning
    "decay": Bound("--decay", 0.0, _FLOAT_MAX, integer=False),
    "max_norm": Bound("--max-norm", 0.0, 1e6, integer=False, note="0: off"),
}


def bounds_help(key: str) -> str:
    """The accepted range of a flag, for its --help line: ``"1 to 100000"``."""
    b = FLAG_BOUNDS[key]
    if key == "workers":
        return f"1 to the usable cores, {usable_cores()} here"
    if b.integer:
        text = f"{int(b.lo)} to {int(b.maximum)}"
    elif b.maximum == _FLOAT_MAX:
        text = f"any finite number {'>' if b.lo_open else '>='} {b.lo:g}"
    else:
        text = f"more than {b.lo:g}, at most {b.maximum:g}" if b.lo_open else f"{b.lo:g} to {b.maximum:g}"
    return f"{text}; {b.note}" if b.note else text


def _shown(text: str) -> str:
    text = str(text)
    return text if len(text) <= 40 else text[:20] + "..." + text[-8:]


def _number(b: Bound, text: str) -> float | None:
    """The flag's value parsed as an int (or finite float), or None when it is not one."""
    try:
        v = int(text) if b.integer else float(text)
    except (ValueError, OverflowError):
        return None
    if not b.integer and not math.isfinite(v):
        return None
    return v


def flag_error(flag: str, allowed: str, text: Any) -> str:
    """The one line for a bad flag value: "`--workers` must be ...; got --workers=1000."."""
    return f"`{flag}` must be {allowed}; got {flag}={_shown(text)}."


def flag_type(key: str) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses one bounded number and refuses anything else.

    Example:
        >>> flag_type("epochs")("150")
        150
    """
    b = FLAG_BOUNDS[key]

    def parse(text: str) -> Any:
        v = _number(b, text)
        if v is None or not b.accepts(v):
            raise argparse.ArgumentTypeError(flag_error(b.flag, b.allowed(), text))
        return v

    parse.__name__ = b.flag  # argparse names the type in its own fallback messages
    return parse


def within(where: str, key: str, value: Any, name: str | None = None) -> Any:
    """A library-side check of the same bound, for values that arrive in lists or files
    (a sweep's grid): "sweep: `epochs` must be an integer in [1, 100000]; got epochs=10**6."."""
    b = FLAG_BOUNDS[key]
    name = name or b.name
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
        b.integer and not isinstance(value, numbers.Integral)
    ):
        raise InvalidTypeError(message(where, name, b.allowed(), value))
    if not math.isfinite(float(value)) or not b.accepts(value):
        raise InvalidValueError(message(where, name, b.allowed(), value))
    return value


def hidden_sizes(where: str, name: str, sizes: Sequence[int]) -> tuple[int, ...]:
    """Hidden layer sizes within the budget: each width, the depth and the weights between them."""
    sizes = tuple(sizes)
    allowed = f"at most {MAX_DEPTH} layers of 1 to {MAX_WIDTH} units"
    if len(sizes) > MAX_DEPTH or any(not 1 <= s <= MAX_WIDTH for s in sizes):
        raise InvalidValueError(message(where, name, allowed, _shown(",".join(map(str, sizes)))))
    weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    if weights > MAX_HIDDEN_WEIGHTS:
        raise InvalidValueError(message(
            where, name, f"layers with at most {MAX_HIDDEN_WEIGHTS} weights between them (256 MiB float32)",
            _shown(",".join(map(str, sizes))), f"These have {weights}."))
    return sizes


def hidden_flag(text: str) -> str:
    """An argparse ``type=`` for ``--hidden "256,256"``: checks the sizes, returns the text."""
    parts = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        sizes = [int(t) for t in parts]
    except ValueError:
        sizes = None
    allowed = f"comma-separated integers in [1, {MAX_WIDTH}], at most {MAX_DEPTH} of them"
    if sizes is None or len(sizes) > MAX_DEPTH or any(not 1 <= s <= MAX_WIDTH for s in sizes):
        raise argparse.ArgumentTypeError(flag_error("--hidden", allowed, text))
    weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    if weights > MAX_HIDDEN_WEIGHTS:
        raise argparse.ArgumentTypeError(flag_error(
            "--hidden", f"layers with at most {MAX_HIDDEN_WEIGHTS} weights between consecutive layers "
            f"(these have {weights})", text))
    return text


hidden_flag.__name__ = "--hidden"


def samples_flag(text: str) -> str:
    """An argparse ``type=`` for ``--samples-list 1,10,100``: checks every T, returns the text."""
    b = FLAG_BOUNDS["samples"]
    values = [_number(b, t.strip()) for t in str(text).split(",") if t.strip()]
    if not values or any(v is None or not b.accepts(v) for v in values):
        raise argparse.ArgumentTypeError(flag_error(b.flag, f"comma-separated integers in [1, {MAX_T}]", text))
    return text


samples_flag.__name__ = "--samples-list"


#: Parameter elements one layer or model may hold (2**27: 512 MiB in float32), far above the
#: models droplab trains. Layer constructors and nn.load share this one budget, so neither a
#: typo (``Dense(30000, 30000)``) nor a crafted file allocates gigabytes.
MAX_PARAMETERS = 1 << 27


def parameter_budget(where: str, name: str, count: int) -> None:
    """Refuse a layer whose parameters (``count`` elements, from sizes ``name``) exceed the
    budget, before anything is allocated."""
    if count > MAX_PARAMETERS:
        raise ResourceLimitError(message(where, name, f"sizes giving at most {MAX_PARAMETERS} (2**27) parameters",
                                         f"{count} parameters"))
