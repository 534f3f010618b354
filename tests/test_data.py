"""Tests for droplab.data: dtypes, shapes, seeds, splits, the mnist1d cache, user files."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest

from droplab import data

# n_train, n_val, features, classes for each registry name at its defaults.
SIZES = {
    "spiral": (3000, 300, (2,), 3),
    "moons": (800, 200, (2,), 2),
    "circles": (800, 200, (2,), 2),
    "digits": (1438, 359, (64,), 10),
    "breast_cancer": (456, 113, (30,), 2),
    "mnist1d": (4000, 1000, (40,), 10),
}
SEEDED = ["spiral", "moons", "circles", "digits", "breast_cancer"]


def _global_rng_states():
    return random.getstate(), np.random.get_state()


def _same_states(a, b) -> bool:
    """Python's and NumPy's legacy global generator states are equal."""
    (py_a, (name_a, key_a, *rest_a)), (py_b, (name_b, key_b, *rest_b)) = a, b
    return py_a == py_b and name_a == name_b and np.array_equal(key_a, key_b) and rest_a == rest_b


@pytest.fixture(scope="module")
def mnist1d_standard(tmp_path_factory):
    """Generate the standard MNIST-1D once per module into a fresh cache folder."""
    cache = tmp_path_factory.mktemp("droplab-cache")
    random.seed(1234)
    np.random.seed(5678)
    before = _global_rng_states()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DROPLAB_CACHE", str(cache))
        ds = data.load("mnist1d")
    return {"cache": cache, "ds": ds, "rng_unchanged": _same_states(before, _global_rng_states())}


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """A fresh, empty cache folder for one test."""
    monkeypatch.setenv("DROPLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _check_dataset(ds: data.Dataset, n_train, n_val, input_shape, classes):
    for X, y, n in ((ds.X_train, ds.y_train, n_train), (ds.X_val, ds.y_val, n_val)):
        assert X.dtype == np.float32 and X.flags.c_contiguous
        assert y.dtype == np.int64
        assert X.shape == (n, *input_shape) and y.shape == (n,)
        assert np.isfinite(X).all()
        assert y.min() >= 0 and y.max() < classes
    assert ds.classes == classes and ds.input_shape == input_shape
    assert isinstance(ds.description, str) and "\n" not in ds.description


# ----------------------------------------------------------------------------- registry


def test_names_lists_the_registry():
    assert data.names() == tuple(SIZES)


@pytest.mark.parametrize("name", SEEDED)
def test_dtypes_and_shapes(name):
    ds = data.load(name)
    _check_dataset(ds, *SIZES[name])
    assert ds.name == name and ds.seed == 0
    # every class appears in both parts
    assert set(ds.y_train.tolist()) == set(ds.y_val.tolist()) == set(range(ds.classes))


def test_dataset_unpacks_and_has_a_short_repr():
    ds = data.load("spiral")
    X_tr, y_tr, X_va, y_va = ds
    assert X_tr is ds.X_train and y_tr is ds.y_train and X_va is ds.X_val and y_va is ds.y_val
    assert repr(ds) == "Dataset(name='spiral', classes=3, input_shape=(2,), train=3000, val=300, seed=0)"
    with pytest.raises(AttributeError):
        ds.classes = 4  # frozen


@pytest.mark.parametrize("name", SEEDED)
def test_same_seed_is_bit_identical_and_default_seed_is_documented(name):
    a, b, default = data.load(name, seed=7), data.load(name, seed=7), data.load(name)
    for x, y in zip(a, b):
        assert np.array_equal(x, y) and x.dtype == y.dtype
    for x, y in zip(default, data.load(name, seed=0)):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("name", SEEDED)
def test_different_seed_gives_different_data(name):
    a, b = data.load(name, seed=1), data.load(name, seed=2)
    assert not np.array_equal(a.X_train, b.X_train)


def test_generator_seed_is_accepted_and_advances():
    rng = np.random.default_rng(3)
    a, b = data.load("moons", seed=rng), data.load("moons", seed=rng)
    assert a.seed is None
    assert not np.array_equal(a.X_train, b.X_train)
    c = data.load("moons", seed=np.random.default_rng(3))
    assert np.array_equal(a.X_train, c.X_train)


def test_digits_split_is_a_partition_of_the_bundled_set():
    from sklearn.datasets import load_digits

    d = load_digits()
    ds = data.load("digits")
    assert ds.image_shape == (1, 8, 8)
    assert ds.X_train.reshape(-1, *ds.image_shape).shape == (1438, 1, 8, 8)
    assert ds.X_train.min() == 0.0 and ds.X_train.max() == 1.0
    got = np.concatenate([ds.X_train, ds.X_val])
    want = (d.data / 16.0).astype(np.float32)
    key = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731 - sort rows to compare as multisets
    assert np.array_equal(key(got), key(want))
    assert np.array_equal(np.bincount(np.concatenate([ds.y_train, ds.y_val])), np.bincount(d.target))


def test_breast_cancer_is_standardised_with_training_statistics_only():
    ds = data.load("breast_cancer")
    np.testing.assert_allclose(ds.X_train.mean(axis=0, dtype=np.float64), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.X_train.std(axis=0, dtype=np.float64), 1.0, atol=1e-5)
    # the validation part was not used: its statistics are off by sampling noise
    assert not np.allclose(ds.X_val.mean(axis=0), 0.0, atol=1e-5)


def test_split_is_disjoint_stratified_and_shuffled():
    y = np.repeat(np.arange(3), [10, 20, 31])
    train, val = data._split(y, 0.2, np.random.SeedSequence(0), "test")
    assert len(np.intersect1d(train, val)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(y)))
    # round half up per class: 2, 4, 6
    assert np.bincount(y[val]).tolist() == [2, 4, 6]
    assert not np.array_equal(np.sort(train), train)  # shuffled order


def test_moons_and_circles_options():
    ds = data.load("moons", samples=200, noise=0.0, validation=0.5)
    _check_dataset(ds, 100, 100, (2,), 2)
    c = data.load("circles", samples=100, noise=0.0, factor=0.3)
    r = np.hypot(*np.concatenate([c.X_train, c.X_val]).T)
    assert np.allclose(np.unique(np.round(r, 5)), [0.3, 1.0])


# ------------------------------------------------------------------------------- spiral


def _nnfs_spiral(samples, classes, rng):
    """The book's code, verbatim except the normal draws come from ``rng``."""
    X = np.zeros((samples * classes, 2))
    y = np.zeros(samples * classes, dtype="uint8")
    for class_number in range(classes):
        ix = range(samples * class_number, samples * (class_number + 1))
        r = np.linspace(0.0, 1, samples)
        t = np.linspace(class_number * 4, (class_number + 1) * 4, samples) + rng.standard_normal(samples) * 0.2
        X[ix] = np.c_[r * np.sin(t * 2.5), r * np.cos(t * 2.5)]
        y[ix] = class_number
    return X, y


