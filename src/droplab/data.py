"""Datasets: a registry of small classification sets with a fixed train/validation split.

Every loader returns float32, C-contiguous features and int64 labels in ``[0, classes)``,
bit-identical for a given seed. ``seed=None`` means the dataset's documented default seed
(below), so the default data is always the same; an int or a ``numpy.random.Generator`` picks
another draw. Nothing is ever downloaded: the sklearn sets are the ones bundled with
scikit-learn, and MNIST-1D is made by the ``mnist1d`` package's offline generator.

=============  ========  =======  =====  ==========  ============================================
name           features  classes  train  validation  split (default seed)
=============  ========  =======  =====  ==========  ============================================
spiral         2         3        3000   300         independent draws: train = spiral(1000, 3),
                                                     validation = spiral(100, 3) (NNFS ch. 15);
                                                     seed 0
moons          2         2        800    200         make_moons(1000, noise=0.2), stratified
                                                     random 20% validation; seed 0
circles        2         2        800    200         make_circles(1000, noise=0.1, factor=0.5),
                                                     stratified random 20% validation; seed 0
digits         64        10       1438   359         sklearn's bundled 8x8 digits scaled to
               (1x8x8)                               [0, 1], stratified random 20% validation;
                                                     seed 0
breast_cancer  30        2        456    113         sklearn's bundled set, standardised with
                                                     the TRAIN mean and std only, stratified
                                                     random 20% validation; seed 0
mnist1d        40        10       4000   1000        the mnist1d generator's own split (first
                                                     80% train); seed 42 = the standard set
=============  ========  =======  =====  ==========  ============================================

Options (keyword arguments of :func:`load`):

- spiral: ``samples=1000`` and ``val_samples=100`` (per class), ``classes=3``, ``noise=0.2``.
- moons: ``samples=1000`` (total), ``noise=0.2``, ``validation=0.2``.
- circles: ``samples=1000`` (total), ``noise=0.1``, ``factor=0.5``, ``validation=0.2``.
- digits, breast_cancer: ``validation=0.2``.
- mnist1d: ``samples=5000`` (a multiple of 10; 80% train), ``shuffle_seq=False`` (True
  permutes the 40 positions of every signal the same way: an order-free variant). Generated
  arrays are cached as ``.npz`` in ``$DROPLAB_CACHE``, else ``$XDG_CACHE_HOME/droplab``, else
  ``~/.cache/droplab``.
- your own file, a name ending in ``.npz`` (arrays ``X``, ``y``, optional ``X_val``,
  ``y_val``) or ``.csv`` (a header row, a label column, every other column a numeric
  feature): ``validation=0.2`` (used when the file has no validation arrays), ``label="label"``
  (CSV: the label column). Integer labels are kept; string labels become 0..K-1 in sorted
  order and their names are kept in ``Dataset.class_names``.

"Stratified random" means: the samples are shuffled with the seed, and from each class the
first ``validation * class size`` (rounded half up) go to validation, so every class keeps
its share.
"""

from __future__ import annotations

import csv
import difflib
import inspect
import io
import math
import numbers
import os
import random
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from droplab._files import atomic_open
from droplab import _rng, _validate
from droplab._validate import message

__all__ = ["Dataset", "spiral", "load", "names", "cache_dir"]

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Train and validation arrays of one dataset, with what a model needs to know about them.

    Unpacks like a tuple: ``X_train, y_train, X_val, y_val = data.load("spiral")``.

    Attributes:
        X_train: float32 features, C-contiguous, shape ``(n_train, *input_shape)``.
        y_train: int64 labels in ``[0, classes)``, shape ``(n_train,)``.
        X_val: float32 validation features, shape ``(n_val, *input_shape)``.
        y_val: int64 validation labels, shape ``(n_val,)``.
        name: the registry name, or the file's path for a user file.
        classes: number of classes.
        input_shape: the shape of one sample as stored, e.g. ``(2,)`` or ``(64,)``.
        description: one line saying what the data and the split are.
        image_shape: ``(C, H, W)`` to reshape one flat sample into for a CNN, e.g.
            ``(1, 8, 8)`` for digits; None when the data is not an image.
        class_names: the original label of each class when the labels were strings.
        seed: the integer seed the data was drawn with; None when a Generator was given
            (except for mnist1d, whose generator needs an int: the one drawn from it).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    name: str
    classes: int
    input_shape: tuple[int, ...]
    description: str
    image_shape: tuple[int, ...] | None = None
    class_names: tuple[str, ...] | None = None
    seed: int | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.X_train, self.y_train, self.X_val, self.y_val))

    def __repr__(self) -> str:
        # The arrays would flood the screen; their shapes are what a reader wants.
        return (
            f"Dataset(name={self.name!r}, classes={self.classes}, input_shape={self.input_shape}, "
            f"train={len(self.y_train)}, val={len(self.y_val)}, seed={self.seed})"
        )


