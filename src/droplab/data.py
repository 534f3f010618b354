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
  ``~/.cache/droplab``, with the generator's version (the mnist1d package's version and
  droplab's generation parameters) and a SHA-256 of the arrays. A cache file that does not
  match them (damaged, written by another generator, or forged) is regenerated and
  overwritten, never used. A cache path that is not a regular file (a FIFO, a folder) is
  refused with one line and left alone.
- your own file, a name ending in ``.npz`` (arrays ``X``, ``y``, optional ``X_val``,
  ``y_val``) or ``.csv`` (a header row, a label column, every other column a numeric
  feature): ``validation=0.2`` (used when the file has no validation arrays), ``label="label"``
  (CSV: the label column). Labels map through their sorted distinct values, as
  scikit-learn's ``classes_``: labels ``{0, 1, 10**9}`` are classes 0, 1, 2, and the
  original value of each class is kept in ``Dataset.label_values`` (``Dataset.decode`` maps
  predictions back). At most ``MAX_CLASSES`` (1000) distinct labels. A CSV label cell that
  is a number (``3``, ``3.0``, ``1e3``) is that number; if any cell is not a number, every
  label is a string, sorted as text, and the names are also in ``Dataset.class_names``.
  Numeric labels must be whole numbers. Features must be finite and within float32's range
  (they are stored as float32). A CSV file may be up to 128 MiB (it is parsed in Python); an
  .npz file and the arrays it holds up to 1 GiB each.

Every problem with a file (missing, not a regular file, empty, too large, damaged, ragged,
a non-numeric cell, NaN, no rows) is one line naming the file.

"Stratified random" means: the samples are shuffled with the seed, and from each class the
first ``validation * class size`` (rounded half up) go to validation, so every class keeps
its share.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import inspect
import io
import json
import math
import numbers
import os
import random
import stat
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
from droplab.errors import FileError, InvalidTypeError, InvalidValueError

__all__ = ["Dataset", "spiral", "load", "names", "cache_dir", "MAX_CLASSES"]