def test_spiral_is_the_textbook_generator():
    X, y = data.spiral(100, 3, seed=5)
    X_book, y_book = _nnfs_spiral(100, 3, np.random.default_rng(np.random.SeedSequence(5)))
    assert np.array_equal(X, X_book.astype(np.float32))
    assert np.array_equal(y, y_book.astype(np.int64))
    # the noise moves the angle only: every arm has radii linspace(0, 1)
    radius = np.hypot(X[:, 0].astype(np.float64), X[:, 1])
    np.testing.assert_allclose(radius.reshape(3, 100), np.tile(np.linspace(0, 1, 100), (3, 1)), atol=1e-6)
    assert np.array_equal(y, np.repeat(np.arange(3), 100))


def test_spiral_without_noise_is_exact_and_seed_free():
    a, _ = data.spiral(50, 4, noise=0.0, seed=1)
    b, _ = data.spiral(50, 4, noise=0.0, seed=2)
    assert np.array_equal(a, b)


def test_spiral_seeds():
    a, _ = data.spiral(10, 2, seed=3)
    b, _ = data.spiral(10, 2, seed=3)
    c, _ = data.spiral(10, 2, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_spiral_load_options_and_independent_validation_draw():
    ds = data.load("spiral", samples=40, val_samples=10, classes=5, noise=0.1)
    _check_dataset(ds, 200, 50, (2,), 5)
    train_ss, val_ss = np.random.SeedSequence(0).spawn(2)
    assert np.array_equal(ds.X_train, data.spiral(40, 5, noise=0.1, seed=train_ss)[0])
    assert np.array_equal(ds.X_val, data.spiral(10, 5, noise=0.1, seed=val_ss)[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"samples": 0, "classes": 3}, ValueError, r"spiral: `samples` must be a positive integer; got samples=0"),
        ({"samples": 2.5, "classes": 3}, TypeError, r"`samples` must be a positive integer"),
        ({"samples": 5, "classes": 0}, ValueError, r"`classes` must be a positive integer"),
        ({"samples": 5, "classes": 2, "noise": -1.0}, ValueError, r"`noise` must be a finite number >= 0"),
        ({"samples": 5, "classes": 2, "seed": -1}, ValueError, r"spiral: `seed` must be a non-negative"),
        ({"samples": 5, "classes": 2, "seed": "a"}, TypeError, r"`seed` must be an int"),
    ],
)
def test_spiral_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.spiral(**kwargs)


