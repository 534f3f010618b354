"""Data loading never gives a silent wrong result (issue 13).

Labels map through their sorted distinct values with at most MAX_CLASSES classes; CSV labels
that are numbers are numbers; features beyond float32 are refused with the file named; every
malformed, empty, huge or non-regular file is one line naming the file; the MNIST-1D cache
carries the generator's version and a checksum, and a forged cache is regenerated.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

from droplab import data
from droplab.cli import main
from droplab.errors import DroplabError, FileError


@contextlib.contextmanager
def _deadline(seconds):
    """Fail instead of hanging when a read blocks (a FIFO waiting for a writer)."""
    def fire(*_):
        raise TimeoutError(f"blocked for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _one_line_error(path, match, error=ValueError, **kwargs):
    with _deadline(20), pytest.raises(error, match=match) as info:
        data.load(path, **kwargs)
    text = str(info.value)
    assert "\n" not in text and str(path) in text
    assert isinstance(info.value, DroplabError)
    return text


def _csv(path, labels, features=None):
    rows = ["a,b,label"]
    for i, y in enumerate(labels):
        f = features[i] if features is not None else (i, -i)
        rows.append(f"{f[0]},{f[1]},{y}")
    path.write_text("\n".join(rows) + "\n")
    return path


# ------------------------------------------------------------------------------- labels


def test_csv_labels_0_1_and_a_billion_are_three_classes(tmp_path):
    path = _csv(tmp_path / "d.csv", [0, 1, 10**9] * 10)
    ds = data.load(path)
    assert ds.classes == 3 and ds.label_values == (0, 1, 10**9)
    assert set(ds.y_train.tolist()) == {0, 1, 2}
    assert ds.decode(np.array([2, 0, 1])).tolist() == [10**9, 0, 1]


def test_npz_labels_0_1_and_a_billion_are_three_classes(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.ones((30, 2)), y=np.array([0, 1, 10**9] * 10))
    ds = data.load(tmp_path / "d.npz")
    assert ds.classes == 3 and ds.label_values == (0, 1, 10**9)


def test_compare_on_labels_0_1_and_a_billion_trains_a_3_class_network(tmp_path):
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 10**9] * 20)
    X = rng.normal(size=(60, 2)) + y[:, None].clip(0, 2)
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y)
    out = tmp_path / "out"
    assert main(["compare", "--dataset", str(path), "--epochs", "2", "--seeds", "1", "--hidden", "4",
                 "--batch-size", "0", "--quiet", "--out", str(out)]) == 0
    assert (out / "results.json").exists()


def test_csv_float_labels_sort_as_numbers_not_text(tmp_path):
    labels = [f"{k:.1f}" for k in range(11)] * 3  # 0.0 ... 10.0
    ds = data.load(_csv(tmp_path / "f.csv", labels))
    assert ds.classes == 11 and ds.label_values == tuple(range(11)) and ds.class_names is None
    both_y = np.concatenate([ds.y_train, ds.y_val])
    both_a = np.concatenate([ds.X_train[:, 0], ds.X_val[:, 0]]).astype(int)
    assert all(int(y) == int(a) % 11 for y, a in zip(both_y, both_a))  # label 10 is class 10, not 2


def test_csv_labels_written_three_ways_are_one_class(tmp_path):
    ds = data.load(_csv(tmp_path / "w.csv", ["1000", "1e3", "1000.0", "7"] * 5))
    assert ds.classes == 2 and ds.label_values == (7, 1000)


def test_csv_labels_that_are_not_all_numbers_are_strings(tmp_path):
    ds = data.load(_csv(tmp_path / "s.csv", ["10", "9", "cat"] * 5))
    assert ds.class_names == ("10", "9", "cat") and ds.classes == 3  # sorted as text, as strings are


@pytest.mark.parametrize("cells", [["nan", "1"], ["inf", "1"], ["0.5", "1"]])
def test_csv_labels_that_are_not_whole_numbers_are_refused(tmp_path, cells):
    _one_line_error(_csv(tmp_path / "n.csv", cells * 5), r"labels must be integers or strings")


def test_uint64_labels_above_2_63_do_not_wrap(tmp_path):
    y = np.array([2**63 + 5, 2**64 - 1, 3] * 10, dtype=np.uint64)
    np.savez(tmp_path / "u.npz", X=np.arange(60.0).reshape(30, 2), y=y)
    ds = data.load(tmp_path / "u.npz")
    assert ds.label_values == (3, 2**63 + 5, 2**64 - 1)
    assert ds.y_train.min() >= 0 and ds.classes == 3


def test_csv_labels_beyond_64_bits_are_exact(tmp_path):
    ds = data.load(_csv(tmp_path / "b.csv", [10**30, 10**30 + 1] * 10))
    assert ds.label_values == (10**30, 10**30 + 1)


def test_negative_labels_map_like_sklearn_classes(tmp_path):
    ds = data.load(_csv(tmp_path / "m.csv", [-1, 1] * 10))
    assert ds.label_values == (-1, 1) and ds.decode([0, 1]).tolist() == [-1, 1]


def test_train_and_validation_labels_share_one_mapping(tmp_path):
    np.savez(tmp_path / "v.npz", X=np.ones((4, 2)), y=np.array([5, 9, 5, 9]), X_val=np.ones((2, 2)),
             y_val=np.array([9, 7]))
    ds = data.load(tmp_path / "v.npz")
    assert ds.label_values == (5, 7, 9) and ds.y_train.tolist() == [0, 2, 0, 2] and ds.y_val.tolist() == [2, 1]


def test_mixed_string_and_number_labels_across_arrays_are_refused(tmp_path):
    path = tmp_path / "mx.npz"
    np.savez(path, X=np.ones((4, 2)), y=np.array([0, 1, 0, 1]), X_val=np.ones((2, 2)), y_val=np.array(["a", "b"]))
    _one_line_error(path, r"labels must be all numbers or all strings")


def test_more_than_max_classes_is_one_line(tmp_path):
    n = data.MAX_CLASSES + 1
    np.savez(tmp_path / "r.npz", X=np.ones((n, 1)), y=np.arange(n) * 7)
    _one_line_error(tmp_path / "r.npz", rf"y has {n} distinct labels; at most {data.MAX_CLASSES} classes")


def test_a_continuous_target_is_refused_before_building_a_huge_mapping(tmp_path):
    y = np.arange(200_000)
    np.savez(tmp_path / "c.npz", X=np.ones((200_000, 1), np.float32), y=y)
    _one_line_error(tmp_path / "c.npz", r"is it a continuous target\?")


def test_decode_refuses_indices_outside_the_classes():
    ds = data.load("spiral")
    with pytest.raises(ValueError, match=r"Dataset.decode: `classes` must be class indices in \[0, 3\)"):
        ds.decode([3])


# ----------------------------------------------------------------------------- features


def test_float64_features_beyond_float32_name_the_file_without_a_warning(tmp_path):
    X = np.ones((10, 2))
    X[3, 1] = 1e39
    np.savez(tmp_path / "big.npz", X=X, y=np.arange(10) % 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = _one_line_error(tmp_path / "big.npz", r"X has 1 values beyond float32's range")
    assert "fit" not in text


def test_csv_features_beyond_float32_name_the_file(tmp_path):
    path = _csv(tmp_path / "big.csv", [0, 1] * 5, features=[(1, 2)] * 9 + [(-3e38 * 2, 1)])
    _one_line_error(path, r"X has 1 values beyond float32's range")


@pytest.mark.parametrize("name,content,match", [
    ("nan.csv", "a,b,label\n1,nan,0\n", r"'nan' is not finite"),
    ("cell.csv", "a,b,label\n1,two,0\n", r"'two' is not a number"),
    ("ragged.csv", "a,b,label\n1,2,0\n1,2,0,4\n", r"line 3 has 4 cells; the header has 3"),
    ("empty.csv", "", r"the file is empty"),
    ("header.csv", "a,b,label\n", r"no data rows after the header"),
    ("empty.npz", b"", r"the file is empty"),
])
def test_malformed_files_are_one_line(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _one_line_error(path, match)


def test_zero_row_validation_arrays_are_one_line(tmp_path):
    np.savez(tmp_path / "z.npz", X=np.ones((4, 2)), y=np.zeros(4, int), X_val=np.ones((0, 2)), y_val=np.zeros(0, int))
    _one_line_error(tmp_path / "z.npz", r"X_val is empty")


def test_nan_features_in_npz_validation_arrays_are_one_line(tmp_path):
    np.savez(tmp_path / "n.npz", X=np.ones((4, 2)), y=np.zeros(4, int), X_val=np.full((2, 2), np.nan),
             y_val=np.zeros(2, int))
    _one_line_error(tmp_path / "n.npz", r"X_val has 4 NaN or infinite values")


# --------------------------------------------------------------- file kinds and sizes


def test_a_fifo_as_a_data_file_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    _one_line_error(tmp_path / "pipe.csv", r"it is a FIFO \(named pipe\), not a regular file")


def test_a_device_as_a_data_file_is_refused(tmp_path):
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    _one_line_error(tmp_path / "zero.csv", r"it is a character device, not a regular file")


def test_a_folder_as_a_data_file_is_refused(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    _one_line_error(tmp_path / "dir.npz", r"it is a folder, not a regular file")


def test_a_name_too_long_is_one_line(tmp_path):
    _one_line_error(tmp_path / ("n" * 300 + ".csv"), r"File name too long")


def test_a_huge_csv_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:  # sparse: takes no disk
        f.truncate(128 * 2**20 + 1)
    _one_line_error(path, r"the file is 128 MiB; at most 128 MiB are read; save larger data as .npz")


def test_a_huge_npz_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.npz"
    with open(path, "wb") as f:
        f.truncate(2**30 + 1)
    _one_line_error(path, r"the file is 1.0 GiB; at most 1.0 GiB are read")


def test_a_compressed_npz_that_inflates_past_the_budget_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_MAX_NPZ_BYTES", 2**20)
    np.savez_compressed(tmp_path / "bomb.npz", X=np.zeros((2**18, 2)), y=np.zeros(2**18, int))
    assert (tmp_path / "bomb.npz").stat().st_size < 2**16
    _one_line_error(tmp_path / "bomb.npz", r"its arrays take more than 1 MiB once decompressed \(array 'X'\)")


def _npy_header(shape, dtype="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return np.lib.format.magic(1, 0) + buf.getvalue()


def test_an_npy_header_claiming_a_terabyte_allocates_nothing(tmp_path):
    path = tmp_path / "claim.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("X.npy", _npy_header((10**12, 1)) + b"\0" * 64)
        z.writestr("y.npy", _npy_header((10**12,), "<i8") + b"\0" * 64)
    _one_line_error(path, r"array 'X' is unreadable \(truncated or damaged\?\)")


def test_data_file_errors_through_the_cli_are_one_line(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.csv")
    out = tmp_path / "out"
    with _deadline(60):
        code = main(["compare", "--dataset", str(tmp_path / "pipe.csv"), "--epochs", "1", "--seeds", "1",
                     "--hidden", "4", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pipe.csv" in err and not out.exists()


# ------------------------------------------------------------------------ mnist1d cache


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DROPLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _path(seed, n=100):
    return f"mnist1d-v1-seed{seed}-n{n}-ordered.npz"


def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_the_cache_records_the_generator_version_and_a_checksum(cache):
    from importlib.metadata import version

    data.load("mnist1d", samples=100, seed=3)
    meta = json.loads(str(_arrays(cache / _path(3))["meta"][()]))
    assert meta["mnist1d"] == version("mnist1d") and meta["seed"] == 3 and meta["samples"] == 100
    assert meta["train_split"] == 0.8 and meta["shuffle_seq"] is False and len(meta["sha256"]) == 64


@pytest.mark.parametrize("forge", ["zeros", "rotated", "zeros-old-format", "rotated-old-format", "other-version"])
def test_a_forged_cache_is_regenerated_never_used(cache, forge):
    fresh = data.load("mnist1d", samples=100, seed=3)
    path = cache / _path(3)
    a = _arrays(path)
    meta = json.loads(str(a.pop("meta")[()]))
    if forge.startswith("zeros"):
        a["X_train"] = np.zeros_like(a["X_train"])
    elif forge.startswith("rotated"):
        a["y_train"], a["y_val"] = (a["y_train"] + 1) % 10, (a["y_val"] + 1) % 10
    else:
        meta["mnist1d"] = "0.0.1"
    if not forge.endswith("old-format"):
        a["meta"] = np.array(json.dumps(meta))  # the old checksum: does not match the forged arrays
    with open(path, "wb") as f:
        np.savez(f, **a)
    again = data.load("mnist1d", samples=100, seed=3)
    for x, y in zip(again, fresh):
        assert np.array_equal(x, y)
    assert json.loads(str(_arrays(path)["meta"][()]))["mnist1d"] != "0.0.1"  # rewritten in place


def test_a_forged_standard_set_with_a_recomputed_checksum_is_still_caught(cache):
    fresh = data.load("mnist1d")
    path = cache / _path(42, 5000)
    a = _arrays(path)
    meta = json.loads(str(a.pop("meta")[()]))
    a["y_train"], a["y_val"] = (a["y_train"] + 1) % 10, (a["y_val"] + 1) % 10
    meta["sha256"] = data._digest(a)  # a forger who knows the recipe
    a["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **a)
    if meta["mnist1d"] not in data._MNIST1D_STANDARD_LABELS:
        pytest.skip(f"no pinned labels for mnist1d {meta['mnist1d']}")
    assert np.array_equal(data.load("mnist1d").y_train, fresh.y_train)


def test_a_pinned_label_digest_matches_the_generator(cache):
    ds = data.load("mnist1d")
    from importlib.metadata import version

    pinned = data._MNIST1D_STANDARD_LABELS.get(version("mnist1d"))
    if pinned is None:
        pytest.skip("no pinned labels for this mnist1d version")
    labels = np.concatenate([ds.y_train, ds.y_val]).astype("<i8")
    assert hashlib.sha256(labels.tobytes()).hexdigest() == pinned


def test_a_fifo_at_the_cache_path_is_refused_not_waited_on(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.mkfifo(cache / _path(3))
    code = ("import os, sys; os.environ['DROPLAB_CACHE'] = sys.argv[1]\n"
            "from droplab import data\n"
            "try:\n    data.load('mnist1d', samples=100, seed=3)\n"
            "except OSError as e:\n    print(e); sys.exit(2)\n")
    r = subprocess.run([sys.executable, "-c", code, str(cache)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "is a FIFO (named pipe), not a regular file" in r.stdout and r.stdout.count("\n") == 1
    assert (cache / _path(3)).exists() and not (cache / _path(3)).is_file()  # left alone


def test_a_folder_at_the_cache_path_is_refused_and_kept(cache):
    (cache / _path(3)).mkdir(parents=True)
    (cache / _path(3) / "mine.txt").write_text("keep")
    with pytest.raises(FileError, match=r"data.load\('mnist1d'\): the cache path '.*' is a folder, not a regular"):
        data.load("mnist1d", samples=100, seed=3)
    assert (cache / _path(3) / "mine.txt").read_text() == "keep"


def test_an_oversized_cache_file_is_regenerated(cache):
    fresh = data.load("mnist1d", samples=100, seed=3)
    path = cache / _path(3)
    with open(path, "ab") as f:
        f.truncate(2**26)
    assert np.array_equal(data.load("mnist1d", samples=100, seed=3).X_train, fresh.X_train)
    assert path.stat().st_size < 2**20