MAX_CLASSES = 1000  # distinct labels in a user file: more is a continuous target, not classes
_MAX_CSV_BYTES = 128 * 2**20  # Python's csv module needs about ten bytes of memory per byte read
_MAX_NPZ_BYTES = 2**30  # on disk, and again for the arrays it holds once decompressed

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
        label_values: the original label of each class, in class order (ints, or strings):
            ``(0, 1, 1000000000)`` for a file labelled 0, 1 and 10**9; ``(0, ..., classes - 1)``
            for the registered sets.
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
    label_values: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.label_values is None:
            object.__setattr__(self, "label_values", tuple(range(self.classes)))

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.X_train, self.y_train, self.X_val, self.y_val))

    def decode(self, classes: Any) -> np.ndarray:
        """Class indices (predictions) as the labels the data was given with.

        Example:
            >>> ds = load("spiral")
            >>> ds.decode([2, 0]).tolist()
            [2, 0]
        """
        idx = np.asarray(classes)
        if idx.dtype.kind not in "iu" or (idx.size and (idx.min() < 0 or idx.max() >= self.classes)):
            raise InvalidValueError(message("Dataset.decode", "classes", f"class indices in [0, {self.classes})",
                                            classes))
        values = np.asarray(self.label_values, dtype=object if self.class_names is None else str)
        return values[idx]

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
        raise InvalidValueError(message(where, "validation", "a fraction in (0, 1)", value))
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
        raise InvalidValueError(
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
_MNIST1D_ARRAYS = ("X_train", "y_train", "X_val", "y_val")
# SHA-256 of y_train + y_val (int64 bytes) of the standard set (seed 42, 5000 samples, ordered)
# for each mnist1d version checked: a cache whose own checksum was forged is still caught here.
_MNIST1D_STANDARD_LABELS = {
    "0.0.2.post1": "6feec4a017698c7fe237c8854cbd2e338c6dd5c16240f6fa79daefaaa129e169",
}
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


def _mnist1d_generator() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mnist1d")
    except PackageNotFoundError:  # pragma: no cover - mnist1d is a dependency
        return "unknown"


def _mnist1d_meta(seed: int, samples: int, shuffle_seq: bool) -> dict[str, Any]:
    """What made a cache file: the generator's version and droplab's parameters."""
    return {"format": _MNIST1D_FORMAT, "mnist1d": _mnist1d_generator(), "seed": seed, "samples": samples,
            "shuffle_seq": shuffle_seq, "train_split": _MNIST1D_TRAIN_SPLIT, "length": _MNIST1D_LEN}


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in _MNIST1D_ARRAYS:
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _mnist1d_cached(path: Path, n_train: int, n_val: int, meta: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is missing, damaged or not what this generator
    wrote (another version, other parameters, a checksum that does not match: a forgery).

    Raises:
        FileError: the cache path exists but is not a regular file (a FIFO would block).
    """
    expected = {
        "X_train": ((n_train, _MNIST1D_LEN), np.float32),
        "y_train": ((n_train,), np.int64),
        "X_val": ((n_val, _MNIST1D_LEN), np.float32),
        "y_val": ((n_val,), np.int64),
    }
    budget = sum(math.prod(shape) * np.dtype(dt).itemsize for shape, dt in expected.values()) + 2**16
    try:
        f = _open_regular(path, budget)
    except FileNotFoundError:
        return None
    except _NotRegular as exc:
        raise FileError(
            f"data.load('mnist1d'): the cache path {str(path)!r} is {exc.args[0]}, not a regular file; "
            "remove it or point $DROPLAB_CACHE elsewhere."
        ) from None
    except (OSError, _TooLarge):
        return None
    try:
        with f, np.load(f, allow_pickle=False) as z:
            if set(z.files) != {*expected, "meta"}:
                return None
            shapes = _npz_shapes(z, budget)
            if any(shapes[k] != (shape, np.dtype(dt)) for k, (shape, dt) in expected.items()):
                return None
            stored = json.loads(str(z["meta"][()]))
            out = {k: z[k] for k in expected}
    except Exception:  # noqa: BLE001 - any damage to a cache file means "regenerate"
        return None
    digest = stored.pop("sha256", None) if isinstance(stored, dict) else None
    if stored != meta or digest != _digest(out):
        return None
    pinned = _MNIST1D_STANDARD_LABELS.get(meta["mnist1d"])
    if pinned and (meta["seed"], meta["samples"], meta["shuffle_seq"]) == (42, 5000, False):
        labels = np.concatenate([out["y_train"], out["y_val"]]).astype("<i8")
        if hashlib.sha256(labels.tobytes()).hexdigest() != pinned:
            return None
    return out


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_open(path) as f:  # a reader (another process) never sees half a file
        np.savez(f, **arrays)


def _load_mnist1d(ss, seed, *, samples=5000, shuffle_seq=False) -> Dataset:
    where = "data.load('mnist1d')"
    samples = _validate.positive_int(where, "samples", samples)
    if samples % 10 or samples < 20:
        raise InvalidValueError(message(where, "samples", "a multiple of 10, at least 20", samples))
    if not isinstance(shuffle_seq, (bool, np.bool_)):
        raise InvalidTypeError(message(where, "shuffle_seq", "True or False", shuffle_seq))
    shuffle_seq = bool(shuffle_seq)
    # The generator seeds NumPy's legacy global generator, which takes a 32-bit seed. `seed` is
    # None here only for a Generator/SeedSequence (load() turned None into 42): draw one.
    if seed is None:
        gen_seed = int(ss.generate_state(1, np.uint32)[0])
    elif seed >= 2**32:
        raise InvalidValueError(message(where, "seed", "an integer below 2**32", seed))
    else:
        gen_seed = seed
    n_train = int(samples * _MNIST1D_TRAIN_SPLIT)
    n_val = samples - n_train
    variant = "shuffled" if shuffle_seq else "ordered"
    path = cache_dir() / f"mnist1d-v{_MNIST1D_FORMAT}-seed{gen_seed}-n{samples}-{variant}.npz"
    meta = _mnist1d_meta(gen_seed, samples, shuffle_seq)
    arrays = _mnist1d_cached(path, n_train, n_val, meta)
    if arrays is None:
        arrays = _generate_mnist1d(gen_seed, samples, shuffle_seq)
        stamp = np.array(json.dumps({**meta, "sha256": _digest(arrays)}, sort_keys=True))
        try:
            _write_atomic(path, {**arrays, "meta": stamp})
        except OSError as exc:
            # Caching only saves time; the data is still right without it.
            reason = exc.args[0] if isinstance(exc, FileError) and exc.args else exc.strerror or exc
            warnings.warn(f"data.load('mnist1d'): could not cache to {path}: {reason}", stacklevel=3)
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


class _FileError(InvalidValueError):
    pass


def _file_error(path: Path, problem: str) -> _FileError:
    return _FileError(f"data.load: cannot use {str(path)!r}: {problem}.")


class _NotRegular(Exception):
    """The path is a FIFO, a folder, a device...: reading it could block or never end."""


class _TooLarge(Exception):
    """The file is larger than the budget given to :func:`_open_regular` (args: its size)."""


_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFDIR: "a folder", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _open_regular(path: Path, max_bytes: int) -> io.BufferedReader:
    """Open ``path`` for reading only if it is a regular file of at most ``max_bytes``.

    The file is opened without blocking and checked on the open descriptor, so a FIFO put
    at the path is refused instead of waiting forever for a writer.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegular(_KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file"))
        if st.st_size > max_bytes:
            raise _TooLarge(st.st_size)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n < 2**30 else f"{n / 2**30:.1f} GiB"


def _label_values(path: Path, key: str, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """One label array's distinct values (sorted), its inverse index and the values as Python
    ints or strs, refusing what cannot be class labels."""
    if p.dtype.kind in "US":
        p = p.astype(str)
    elif p.dtype.kind == "b":
        p = p.astype(np.int64)
    elif p.dtype.kind == "f":
        if not (np.isfinite(p).all() and (p == np.round(p)).all()):
            raise _file_error(path, "labels must be integers or strings; found non-integer numbers")
    elif p.dtype.kind not in "iuO":  # O: whole numbers beyond 64 bits, parsed from a CSV
        raise _file_error(path, f"labels must be integers or strings; found dtype {p.dtype}")
    uniq, inverse = np.unique(p, return_inverse=True)
    if len(uniq) > MAX_CLASSES:
        raise _file_error(path, f"{key} has {len(uniq)} distinct labels; at most {MAX_CLASSES} classes are "
                                "supported (is it a continuous target?)")
    values = [str(v) for v in uniq] if p.dtype.kind == "U" else [int(v) for v in uniq]
    return uniq, inverse.reshape(-1), values


def _encode_labels(path: Path, parts: list[tuple[str, np.ndarray]]) -> tuple[list[np.ndarray], tuple, bool]:
    """Labels mapped through their sorted distinct values (scikit-learn's ``classes_``).

    Returns the encoded parts, the original value of each class, and whether they are strings.
    Each part is mapped through its own ``np.unique`` (exact for uint64 and for whole floats
    beyond int64), then through the sorted union of all parts.
    """
    found = [_label_values(path, key, p) for key, p in parts]
    strings = {isinstance(v[0], str) for _, _, v in found if v}
    if len(strings) > 1:
        raise _file_error(path, "labels must be all numbers or all strings in y and y_val")
    values = sorted(set().union(*(v for _, _, v in found)))
    if len(values) > MAX_CLASSES:
        raise _file_error(path, f"the labels have {len(values)} distinct values; at most {MAX_CLASSES} classes "
                                "are supported")
    if len(values) < 2:
        found_one = f"one distinct value ({values[0]!r})" if values else "no values"
        raise _file_error(path, f"the labels have {found_one}; classification needs at least 2 classes")
    index = {v: i for i, v in enumerate(values)}
    encoded = [np.array([index[v] for v in vals], dtype=np.int64)[inverse] for _, inverse, vals in found]
    return encoded, tuple(values), strings == {True}


_FLOAT32_MAX = float(np.finfo(np.float32).max)


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
    if X.dtype.kind == "f" and X.dtype.itemsize > 4:
        big = np.abs(X) > _FLOAT32_MAX  # stored as float32: these would become inf
        if big.any():
            first = X.reshape(-1)[np.flatnonzero(big.reshape(-1))[0]]
            raise _file_error(path, f"{key} has {int(big.sum())} values beyond float32's range (+-3.4e38), "
                                    f"e.g. {float(first):g}; rescale the features")


def _npz_shapes(z: Any, max_bytes: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array of an open .npz, read from the headers before any data.

    Raises ValueError (damaged) when a header is unreadable or claims more data than its member
    holds, and _TooLarge (with the total) when the arrays would take more than ``max_bytes``.
    """
    out, total = {}, 0
    for name in z.files:
        member = name if name in z.zip.namelist() else f"{name}.npy"
        info = z.zip.getinfo(member)
        with z.zip.open(member) as fp:
            version = np.lib.format.read_magic(fp)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fp)
        nbytes = math.prod(shape) * (dtype.itemsize if not dtype.hasobject else 0)
        if nbytes > info.file_size:
            raise InvalidValueError(f"array {name!r} claims more data than it holds")
        total += nbytes
        if total > max_bytes:
            raise _TooLarge(total)
        out[name] = (tuple(shape), dtype)
    return out


def _read_npz(path: Path, f: io.BufferedReader) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(f, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a damaged file may fail anywhere inside zipfile
        if isinstance(exc, ValueError) and "pickle" in str(exc):  # numpy's word for "not zip, not .npy"
            f.seek(0)
            pickled = f.read(1) == b"\x80"  # the pickle protocol opcode (protocols 2 and up)
            problem = ("not an .npz archive (it holds pickled data, which is never loaded)" if pickled
                       else "not an .npz archive (not a zip archive)")
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
                _npz_shapes(_Only(z, k), _MAX_NPZ_BYTES - sum(a.nbytes for a in out.values()))
            except _TooLarge:
                raise _file_error(path, f"its arrays take more than {_mib(_MAX_NPZ_BYTES)} once decompressed "
                                        f"(array {k!r}); at most {_mib(_MAX_NPZ_BYTES)} are read") from None
            except Exception:  # noqa: BLE001 - a damaged header may fail anywhere
                raise _file_error(path, f"array {k!r} is unreadable (truncated or damaged?)") from None
            try:
                out[k] = z[k]
            except Exception as exc:  # noqa: BLE001 - as above
                if isinstance(exc, ValueError) and "allow_pickle" in str(exc):
                    problem = f"array {k!r} holds Python objects (pickled), which are never loaded"
                    raise _file_error(path, problem) from None
                raise _file_error(path, f"array {k!r} is unreadable (truncated or damaged?)") from None
    return out


class _Only:
    """An open .npz seen as holding only one of its arrays (for :func:`_npz_shapes`)."""

    def __init__(self, z: Any, name: str) -> None:
        self.zip, self.files = z.zip, [name]


def _number(text: str) -> int | float | None:
    """A label cell as a number: int when it is a whole number (``3``, ``3.0``, ``1e3``)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        v = float(text)
    except ValueError:
        return None
    return int(v) if math.isfinite(v) and v == int(v) else v


def _csv_labels(cells: list[str]) -> np.ndarray:
    """Labels parsed as numbers when every cell is a number, else as strings."""
    numbers_ = [_number(c) for c in cells]
    if any(v is None for v in numbers_):
        return np.array(cells)
    if any(isinstance(v, float) for v in numbers_):
        return np.array(numbers_, dtype=np.float64)  # refused later: not whole numbers
    if all(-(2**63) <= v < 2**63 for v in numbers_):
        return np.array(numbers_, dtype=np.int64)
    return np.array(numbers_, dtype=object)  # Python ints: exact at any size


def _read_csv(path: Path, f: io.BufferedReader, label: str) -> dict[str, np.ndarray]:
    try:
        with f:
            raw = f.read()
        text = raw.decode("utf-8-sig")  # -sig: tolerate a BOM from spreadsheets
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
    return {"X": X, "y": _csv_labels(labels)}


def _load_file(path: Path, ss, seed, *, validation=0.2, label="label") -> Dataset:
    where = "data.load"
    validation = _fraction(where, validation)
    if not isinstance(label, str):
        raise InvalidTypeError(message(where, "label", "a column name (str)", label))
    is_npz = path.suffix.lower() == ".npz"
    limit = _MAX_NPZ_BYTES if is_npz else _MAX_CSV_BYTES
    try:
        f = _open_regular(path, limit)
    except FileNotFoundError:
        raise _file_error(path, "no such file") from None
    except _NotRegular as exc:
        raise _file_error(path, f"it is {exc.args[0]}, not a regular file") from None
    except _TooLarge as exc:
        hint = "" if is_npz else "; save larger data as .npz"
        raise _file_error(path, f"the file is {_mib(exc.args[0])}; at most {_mib(limit)} are read{hint}") from None
    except OSError as exc:
        raise _file_error(path, exc.strerror or "cannot be read") from None
    try:
        with f:
            if is_npz and os.fstat(f.fileno()).st_size == 0:
                raise _file_error(path, "the file is empty")
            arrays = _read_npz(path, f) if is_npz else _read_csv(path, f, label)
    except OSError as exc:
        raise _file_error(path, exc.strerror or "cannot be read") from None
    keys = [("X", "y")] + ([("X_val", "y_val")] if "X_val" in arrays else [])
    for xk, yk in keys:
        X, y = arrays[xk], arrays[yk]
        _check_features(path, xk, X)
        if y.ndim != 1 or len(y) != len(X):
            problem = f"{yk} must have shape ({len(X)},) to match {xk}; found shape {y.shape}"
            raise _file_error(path, problem)
    encoded, label_values, strings = _encode_labels(path, [(yk, arrays[yk]) for _, yk in keys])
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
        classes=len(label_values),
        input_shape=tuple(int(s) for s in X.shape[1:]),
        description=f"user file {str(path)!r}, {split}",
        class_names=label_values if strings else None,
        seed=seed,
        label_values=label_values,
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
        raise InvalidTypeError(message("data.load", "name", "a dataset name or a file path (str)", name))
    _rng.check_seed("data.load", seed)
    is_file = name.lower().endswith(_FILE_SUFFIXES)
    if is_file:
        loader: _Loader = _load_file
        default_seed = _FILE_DEFAULT_SEED
    else:
        try:
            _validate.one_of("data.load", "name", name, _REGISTRY)
        except ValueError as exc:
            raise InvalidValueError(f"{exc} Files must end in .npz or .csv.") from None
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