# ------------------------------------------------------------------------------ mnist1d


def test_mnist1d_standard_sizes(mnist1d_standard):
    ds = mnist1d_standard["ds"]
    _check_dataset(ds, *SIZES["mnist1d"])
    assert ds.seed == 42 and "standard" in ds.description
    assert set(ds.y_train.tolist()) == set(range(10))
    # the generator standardises the whole set: mean 0, std 1 over all samples
    allx = np.concatenate([ds.X_train, ds.X_val]).astype(np.float64)
    assert abs(allx.mean()) < 1e-5 and abs(allx.std() - 1.0) < 1e-5


def test_mnist1d_leaves_global_rngs_alone(mnist1d_standard):
    assert mnist1d_standard["rng_unchanged"]


def test_mnist1d_second_load_comes_from_the_cache(mnist1d_standard, monkeypatch):
    monkeypatch.setenv("DROPLAB_CACHE", str(mnist1d_standard["cache"]))
    files = sorted(p.name for p in mnist1d_standard["cache"].iterdir())
    assert files == ["mnist1d-v1-seed42-n5000-ordered.npz"]  # no temp file left behind

    def boom(*args, **kwargs):
        raise AssertionError("regenerated instead of reading the cache")

    monkeypatch.setattr(data, "_generate_mnist1d", boom)
    again = data.load("mnist1d", seed=42)
    for x, y in zip(again, mnist1d_standard["ds"]):
        assert np.array_equal(x, y) and x.dtype == y.dtype


def test_mnist1d_cache_file_is_plain_npz(mnist1d_standard):
    path = mnist1d_standard["cache"] / "mnist1d-v1-seed42-n5000-ordered.npz"
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["X_train", "X_val", "meta", "y_train", "y_val"]  # meta: version, checksum


def test_mnist1d_corrupt_cache_is_regenerated(cache):
    fresh = data.load("mnist1d", samples=100, seed=3)
    path = cache / "mnist1d-v1-seed3-n100-ordered.npz"
    for damage in (b"garbage", path.read_bytes()[:200]):
        path.write_bytes(damage)
        again = data.load("mnist1d", samples=100, seed=3)
        assert np.array_equal(again.X_train, fresh.X_train)
        with np.load(path, allow_pickle=False) as z:
            assert z["X_train"].shape == (80, 40)


def test_mnist1d_cache_with_wrong_shapes_is_regenerated(cache):
    cache.mkdir()
    path = cache / "mnist1d-v1-seed3-n100-ordered.npz"
    np.savez(path, X_train=np.zeros((2, 40), np.float32), y_train=np.zeros(2, np.int64),
             X_val=np.zeros((1, 40), np.float32), y_val=np.zeros(1, np.int64))
    assert data.load("mnist1d", samples=100, seed=3).X_train.shape == (80, 40)