def _features(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _labels(y: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(y, dtype=np.int64)


def spiral(
    samples: int,
    classes: int,
    *,
    noise: float = 0.2,
    seed: _rng.Seed = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The spiral data of *Neural Networks from Scratch* (NNFS), drawn from a seeded Generator.

    Class ``k`` is an arm of ``samples`` points: radius ``r = linspace(0, 1, samples)``, angle
    ``t = linspace(4k, 4(k + 1), samples) + noise * N(0, 1)``, point
    ``(r sin(2.5 t), r cos(2.5 t))``. The normal draws come from one Generator, class after
    class, never from NumPy's global generator. The rows are grouped by class (not shuffled),
    as in the book.

    Args:
        samples: points per class (positive int).
        classes: number of arms (positive int).
        noise: standard deviation of the angle noise (>= 0; default 0.2, the book's value).
        seed: int, Generator or None (fresh OS entropy, as everywhere in droplab; use
            ``load("spiral")`` for the fixed default data).

    Returns:
        ``X`` float32 of shape ``(samples * classes, 2)`` and ``y`` int64 of shape
        ``(samples * classes,)`` with ``y[i] = i // samples``.

    Raises:
        TypeError: ``samples``/``classes`` not ints, ``noise`` not a number, a bad ``seed``.
        ValueError: ``samples``/``classes`` < 1, ``noise`` negative or not finite.

    Example:
        >>> X, y = spiral(100, 3, seed=0)
        >>> X.shape, X.dtype, y.shape, y.dtype
        ((300, 2), dtype('float32'), (300,), dtype('int64'))
        >>> sorted(set(y.tolist()))
        [0, 1, 2]

    Reference:
        Kinsley & Kukieła, *Neural Networks from Scratch in Python* (2020), ch. 3
        (``nnfs.datasets.spiral_data``).
    """
    samples = _validate.positive_int("spiral", "samples", samples)
    classes = _validate.positive_int("spiral", "classes", classes)
    noise = _validate.nonnegative_float("spiral", "noise", noise)
    rng = _rng.generator(_rng.seed_sequence(seed, "spiral"))
    X = np.empty((samples * classes, 2), dtype=np.float64)
    r = np.linspace(0.0, 1.0, samples)
    for k in range(classes):
        t = np.linspace(4.0 * k, 4.0 * (k + 1), samples) + rng.standard_normal(samples) * noise
        X[k * samples : (k + 1) * samples] = np.c_[r * np.sin(2.5 * t), r * np.cos(2.5 * t)]
    y = np.repeat(np.arange(classes, dtype=np.int64), samples)
    return _features(X), y


# ---------------------------------------------------------------------------------- splits


def _fraction(where: str, value: Any) -> float:
    v = _validate.probability(where, "validation", value)
    if not 0.0 < v < 1.0:
        raise ValueError(message(where, "validation", "a fraction in (0, 1)", value))
    return v


def _split(
    y: np.ndarray, fraction: float, ss: np.random.SeedSequence, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified shuffle split: indices of train and validation, each in shuffled order."""
    perm = _rng.generator(ss).permutation(len(y))
    yp = y[perm]
    to_val = np.zeros(len(y), dtype=bool)
    for k in np.unique(yp):
        idx = np.flatnonzero(yp == k)
        # Round half up (not to even) so the count is the obvious one.
        to_val[idx[: math.floor(fraction * len(idx) + 0.5)]] = True
    train, val = perm[~to_val], perm[to_val]
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"{where}: the split leaves {len(train)} training and {len(val)} validation samples; "
            f"use more samples or another `validation` (got validation={fraction!r})."
        )
    return train, val


def _sklearn_seed(ss: np.random.SeedSequence) -> int:
    # sklearn wants an int (or RandomState); derive it from our SeedSequence.
    return int(ss.generate_state(1, np.uint32)[0])


# -------------------------------------------------------------------------------- registry


def _load_spiral(ss, seed, *, samples=1000, classes=3, noise=0.2, val_samples=100) -> Dataset:
    where = "data.load('spiral')"
    samples = _validate.positive_int(where, "samples", samples)
    val_samples = _validate.positive_int(where, "val_samples", val_samples)
    classes = _validate.positive_int(where, "classes", classes)
    noise = _validate.nonnegative_float(where, "noise", noise)
    train_ss, val_ss = ss.spawn(2)
    X, y = spiral(samples, classes, noise=noise, seed=train_ss)
    Xv, yv = spiral(val_samples, classes, noise=noise, seed=val_ss)
    return Dataset(
        X, y, Xv, yv,
        name="spiral",
        classes=classes,
        input_shape=(2,),
        description=(
            f"NNFS spirals: train = spiral({samples}, {classes}), validation = an independent "
            f"spiral({val_samples}, {classes}) draw, noise {noise}"
        ),
        seed=seed,
    )


def _load_sklearn_2d(kind: str, ss, seed, *, samples, noise, validation, **extra) -> Dataset:
    where = f"data.load({kind!r})"
    samples = _validate.positive_int(where, "samples", samples)
    noise = _validate.nonnegative_float(where, "noise", noise)
    validation = _fraction(where, validation)
    from sklearn import datasets

    gen_ss, split_ss = ss.spawn(2)
    make = datasets.make_moons if kind == "moons" else datasets.make_circles
    X, y = make(n_samples=samples, noise=noise, random_state=_sklearn_seed(gen_ss), **extra)
    train, val = _split(y, validation, split_ss, where)
    more = "".join(f", {k}={v}" for k, v in extra.items())
    return Dataset(
        _features(X[train]), _labels(y[train]), _features(X[val]), _labels(y[val]),
        name=kind,
        classes=2,
        input_shape=(2,),
        description=(
            f"sklearn make_{kind}({samples}, noise={noise}{more}), stratified random "
            f"{validation:.0%} validation split"
        ),
        seed=seed,
    )


def _load_moons(ss, seed, *, samples=1000, noise=0.2, validation=0.2) -> Dataset:
    return _load_sklearn_2d("moons", ss, seed, samples=samples, noise=noise, validation=validation)


def _load_circles(ss, seed, *, samples=1000, noise=0.1, factor=0.5, validation=0.2) -> Dataset:
    factor = _validate.probability("data.load('circles')", "factor", factor, allow_one=False)
    return _load_sklearn_2d(
        "circles", ss, seed, samples=samples, noise=noise, validation=validation, factor=factor
    )


def _load_digits(ss, seed, *, validation=0.2) -> Dataset:
    where = "data.load('digits')"
    validation = _fraction(where, validation)
    from sklearn.datasets import load_digits

    d = load_digits()
    X = d.data / 16.0  # pixel intensities are 0..16
    train, val = _split(d.target, validation, ss, where)
    return Dataset(
        _features(X[train]), _labels(d.target[train]), _features(X[val]), _labels(d.target[val]),
        name="digits",
        classes=10,
        input_shape=(64,),
        image_shape=(1, 8, 8),
        description=(
            f"sklearn's bundled 8x8 digits scaled to [0, 1], stratified random {validation:.0%} "
            "validation split"
        ),
        seed=seed,
    )


def _load_breast_cancer(ss, seed, *, validation=0.2) -> Dataset:
    where = "data.load('breast_cancer')"
    validation = _fraction(where, validation)
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    train, val = _split(d.target, validation, ss, where)
    # Statistics of the training part only: validation data must not leak into preprocessing.
    mean = d.data[train].mean(axis=0)
    std = d.data[train].std(axis=0)
    std[std == 0] = 1.0
    X = (d.data - mean) / std
    return Dataset(
        _features(X[train]), _labels(d.target[train]), _features(X[val]), _labels(d.target[val]),
        name="breast_cancer",
        classes=2,
        input_shape=(30,),
        description=(
            "sklearn's bundled Wisconsin breast cancer set standardised with training statistics, "
            f"stratified random {validation:.0%} validation split"
        ),
        seed=seed,
    )


# --------------------------------------------------------------------------------- mnist1d

_MNIST1D_LEN = 40
_MNIST1D_TRAIN_SPLIT = 0.8
_MNIST1D_FORMAT = 1  # bump when the cached arrays change meaning
_mnist1d_lock = threading.Lock()


def cache_dir() -> Path:
    """Where generated data is cached.

    ``$DROPLAB_CACHE`` if set, else ``$XDG_CACHE_HOME/droplab``, else ``~/.cache/droplab``.
    """
    if os.environ.get("DROPLAB_CACHE"):
        return Path(os.environ["DROPLAB_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "droplab"
    return Path.home() / ".cache" / "droplab"


def _generate_mnist1d(seed: int, samples: int, shuffle_seq: bool) -> dict[str, np.ndarray]:
    """Run mnist1d's offline generator, leaving Python's and NumPy's global RNGs untouched."""
    try:
        # mnist1d imports matplotlib.pyplot; that does not pick a GUI backend until a figure
        # is drawn, so we leave the user's backend choice alone.
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:  # pragma: no cover - mnist1d is a dependency
        raise ImportError(
            "data.load('mnist1d') needs the mnist1d package: pip install mnist1d"
        ) from exc
    args = get_dataset_args()
    args.seed = seed
    args.num_samples = samples
    args.shuffle_seq = shuffle_seq
    args.train_split = _MNIST1D_TRAIN_SPLIT
    # make_dataset calls random.seed and np.random.seed: restore both so loading data does not
    # change what the user's own global-RNG code draws next. The lock keeps two threads from
    # interleaving on the global generators.
    with _mnist1d_lock:
        py_state = random.getstate()
        np_state = np.random.get_state(legacy=False)
        try:
            d = make_dataset(args)  # never get_dataset: it downloads
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
    return {
        "X_train": _features(d["x"]),
        "y_train": _labels(d["y"]),
        "X_val": _features(d["x_test"]),
        "y_val": _labels(d["y_test"]),
    }


def _mnist1d_cached(path: Path, n_train: int, n_val: int) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is missing, unreadable or not what we wrote."""
    expected = {
        "X_train": ((n_train, _MNIST1D_LEN), np.float32),
        "y_train": ((n_train,), np.int64),
        "X_val": ((n_val, _MNIST1D_LEN), np.float32),
        "y_val": ((n_val,), np.int64),
    }
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in expected}
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - any damage to a cache file means "regenerate"
        return None
    for k, (shape, dtype) in expected.items():
        if out[k].shape != shape or out[k].dtype != dtype:
            return None
    return out


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_open(path) as f:  # a reader (another process) never sees half a file
        np.savez(f, **arrays)


def _load_mnist1d(ss, seed, *, samples=5000, shuffle_seq=False) -> Dataset:
    where = "data.load('mnist1d')"
    samples = _validate.positive_int(where, "samples", samples)
    if samples % 10 or samples < 20:
        raise ValueError(message(where, "samples", "a multiple of 10, at least 20", samples))
    if not isinstance(shuffle_seq, (bool, np.bool_)):
        raise TypeError(message(where, "shuffle_seq", "True or False", shuffle_seq))
    shuffle_seq = bool(shuffle_seq)
    # The generator seeds NumPy's legacy global generator, which takes a 32-bit seed. `seed` is
    # None here only for a Generator/SeedSequence (load() turned None into 42): draw one.
    if seed is None:
        gen_seed = int(ss.generate_state(1, np.uint32)[0])
    elif seed >= 2**32:
        raise ValueError(message(where, "seed", "an integer below 2**32", seed))
    else:
        gen_seed = seed
    n_train = int(samples * _MNIST1D_TRAIN_SPLIT)
    n_val = samples - n_train
    variant = "shuffled" if shuffle_seq else "ordered"
    path = cache_dir() / f"mnist1d-v{_MNIST1D_FORMAT}-seed{gen_seed}-n{samples}-{variant}.npz"
    arrays = _mnist1d_cached(path, n_train, n_val)
    if arrays is None:
        arrays = _generate_mnist1d(gen_seed, samples, shuffle_seq)
        try:
            _write_atomic(path, arrays)
        except OSError as exc:
            # Caching only saves time; the data is still right without it.
            warnings.warn(f"data.load('mnist1d'): could not cache to {path}: {exc}", stacklevel=3)
    order = "; positions shuffled (shuffle_seq)" if shuffle_seq else ""
    standard = " (the standard set)" if gen_seed == 42 and samples == 5000 and not shuffle_seq else ""
    return Dataset(
        arrays["X_train"], arrays["y_train"], arrays["X_val"], arrays["y_val"],
        name="mnist1d",
        classes=10,
        input_shape=(_MNIST1D_LEN,),
        description=(
            f"MNIST-1D from the offline generator, seed {gen_seed}{standard}: first {n_train} "
            f"samples train, last {n_val} validation (the generator's own split){order}"
        ),
        seed=gen_seed,
    )


# ------------------------------------------------------------------------------ user files


class _FileError(ValueError):
    pass


def _file_error(path: Path, problem: str) -> _FileError:
    return _FileError(f"data.load: cannot use {str(path)!r}: {problem}.")


def _encode_labels(path: Path, parts: list[np.ndarray]) -> tuple[list[np.ndarray], int, tuple | None]:
    """Integer labels as they are; strings mapped to 0..K-1 in sorted order."""
    kinds = {p.dtype.kind for p in parts}
    if kinds <= {"U", "S"}:
        names = np.unique(np.concatenate([p.astype(str) for p in parts]))
        encoded = [np.searchsorted(names, p.astype(str)).astype(np.int64) for p in parts]
        return encoded, len(names), tuple(str(n) for n in names)
    out = []
    for p in parts:
        if p.dtype.kind == "b":
            p = p.astype(np.int64)
        elif p.dtype.kind == "f":
            if not (np.isfinite(p).all() and (p == np.round(p)).all()):
                raise _file_error(path, "labels must be integers or strings; found non-integer numbers")
            p = p.astype(np.int64)
        elif p.dtype.kind not in "iu":
            raise _file_error(path, f"labels must be integers or strings; found dtype {p.dtype}")
        if p.size and p.min() < 0:
            raise _file_error(path, f"integer labels must be >= 0; found {int(p.min())}")
        out.append(p.astype(np.int64))
    classes = int(max(int(p.max()) for p in out if p.size)) + 1
    return out, classes, None


def _check_features(path: Path, key: str, X: np.ndarray) -> None:
    if X.dtype.kind not in "biuf":
        raise _file_error(path, f"{key} must be numeric; found dtype {X.dtype}")
    if X.ndim < 2:
        raise _file_error(path, f"{key} must have shape (samples, features...); found shape {X.shape}")
    if X.size == 0:
        raise _file_error(path, f"{key} is empty (shape {X.shape})")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        bad = int(X.size - np.count_nonzero(np.isfinite(X)))
        raise _file_error(path, f"{key} has {bad} NaN or infinite values")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a damaged file may fail anywhere inside zipfile
        if isinstance(exc, ValueError) and "pickle" in str(exc):
            problem = "not an .npz archive (it holds pickled data, which is never loaded)"
            raise _file_error(path, problem) from None
        raise _file_error(path, "not a readable .npz archive (truncated or damaged?)") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise _file_error(path, "holds a single array; save named arrays with np.savez(path, X=..., y=...)")
    with loaded as z:
        missing = [k for k in ("X", "y") if k not in z.files]
        if missing:
            found = ", ".join(map(repr, z.files)) or "none"
            raise _file_error(path, f"missing array {missing[0]!r} (found {found})")
        if ("X_val" in z.files) != ("y_val" in z.files):
            raise _file_error(path, "has one of 'X_val' and 'y_val' without the other")
        out = {}
        for k in ("X", "y", "X_val", "y_val"):
            if k not in z.files:
                continue
            try:
                out[k] = z[k]
            except Exception as exc:  # noqa: BLE001 - as above
                if isinstance(exc, ValueError) and "allow_pickle" in str(exc):
                    problem = f"array {k!r} holds Python objects (pickled), which are never loaded"
                    raise _file_error(path, problem) from None
                raise _file_error(path, f"array {k!r} is unreadable (truncated or damaged?)") from None
    return out


def _parse_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _read_csv(path: Path, label: str) -> dict[str, np.ndarray]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: tolerate a BOM from spreadsheets
    except UnicodeDecodeError:
        raise _file_error(path, "not UTF-8 text") from None
    try:
        reader = csv.reader(io.StringIO(text))
        rows: list[tuple[int, list[str]]] = []
        header: list[str] | None = None
        for cells in reader:
            if not cells or all(not c.strip() for c in cells):
                continue  # blank lines carry no data
            cells = [c.strip() for c in cells]
            if header is None:
                header = cells
            else:
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise _file_error(path, f"not valid CSV ({exc})") from None
    if header is None:
        raise _file_error(path, "the file is empty (expected a header row)")
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise _file_error(path, f"column {dup!r} appears more than once in the header")
    if label not in header:
        close = difflib.get_close_matches(label, header, n=1)
        hint = f"; did you mean label={close[0]!r}?" if close else "; pass label=<column name>"
        raise _file_error(path, f"no label column {label!r} in the header {header}{hint}")
    if len(header) < 2:
        raise _file_error(path, "no feature columns besides the label column")
    if not rows:
        raise _file_error(path, "no data rows after the header")
    for line, cells in rows:
        if len(cells) != len(header):
            raise _file_error(path, f"line {line} has {len(cells)} cells; the header has {len(header)}")
    li = header.index(label)
    feature_cols = [i for i in range(len(header)) if i != li]
    labels = [cells[li] for _, cells in rows]
    X = np.empty((len(rows), len(feature_cols)), dtype=np.float64)
    for r, (line, cells) in enumerate(rows):
        for c, i in enumerate(feature_cols):
            try:
                X[r, c] = float(cells[i])
            except ValueError:
                what = "an empty cell" if not cells[i] else f"{cells[i]!r} is not a number"
                raise _file_error(path, f"line {line}, column {header[i]!r}: {what}") from None
            if not math.isfinite(X[r, c]):
                raise _file_error(path, f"line {line}, column {header[i]!r}: {cells[i]!r} is not finite")
    for (line, _), value in zip(rows, labels):
        if not value:
            raise _file_error(path, f"line {line}: the label cell is empty")
    y = np.array([int(v) for v in labels]) if all(map(_parse_int, labels)) else np.array(labels)
    return {"X": X, "y": y}


def _load_file(path: Path, ss, seed, *, validation=0.2, label="label") -> Dataset:
    where = "data.load"
    validation = _fraction(where, validation)
    if not isinstance(label, str):
        raise TypeError(message(where, "label", "a column name (str)", label))
    if not path.is_file():
        raise _file_error(path, "no such file")
    try:
        arrays = _read_npz(path) if path.suffix.lower() == ".npz" else _read_csv(path, label)
    except OSError as exc:
        raise _file_error(path, exc.strerror or "cannot be read") from None
    keys = [("X", "y")] + ([("X_val", "y_val")] if "X_val" in arrays else [])
    for xk, yk in keys:
        X, y = arrays[xk], arrays[yk]
        _check_features(path, xk, X)
        if y.ndim != 1 or len(y) != len(X):
            problem = f"{yk} must have shape ({len(X)},) to match {xk}; found shape {y.shape}"
            raise _file_error(path, problem)
    encoded, classes, class_names = _encode_labels(path, [arrays[yk] for _, yk in keys])
    if "X_val" in arrays:
        if arrays["X_val"].shape[1:] != arrays["X"].shape[1:]:
            shapes = f"{arrays['X_val'].shape[1:]}, X samples {arrays['X'].shape[1:]}"
            raise _file_error(path, f"X_val samples have shape {shapes}")
        X, y, Xv, yv = arrays["X"], encoded[0], arrays["X_val"], encoded[1]
        split = "validation arrays X_val, y_val from the file"
    else:
        train, val = _split(encoded[0], validation, ss, f"data.load({str(path)!r})")
        X, y, Xv, yv = arrays["X"][train], encoded[0][train], arrays["X"][val], encoded[0][val]
        split = f"stratified random {validation:.0%} validation split"
    return Dataset(
        _features(X), _labels(y), _features(Xv), _labels(yv),
        name=str(path),
        classes=classes,
        input_shape=tuple(int(s) for s in X.shape[1:]),
        description=f"user file {str(path)!r}, {split}",
        class_names=class_names,
        seed=seed,
    )


# ------------------------------------------------------------------------------------ load

_Loader = Callable[..., Dataset]
# name -> (loader, default seed). The default seed makes `load(name)` always the same data.
_REGISTRY: dict[str, tuple[_Loader, int]] = {
    "spiral": (_load_spiral, 0),
    "moons": (_load_moons, 0),
    "circles": (_load_circles, 0),
    "digits": (_load_digits, 0),
    "breast_cancer": (_load_breast_cancer, 0),
    "mnist1d": (_load_mnist1d, 42),
}
_FILE_DEFAULT_SEED = 0
_FILE_SUFFIXES = (".npz", ".csv")


def names() -> tuple[str, ...]:
    """The names :func:`load` knows, in the order of the table in this module's docstring."""
    return tuple(_REGISTRY)


def _options(loader: _Loader) -> list[str]:
    """A loader's options are its keyword-only parameters."""
    params = inspect.signature(loader).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def load(name: PathLike, *, seed: _rng.Seed = None, **options: Any) -> Dataset:
    """Load a dataset by name (see the table above) or from a ``.npz``/``.csv`` file.

    Args:
        name: a registry name (:func:`names`) or a path ending in ``.npz`` or ``.csv``.
        seed: int, Generator or None. None means the dataset's fixed default seed (42 for
            mnist1d, the standard set; 0 for the others), so ``load(name)`` is always the same
            data. The same int always gives bit-identical arrays.
        **options: per-dataset options, listed in this module's docstring.

    Returns:
        A :class:`Dataset`; it unpacks as ``X_train, y_train, X_val, y_val``.

    Raises:
        ValueError: an unknown name (with the closest suggestion), an unknown option, a bad
            option value, a missing or malformed file (one line naming the file and the
            problem).
        TypeError: a ``name``, ``seed`` or option of the wrong type.

    Example:
        >>> X_train, y_train, X_val, y_val = load("spiral")
        >>> X_train.shape, y_train.dtype, X_val.shape
        ((3000, 2), dtype('int64'), (300, 2))
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(message("data.load", "name", "a dataset name or a file path (str)", name))
    _rng.check_seed("data.load", seed)
    is_file = name.lower().endswith(_FILE_SUFFIXES)
    if is_file:
        loader: _Loader = _load_file
        default_seed = _FILE_DEFAULT_SEED
    else:
        try:
            _validate.one_of("data.load", "name", name, _REGISTRY)
        except ValueError as exc:
            raise ValueError(f"{exc} Files must end in .npz or .csv.") from None
        loader, default_seed = _REGISTRY[name]
    allowed = _options(loader)
    for key in options:
        _validate.one_of(f"data.load({name!r})", "option", key, allowed)
    if seed is None:
        seed = default_seed
    int_seed = int(seed) if isinstance(seed, numbers.Integral) else None
    ss = _rng.seed_sequence(seed, "data.load")
    if is_file:
        return _load_file(Path(name).expanduser(), ss, int_seed, **options)
    return loader(ss, int_seed, **options)