def test_mnist1d_seeds_variants_and_rng_state(cache):
    random.seed(9)
    np.random.seed(10)
    before = _global_rng_states()
    a = data.load("mnist1d", samples=100, seed=1)
    b = data.load("mnist1d", samples=100, seed=2)
    shuffled = data.load("mnist1d", samples=100, seed=1, shuffle_seq=True)
    assert _same_states(before, _global_rng_states())
    # and so the user's next global draws are the ones they would have had without load()
    drawn = (random.random(), np.random.random())
    random.seed(9)
    np.random.seed(10)
    assert drawn == (random.random(), np.random.random())
    _check_dataset(a, 80, 20, (40,), 10)
    assert not np.array_equal(a.X_train, b.X_train)
    # shuffle_seq permutes the 40 positions, the same way for every sample
    assert np.array_equal(a.y_train, shuffled.y_train)
    perm = [int(np.flatnonzero((a.X_train == shuffled.X_train[:, [j]]).all(axis=0))[0]) for j in range(40)]
    assert sorted(perm) == list(range(40)) and perm != list(range(40))
    assert np.array_equal(a.X_train[:, perm], shuffled.X_train)
    gen = data.load("mnist1d", samples=100, seed=np.random.default_rng(0))
    assert gen.X_train.shape == (80, 40)
    assert len(list(cache.glob("*.npz"))) == 4


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("DROPLAB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "droplab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "droplab"
    monkeypatch.setenv("DROPLAB_CACHE", str(tmp_path / "mine"))
    assert data.cache_dir() == tmp_path / "mine"


def test_mnist1d_unwritable_cache_warns_and_still_loads(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("DROPLAB_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="could not cache"):
        ds = data.load("mnist1d", samples=20, seed=0)
    assert ds.X_train.shape == (16, 40)


def test_mnist1d_failed_cache_write_leaves_no_temp_file(cache, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.warns(UserWarning, match="could not cache .*No space left"):
        ds = data.load("mnist1d", samples=20, seed=0)
    assert ds.X_train.shape == (16, 40)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"samples": 15}, ValueError, r"`samples` must be a multiple of 10, at least 20; got samples=15"),
        ({"samples": 10}, ValueError, r"`samples` must be a multiple of 10"),
        ({"shuffle_seq": "yes"}, TypeError, r"`shuffle_seq` must be True or False"),
        ({"seed": 2**32}, ValueError, r"data.load\('mnist1d'\): `seed` must be an integer below 2\*\*32"),
    ],
)
def test_mnist1d_rejects_bad_options(cache, options, error, match):
    with pytest.raises(error, match=match):
        data.load("mnist1d", **options)


# --------------------------------------------------------------------------------- load


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("moon",), {}, ValueError, r"data.load: `name` must be one of .*Did you mean 'moons'\? Files must end"),
        ((3,), {}, TypeError, r"data.load: `name` must be a dataset name or a file path"),
        (("digits",), {"noise": 0.1}, ValueError, r"data.load\('digits'\): `option` must be one of 'validation'"),
        (("moons",), {"noize": 0.1}, ValueError, r"Did you mean 'noise'\?"),
        (("moons",), {"seed": -2}, ValueError, r"data.load: `seed` must be a non-negative integer"),
        (("moons",), {"seed": 1.5}, TypeError, r"data.load: `seed` must be an int"),
        (("moons",), {"validation": 0.0}, ValueError, r"`validation` must be a fraction in \(0, 1\); got validation=0.0"),
        (("digits",), {"validation": 1}, ValueError, r"`validation` must be a fraction in \(0, 1\)"),
        (("breast_cancer",), {"validation": 1.5}, ValueError, r"`validation` must be a probability"),
        (("moons",), {"samples": 2}, ValueError, r"data.load\('moons'\): the split leaves 2 training and 0 validation"),
        (("moons",), {"noise": -0.1}, ValueError, r"`noise` must be a finite number >= 0"),
        (("circles",), {"factor": 1.0}, ValueError, r"`factor` must be a probability in \[0, 1\)"),
        (("spiral",), {"val_samples": 0}, ValueError, r"data.load\('spiral'\): `val_samples` must be a positive"),
    ],
)
def test_load_rejects_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        data.load(*args, **kwargs)


# ---------------------------------------------------------------------------- user files


def test_npz_round_trip_with_split(tmp_path, rng):
    X = rng.standard_normal((50, 3))
    y = np.arange(50) % 2
    np.savez(tmp_path / "d.npz", X=X, y=y)
    ds = data.load(tmp_path / "d.npz", seed=4)
    _check_dataset(ds, 40, 10, (3,), 2)
    assert ds.name == str(tmp_path / "d.npz") and ds.class_names is None
    both = np.concatenate([ds.X_train, ds.X_val])
    assert np.array_equal(both[np.argsort(both[:, 0])], X.astype(np.float32)[np.argsort(X[:, 0])])
    again = data.load(str(tmp_path / "d.npz"), seed=4)
    assert np.array_equal(again.X_train, ds.X_train)
    assert not np.array_equal(data.load(tmp_path / "d.npz", seed=5).X_train, ds.X_train)
    assert data.load(tmp_path / "d.npz", validation=0.4).X_val.shape == (20, 3)


def test_npz_with_validation_arrays_images_and_string_labels(tmp_path, rng):
    X = rng.random((6, 1, 4, 4)).astype(np.float64)
    Xv = rng.random((3, 1, 4, 4))
    with open(tmp_path / "img.NPZ", "wb") as f:  # np.savez(path) would append ".npz"
        np.savez(f, X=X, y=np.array(["dog", "cat", "eel"] * 2), X_val=Xv,
                 y_val=np.array(["eel", "ant", "cat"]))
    ds = data.load(tmp_path / "img.NPZ")
    assert ds.class_names == ("ant", "cat", "dog", "eel")
    assert ds.classes == 4 and ds.input_shape == (1, 4, 4)
    assert ds.y_train.tolist() == [2, 1, 3, 2, 1, 3] and ds.y_val.tolist() == [3, 0, 1]
    assert np.array_equal(ds.X_train, X.astype(np.float32)) and np.array_equal(ds.X_val, Xv.astype(np.float32))
    assert "from the file" in ds.description


def test_npz_integer_valued_float_and_bool_labels(tmp_path):
    np.savez(tmp_path / "f.npz", X=np.ones((10, 2)), y=np.array([0.0, 2.0] * 5))
    ds = data.load(tmp_path / "f.npz")
    # labels map through their sorted distinct values: 0.0 and 2.0 are classes 0 and 1
    assert ds.classes == 2 and ds.y_train.dtype == np.int64 and ds.label_values == (0, 2)
    np.savez(tmp_path / "b.npz", X=np.ones((10, 2), np.int32), y=np.array([True, False] * 5))
    assert data.load(tmp_path / "b.npz").classes == 2


def test_csv_round_trip(tmp_path):
    lines = ["x1, x2 ,label"] + [f"{i},{i / 10},{i % 3}" for i in range(30)] + [""]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    ds = data.load(tmp_path / "d.csv", seed=1)
    _check_dataset(ds, 24, 6, (2,), 3)
    both = np.concatenate([ds.X_train, ds.X_val])
    order = np.argsort(both[:, 0])
    assert np.array_equal(both[order, 0], np.arange(30, dtype=np.float32))
    assert np.array_equal(np.concatenate([ds.y_train, ds.y_val])[order], np.arange(30) % 3)


def test_csv_string_labels_and_label_option(tmp_path):
    rows = ["species,a,b"] + [f"{s},{i},{-i}" for i, s in enumerate(["setosa", "virginica"] * 5)]
    (tmp_path / "iris.csv").write_text("\ufeff" + "\n".join(rows))  # with a BOM, as spreadsheets write
    ds = data.load(tmp_path / "iris.csv", label="species")
    assert ds.class_names == ("setosa", "virginica") and ds.classes == 2
    assert ds.input_shape == (2,)
    assert np.array_equal(ds.X_train[:, 1], -ds.X_train[:, 0])


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(
    ("content", "kwargs", "match"),
    [
        (b"", {}, r"cannot use '.*bad.csv': the file is empty"),
        ("\n\n", {}, r"the file is empty"),
        ("a,b,label\n", {}, r"no data rows after the header"),
        ("a,b,lable\n1,2,0\n", {}, r"no label column 'label' in the header .*did you mean label='lable'\?"),
        ("a,b,c\n1,2,0\n", {"label": "zzz"}, r"no label column 'zzz' .*pass label=<column name>"),
        ("label\n1\n", {}, r"no feature columns besides the label column"),
        ("a,a,label\n1,2,0\n", {}, r"column 'a' appears more than once"),
        ("a,b,label\n1,2,0\n1,2\n", {}, r"line 3 has 2 cells; the header has 3"),
        ("a,b,label\n1,2,0\n1,x,1\n", {}, r"line 3, column 'b': 'x' is not a number"),
        ("a,b,label\n1,,0\n", {}, r"line 2, column 'b': an empty cell"),
        ("a,b,label\n1,nan,0\n", {}, r"line 2, column 'b': 'nan' is not finite"),
        ("a,b,label\n1,inf,0\n", {}, r"'inf' is not finite"),
        ("a,b,label\n1,2,\n", {}, r"line 2: the label cell is empty"),
        (b"a,b,label\n\xff\xfe,1,0\n", {}, r"not UTF-8 text"),
        ("a,label\n" + "1" * 200_000 + ",0\n", {}, r"not valid CSV"),
        ("a,label\n1,0\n", {"label": 3}, r"data.load: `label` must be a column name"),
        ("a,label\n1,0\n2,1\n", {}, r"the split leaves 2 training and 0 validation samples"),
    ],
)
def test_malformed_csv_gives_one_line_error(tmp_path, content, kwargs, match):
    path = _write(tmp_path / "bad.csv", content)
    with pytest.raises((ValueError, TypeError), match=match) as info:
        data.load(path, **kwargs)
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is None  # no chained internals in the traceback


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good(n=10):
    return {"X": np.ones((n, 2)), "y": np.arange(n) % 2}


def _truncated(path):
    _npz(path, **_good(1000))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _truncated_member(path):
    _npz(path, **_good(1000))
    raw = bytearray(path.read_bytes())
    raw[200:400] = b"\0" * 200  # damage the data of the first member, keep the zip directory
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: _write(p, b"not a zip"), r"cannot use '.*bad.npz': not an .npz archive \(not a zip archive\)"),
        (lambda p: _write(p, pickle.dumps({"X": 1})), r"holds pickled data, which is never loaded"),
        (lambda p: _write(p, b"\x93NUMPY\x01\x00garbage"), r"not a readable .npz archive"),
        (_truncated, r"not a readable .npz archive \(truncated or damaged\?\)"),
        (_truncated_member, r"array 'X' is unreadable \(truncated or damaged\?\)"),
        (lambda p: (np.save(open(p, "wb"), np.ones(3)), p)[1], r"holds a single array; save named arrays"),
        (lambda p: _npz(p, X=np.ones((3, 2))), r"missing array 'y' \(found 'X'\)"),
        (lambda p: _npz(p, **_good(), X_val=np.ones((2, 2))), r"has one of 'X_val' and 'y_val' without the other"),
        (lambda p: _npz(p, X=np.array([{}, {}], dtype=object), y=np.zeros(2, int)),
         r"array 'X' holds Python objects \(pickled\), which are never loaded"),
        (lambda p: _npz(p, X=np.array([["a"], ["b"]]), y=np.zeros(2, int)), r"X must be numeric; found dtype <U1"),
        (lambda p: _npz(p, X=np.ones(4), y=np.zeros(4, int)), r"X must have shape \(samples, features...\); found shape \(4,\)"),
        (lambda p: _npz(p, X=np.ones((0, 2)), y=np.zeros(0, int)), r"X is empty \(shape \(0, 2\)\)"),
        (lambda p: _npz(p, X=np.array([[1.0, np.nan], [np.inf, 0]]), y=np.zeros(2, int)), r"X has 2 NaN or infinite values"),
        (lambda p: _npz(p, X=np.ones((4, 2)), y=np.zeros(3, int)), r"y must have shape \(4,\) to match X; found shape \(3,\)"),
        (lambda p: _npz(p, X=np.ones((4, 2)), y=np.zeros((4, 1), int)), r"y must have shape \(4,\)"),
        (lambda p: _npz(p, X=np.ones((4, 2)), y=np.array([0.5, 1, 0, 1])), r"labels must be integers or strings; found non-integer"),
        (lambda p: _npz(p, X=np.ones((4, 2)), y=np.ones(4, complex)), r"labels must be integers or strings; found dtype complex128"),
        (lambda p: _npz(p, **_good(), X_val=np.ones((2, 3)), y_val=np.zeros(2, int)),
         r"X_val samples have shape \(3,\), X samples \(2,\)"),
        (lambda p: _npz(p, **_good(), X_val=np.ones((2, 2)), y_val=np.zeros(3, int)), r"y_val must have shape \(2,\) to match X_val"),
        (lambda p: p, r"cannot use '.*bad.npz': no such file"),
    ],
)
def test_malformed_npz_gives_one_line_error(tmp_path, make, match):
    path = make(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match=match) as info:
        data.load(path)
    assert "\n" not in str(info.value)


def test_unreadable_file_gives_one_line_error(tmp_path, monkeypatch):
    path = _write(tmp_path / "locked.csv", "a,label\n1,0\n")

    real_open = os.open

    def denied(target, *args, **kwargs):
        if os.fspath(target) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(ValueError, match=r"cannot use '.*locked.csv': Permission denied\.$"):
        data.load(path)


def test_a_folder_is_not_a_file(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ValueError, match=r"'.*dir.csv': it is a folder, not a regular file"):
        data.load(tmp_path / "dir.csv")


def test_file_errors_name_the_file_and_not_internals(tmp_path):
    path = _truncated(tmp_path / "t.npz")
    with pytest.raises(ValueError) as info:
        data.load(path)
    assert str(path) in str(info.value) and "zip" not in str(info.value).lower()
    assert info.value.__suppress_context__  # raised `from None`: the zipfile error stays hidden
